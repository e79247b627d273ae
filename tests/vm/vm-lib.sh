# shellcheck shell=bash
# Shared by the VM scripts: which kernel the guest boots and where things go.
# Sourced, never run. The host may run any kernel (uname -r says nothing about
# the guest): the guest boots Debian's linux-image-amd64, the one the module is
# built against, found under /lib/modules and /boot.

TM_VM_TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TM_VM_BUILD=${BUILD:-$TM_VM_TOP/build}
TM_VM_DIR=$TM_VM_BUILD/vm

vm_die() {
	echo "vm: $*" >&2
	exit 1
}

# The newest kernel that has both headers (to build the module) and an image
# (to boot). KVER overrides.
vm_kver() {
	if [ -n "${KVER:-}" ]; then
		echo "$KVER"
		return
	fi
	local k best=""
	for k in $(ls /lib/modules 2>/dev/null | sort -V); do
		[ -e "/lib/modules/$k/build" ] && [ -e "/boot/vmlinuz-$k" ] && best=$k
	done
	[ -n "$best" ] || return 1
	echo "$best"
}

vm_kernel_image() {
	local img=/boot/vmlinuz-$1
	[ -r "$img" ] || return 1
	echo "$img"
}

vm_qemu() {
	command -v "${QEMU:-qemu-system-x86_64}"
}

# Check everything a VM run needs; print what is missing and fail (never skip).
vm_check_host() {
	local kver bad=0
	if ! kver=$(vm_kver); then
		echo "vm: no kernel with both /lib/modules/KVER/build and /boot/vmlinuz-KVER (run scripts/deps: linux-image-amd64 + linux-headers-amd64)" >&2
		return 1
	fi
	[ -r "/boot/vmlinuz-$kver" ] || { echo "vm: /boot/vmlinuz-$kver is not readable" >&2; bad=1; }
	vm_qemu >/dev/null || { echo "vm: qemu-system-x86_64 not found (run scripts/deps: qemu-system-x86)" >&2; bad=1; }
	local t
	for t in busybox cpio gzip depmod modprobe ndctl; do
		command -v "$t" >/dev/null || { echo "vm: $t not found (run scripts/deps)" >&2; bad=1; }
	done
	[ -n "$(vm_busybox)" ] || { echo "vm: no statically linked busybox (run scripts/deps: busybox-static)" >&2; bad=1; }
	return $bad
}

# busybox-static's binary; a dynamic busybox would need its libraries.
vm_busybox() {
	local b
	for b in /bin/busybox /usr/bin/busybox; do
		if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then
			echo "$b"
			return
		fi
	done
}

# tcg unless KVM was asked for (TM_VM_ACCEL=kvm) or a probe boot with KVM
# passed on this machine (cached in build/vm/accel; delete it to probe again).
# KVM is often present but unusable under nested virtualisation.
vm_accel() {
	if [ -n "${TM_VM_ACCEL:-}" ]; then
		echo "$TM_VM_ACCEL"
	elif [ -s "$TM_VM_DIR/accel" ]; then
		cat "$TM_VM_DIR/accel"
	else
		echo tcg
	fi
}

# Boot the probe plan with KVM once; remember kvm or tcg. Quiet either way.
vm_probe_kvm() {
	local initrd=$1 acc=tcg
	mkdir -p "$TM_VM_DIR"
	[ -s "$TM_VM_DIR/accel" ] && return 0
	if [ -z "${TM_VM_ACCEL:-}" ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		if TM_VM_ACCEL=kvm "$(dirname "${BASH_SOURCE[0]}")/boot" --initrd "$initrd" --plan probe \
			--timeout 20 --log "$TM_VM_DIR/log/kvm-probe" >/dev/null 2>&1; then
			acc=kvm
		fi
	fi
	echo "$acc" >"$TM_VM_DIR/accel"
}
