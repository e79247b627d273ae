#!/usr/bin/env bash
# tiermem info and stats on the host, where no module is loaded: info says
# so and exits 1; stats says so and goes on with the runs' own counters
# (tests/suites/47-run-counters.sh); bad options exit 2; --help tells the
# options. (With the module, they run in the VM: tests/vm/plans/device.sh.)
set -uo pipefail
cd "$TOP"
bin=$BUILD/san/tiermem
n=0 rc=0
t() {
	local want=$1 grep=$2 desc=$3
	shift 3
	local out code
	out=$(ASAN_OPTIONS=detect_leaks=1 "$@" 2>&1)
	code=$?
	n=$((n + 1))
	if [ "$code" -eq "$want" ] && grep -qE -- "$grep" <<<"$out"; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc (exit $code, wanted $want)"
		sed 's/^/# /' <<<"$out" | head -n 10
		rc=1
	fi
}
if [ ! -x "$bin" ]; then
	echo "not ok 1 - $bin was not built (run make san)"
	exit 1
fi
if [ -e /dev/tiermem ]; then
	echo "ok 1 - # SKIP /dev/tiermem exists on this host: the no-module paths are not testable"
	exit 0
fi
t 1 'module: not loaded' "info without the module: 'not loaded', exit 1" "$bin" info
t 1 'modprobe tiermem' "info names the fix (modprobe tiermem)" "$bin" info
t 1 'not a tiermem device' "info --device /dev/null: not a tiermem device" "$bin" info --device /dev/null
H=$(mktemp -d)
trap 'rm -rf "$H"' EXIT
TIERMEM_HOME=$H t 0 '"module": false' "stats --json without the module: module false, exit 0" "$bin" stats --json
TIERMEM_HOME=$H t 0 'module: not loaded.*modprobe' "stats without the module says so, exit 0" "$bin" stats
t 1 'not a tiermem device' "stats --device /dev/null: not a tiermem device, exit 1" "$bin" stats --device /dev/null
t 2 'unrecognized option' "stats --bogus: exit 2" "$bin" stats --bogus
t 2 'needs --watch' "stats --count without --watch: exit 2" "$bin" stats --count 2
t 2 'watch' "stats --watch 0: out of range, exit 2" "$bin" stats --watch 0
t 2 'unexpected argument' "info with a stray argument: exit 2" "$bin" info extra
t 0 '--watch SEC.*--count N.*--json' "stats --help lists its options" "$bin" stats --help
t 0 '--device PATH' "info --help lists its options" "$bin" info --help
echo "1..$n"
exit $rc
