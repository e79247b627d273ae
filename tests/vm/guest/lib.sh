# Helpers for the guest's plans (busybox sh). A plan prints TAP lines; the
# host renumbers them into one stream and prefixes the plan's name, so plans
# number nothing themselves. A plan passes when no check failed.
tm_failed=0
tm_count=0

# tm_ok STATUS DESCRIPTION: STATUS 0 is a pass (a shell status).
tm_ok() {
	tm_count=$((tm_count + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok - $2"
	else
		echo "not ok - $2"
		tm_failed=$((tm_failed + 1))
	fi
}

# tm_check DESCRIPTION CMD...: run CMD, pass when it exits 0; its output is
# shown as comments when it fails.
tm_check() {
	desc=$1
	shift
	out=$("$@" 2>&1)
	rc=$?
	tm_ok $rc "$desc"
	[ $rc -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
	return $rc
}

tm_skip() {
	tm_count=$((tm_count + 1))
	echo "ok - # SKIP $1"
}

# Run a kselftest binary: its own TAP lines are counted by the host; its exit
# status is the verdict (0 pass, 4 KSFT_SKIP is not a failure but is shown).
tm_kselftest() {
	bin=$1
	shift
	if [ ! -x "$bin" ]; then
		tm_ok 1 "kselftest $bin is missing from the initramfs"
		return 1
	fi
	echo "# kselftest $bin $*"
	"$bin" "$@" 2>&1
	rc=$?
	case $rc in
	0) ;;
	4) echo "# $bin: skipped (exit 4)" ;;
	*) echo "# $bin exited $rc"; tm_failed=$((tm_failed + 1)) ;;
	esac
	return $rc
}

# Wait up to $2 seconds (default 10) for path $1 to exist.
tm_wait_for() {
	n=$((${2:-10} * 10))
	while [ ! -e "$1" ] && [ $n -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	[ -e "$1" ]
}

# Load the NVDIMM drivers and make every region an fsdax namespace
# (DAX-capable /dev/pmemN). Namespaces live in the DIMMs' labels and info
# blocks, so on a later boot of the same NVDIMM files they are found as they
# were and nothing is rewritten.
tm_setup_pmem() {
	modprobe nfit && modprobe nd_pmem && modprobe dax_pmem || return 1
	tm_wait_for /sys/bus/nd/devices/region0 10 || { echo "# no NVDIMM region"; return 1; }
	for r in /sys/bus/nd/devices/region*; do
		r=${r##*/}
		ns=$(ndctl list -r "$r" -N 2>/dev/null | grep -c '"mode":"fsdax"')
		[ "$ns" -gt 0 ] && continue
		ndctl disable-region "$r" >/dev/null 2>&1
		ndctl init-labels -f "$(ndctl list -r "$r" -D | sed -n 's/.*"dev":"\(nmem[0-9]*\)".*/\1/p' | head -n1)" >/dev/null 2>&1
		ndctl enable-region "$r" >/dev/null 2>&1
		ndctl create-namespace -f -r "$r" -m fsdax >/dev/null || return 1
	done
	for b in /sys/block/pmem*; do
		[ "$(cat "$b/queue/dax")" = 1 ] || { echo "# ${b##*/} is not DAX-capable"; return 1; }
	done
	return 0
}

tm_finish() {
	echo "# $tm_count checks, $tm_failed failed"
	[ "$tm_failed" -eq 0 ]
}

# The module, after tm_setup_pmem. /dev/tiermem gets what packaging's udev
# rule gives it (group tiermem, mode 0660): there is no udev in the guest.
tm_load_tiermem() {
	modprobe tiermem "$@" || return 1
	tm_wait_for /dev/tiermem 5 || return 1
	chgrp tiermem /dev/tiermem && chmod 0660 /dev/tiermem
}

# Run CMD as the unprivileged user tmuser (member of group tiermem).
tm_as_user() {
	su tmuser -c "$*"
}

# The kernel log lines of the module since boot.
tm_klog() {
	dmesg | grep 'tiermem'
}
