#!/usr/bin/env bash
# A long fuzzing run of the GGUF reader, keeping its corpus between runs.
#   bench/fuzz-gguf-long.sh [SECONDS (default 3600)] [JOBS (default 1)]
# Corpus: $BUILD/fuzz/corpus; crashing inputs: $BUILD/fuzz/artifacts/.
set -u
cd "$(dirname "$0")/.."
export TOP=$PWD BUILD=${BUILD:-$PWD/build}
. tests/fuzz/fuzz.sh
secs=${1:-3600} jobs=${2:-1}
fuzz_build || { echo "fuzz-gguf-long: build failed" >&2; exit 1; }
echo "fuzzing for $secs s with $jobs job(s); corpus $FUZZ_DIR/corpus" >&2
extra=()
[ "$jobs" -gt 1 ] && extra=(-jobs="$jobs" -workers="$jobs")
if fuzz_run "$secs" "$FUZZ_DIR/corpus" "${extra[@]}"; then
	tail -5 "$FUZZ_DIR/last.log"
	echo "fuzz-gguf-long: no failure in $secs s"
else
	grep -E 'ERROR|SUMMARY|Test unit written' "$FUZZ_DIR/last.log" | head
	echo "fuzz-gguf-long: FAILED (log $FUZZ_DIR/last.log)" >&2
	exit 1
fi
