#!/usr/bin/env bash
# Unit tests: every tests/unit/test_*.c, built with ASan and UBSan.
set -u
cd "$TOP"
rc=0
for t in tests/unit/test_*.c; do
	bin=$BUILD/san/tests/$(basename "$t" .c)
	echo "# $(basename "$bin")"
	if [ ! -x "$bin" ]; then
		echo "not ok 1 - $(basename "$bin") was not built (run make san)"
		rc=1
		continue
	fi
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		"$bin" || { echo "# $(basename "$bin") exited $?"; rc=1; }
done
exit $rc
