#!/usr/bin/env bash
# Builds the GGUF fuzz harness with clang (libFuzzer + ASan + UBSan) into
# $BUILD/fuzz and runs it. Sourced by tests/suites/20-gguf-fuzz.sh (a short
# bounded run) and bench/fuzz-gguf-long.sh (a long one).
#   fuzz_build            -> $BUILD/fuzz/fuzz_gguf and $BUILD/fuzz/seeds/
#   fuzz_run SECS CORPUS  -> 0 if no crash, leak or timeout; log in $BUILD/fuzz/last.log
FUZZ_DIR=${BUILD:?}/fuzz
FUZZ_CC=${FUZZ_CC:-$(command -v clang || command -v clang-14)}
FUZZ_LIB_SRCS="lib/gguf/gguf.c lib/util/error.c kernels/cpu/types.c"

fuzz_build() {
	mkdir -p "$FUZZ_DIR" || return 1
	[ -n "$FUZZ_CC" ] || { echo "# no clang found" >&2; return 1; }
	local common="-std=c11 -D_GNU_SOURCE -Iinclude -I. -g -O1 -fno-omit-frame-pointer"
	"$FUZZ_CC" $common -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o "$FUZZ_DIR/fuzz_gguf" tests/fuzz/fuzz_gguf.c $FUZZ_LIB_SRCS || return 1
	"$FUZZ_CC" $common -fsanitize=address,undefined -fno-sanitize-recover=all \
		-o "$FUZZ_DIR/make_seeds" tests/fuzz/make_seeds.c lib/gguf/gguf_write.c $FUZZ_LIB_SRCS || return 1
	rm -rf "$FUZZ_DIR/seeds" && mkdir -p "$FUZZ_DIR/seeds" &&
		"$FUZZ_DIR/make_seeds" "$FUZZ_DIR/seeds"
}

# fuzz_run SECONDS CORPUS_DIR [extra libFuzzer flags]
fuzz_run() {
	local secs=$1 corpus=$2
	shift 2
	mkdir -p "$corpus" "$FUZZ_DIR/artifacts" || return 1
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	"$FUZZ_DIR/fuzz_gguf" "$corpus" "$FUZZ_DIR/seeds" \
		-dict=tests/fuzz/gguf.dict -max_total_time="$secs" -max_len=8192 \
		-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$FUZZ_DIR/artifacts/" "$@" >"$FUZZ_DIR/last.log" 2>&1
}
