#!/bin/sh
# Builds the tiermem kselftests (static) and the test-only tiermem_pintest.ko
# into $BUILD/kmod-tests, with the guest-side runner `run`.
# Called by tests/suites/50-kmod-vm.sh with BUILD and KVER set.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${BUILD:=$here/../../build}"
: "${KVER:=$(ls /lib/modules | head -n1)}"
make -s -C "$here" BUILD="$BUILD" KDIR="/lib/modules/$KVER/build"
install -m 0755 "$here/run" "$BUILD/kmod-tests/run"
