#!/usr/bin/env bash
# Packaging of the module, staged under a temporary root (nothing on the host
# changes, except that DKMS makes its signing key once): scripts/install-kmod
# with make (modules_install into updates/, depmod, udev rule, modprobe.d
# example, uapi header), its uninstall, and with DKMS (dkms.conf builds the
# module from the copied sources).
set -uo pipefail
cd "$TOP"
. tests/vm/vm-lib.sh
n=0 rc=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $1"; rc=1; }
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else not_ok "$d"; fi; }

if [ ! -f Kbuild ] || [ ! -d kmod ]; then
	echo "ok 1 - # SKIP tiermem.ko is not part of this tree (no kmod/Kbuild)"
	exit 0
fi
kver=$(vm_kver) || { not_ok "no kernel headers and image (run scripts/deps)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

log=$T/make.log
if scripts/install-kmod --no-dkms --kver "$kver" --destdir "$T/m" >"$log" 2>&1; then
	ok "install-kmod --no-dkms into a staged root"
else
	not_ok "install-kmod --no-dkms into a staged root"
	sed 's/^/# /' "$log" | tail -n 20
fi
ko=$(find "$T/m/lib/modules/$kver/updates" -name tiermem.ko 2>/dev/null | head -n1)
check "the module is under /lib/modules/$kver/updates, built for $kver" \
	sh -c "[ -n '$ko' ] && modinfo -F vermagic '$ko' | grep -q '^$kver '"
check "depmod lists it in modules.dep" grep -q 'updates/.*tiermem.ko:' "$T/m/lib/modules/$kver/modules.dep"
check "the udev rule gives /dev/tiermem group tiermem, mode 0660" \
	grep -q 'KERNEL=="tiermem".*GROUP="tiermem".*MODE="0660"' "$T/m/etc/udev/rules.d/60-tiermem.rules"
check "the modprobe.d example is installed" test -s "$T/m/etc/modprobe.d/tiermem.conf"
check "the installed uapi header compiles on its own" sh -c \
	"echo '#include <linux/tiermem.h>
int x = TIERMEM_IOC_CREATE;' | cc -I'$T/m/usr/local/include' -fsyntax-only -x c -"
scripts/install-kmod --no-dkms --uninstall --kver "$kver" --destdir "$T/m" >"$log" 2>&1
check "uninstall removes the module, the rule and the header" sh -c \
	"[ -z \"\$(find '$T/m/lib/modules/$kver/updates' -name tiermem.ko)\" ] &&
	 [ ! -e '$T/m/etc/udev/rules.d/60-tiermem.rules' ] && [ ! -e '$T/m/usr/local/include/linux/tiermem.h' ]"

if ! command -v dkms >/dev/null; then
	not_ok "dkms is not installed (run scripts/deps)"
	exit 1
fi
log=$T/dkms.log
if scripts/install-kmod --dkms --kver "$kver" --destdir "$T/d" >"$log" 2>&1; then
	ok "install-kmod --dkms: DKMS builds the module from dkms.conf"
else
	not_ok "install-kmod --dkms: DKMS builds the module from dkms.conf"
	sed 's/^/# /' "$log" | tail -n 20
fi
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
ko=$T/d/var/lib/dkms/tiermem/$version/$kver/x86_64/module/tiermem.ko
check "the DKMS module is built for $kver" sh -c "modinfo -F vermagic '$ko' | grep -q '^$kver '"
check "the DKMS source tree holds only what the build needs" sh -c \
	"cd '$T/d/usr/src/tiermem-$version' && [ -f dkms.conf ] && [ -f Kbuild ] && [ -f kmod/Kbuild ] &&
	 [ -f include/uapi/linux/tiermem.h ] && [ ! -e lib ] && [ ! -e cli ]"
echo "1..$n"
exit $rc
