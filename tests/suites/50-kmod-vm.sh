#!/usr/bin/env bash
# The kernel module in QEMU: builds tiermem.ko (make kmod), the kselftests
# (tests/kmod), a static guest test tool over lib/tier/device.c, an initramfs, and
# runs every scenario of tests/vm/run-scenarios (smoke, device, kselftests, faults,
# reboot: persistence, crash during a fill, corrupted table). A missing kernel image, headers or QEMU is a
# failure with the reason (scripts/deps installs them), never a skip.
set -uo pipefail
cd "$TOP"
. tests/vm/vm-lib.sh
vmdir=$BUILD/vm
mkdir -p "$vmdir/log"

fail() {
	echo "not ok 1 - $1"
	[ -n "${2:-}" ] && [ -s "$2" ] && tail -n 30 "$2" | sed 's/^/# /'
	exit 1
}

vm_check_host 2>"$vmdir/log/host-check" || fail "VM prerequisites: $(head -n1 "$vmdir/log/host-check")" "$vmdir/log/host-check"
kver=$(vm_kver)

# The library and CLI go into the guest; build them if make check did not.
make -s -j2 BUILD="$BUILD" "$BUILD/libtiermem.a" "$BUILD/tiermem" >"$vmdir/log/make-lib" 2>&1 ||
	fail "make libtiermem.a and tiermem" "$vmdir/log/make-lib"
cc -static -O2 -g -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -D_GNU_SOURCE -Iinclude -I. \
	-o "$vmdir/tmvm" tests/vm/src/tmvm.c "$BUILD/libtiermem.a" -lm -lpthread \
	>"$vmdir/log/make-tmvm" 2>&1 || fail "build the guest tool tmvm" "$vmdir/log/make-tmvm"

args=(--bin "$vmdir/tmvm" --bin "$BUILD/tiermem")
run_args=()
if [ -f Kbuild ] && [ -d kmod ]; then
	make -s kmod KDIR="/lib/modules/$kver/build" >"$vmdir/log/make-kmod" 2>&1 ||
		fail "make kmod against $kver" "$vmdir/log/make-kmod"
	ko=$(find kmod -maxdepth 1 -name tiermem.ko | head -n1)
	[ -n "$ko" ] || fail "make kmod produced no kmod/tiermem.ko" "$vmdir/log/make-kmod"
	args+=(--ko "$ko")
	# The kselftests, static, into $BUILD/kmod-tests (tests/kmod's build script).
	rm -rf "$BUILD/kmod-tests"
	kbuild=$(find tests/kmod -maxdepth 1 -name 'build*' -type f -perm -u+x 2>/dev/null | head -n1)
	if [ -n "$kbuild" ]; then
		BUILD=$BUILD KVER=$kver "$kbuild" >"$vmdir/log/make-kselftests" 2>&1 ||
			fail "build the kselftests ($kbuild)" "$vmdir/log/make-kselftests"
		args+=(--tests "$BUILD/kmod-tests")
		run_args+=(--kselftests)
	fi
	run_args+=(--module)
fi

tests/vm/mkinitramfs "$vmdir/initrd.cpio.gz" "${args[@]}" >"$vmdir/log/mkinitramfs" 2>&1 ||
	fail "build the initramfs" "$vmdir/log/mkinitramfs"

t0=$(date +%s)
# TM_VM_SCENARIOS="faults reboot" runs only those (for development; make check runs all)
# shellcheck disable=SC2086
tests/vm/run-scenarios --initrd "$vmdir/initrd.cpio.gz" "${run_args[@]}" ${TM_VM_SCENARIOS:-}
rc=$?
echo "# VM scenarios took $(($(date +%s) - t0)) s"
exit $rc
