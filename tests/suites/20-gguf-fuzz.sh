#!/usr/bin/env bash
# A bounded libFuzzer run over the GGUF reader (ASan + UBSan + leak checks),
# seeded with small valid files; fails on any crash, leak, timeout or OOM.
# FUZZ_SECONDS overrides the default 40 s.
set -u
cd "$TOP"
. tests/fuzz/fuzz.sh

if fuzz_build >"$BUILD/fuzz-build.log" 2>&1; then
	echo "ok 1 - fuzz harness and seeds built with $(basename "$FUZZ_CC") (libFuzzer, ASan, UBSan)"
else
	sed 's/^/# /' "$BUILD/fuzz-build.log" | tail -20
	echo "not ok 1 - fuzz harness build (see above)"
	exit 1
fi

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
secs=${FUZZ_SECONDS:-40}
if fuzz_run "$secs" "$corpus"; then
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$FUZZ_DIR/last.log" | grep -o '[0-9]*$')
	cov=$(grep -o 'cov: [0-9]*' "$FUZZ_DIR/last.log" | tail -1)
	echo "ok 2 - ${secs} s of fuzzing the GGUF reader: ${execs:-?} inputs, $cov, no crash, leak or timeout"
else
	grep -E 'ERROR|SUMMARY|Test unit written|runtime error|==[0-9]+==' "$FUZZ_DIR/last.log" | head -20 | sed 's/^/# /'
	echo "not ok 2 - fuzzing the GGUF reader found a failure (log: $FUZZ_DIR/last.log, input in $FUZZ_DIR/artifacts/)"
	exit 1
fi
