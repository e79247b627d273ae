#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, in one go: build, make check-gpu, then
# decode speed with every weight in VRAM on a ~2 GB dense llama Q4_K_M and a
# ~4 GB qwen3moe Q4_K_M (tiermem synth makes both), each alternating with a
# read kernel over the same byte count (bandwidth share, medians), and the
# gpu tier of tiermem bench.
#
#   bench/gpu-run.sh [OUTDIR]     logs go to OUTDIR (default build/gpu-run)
#
# DEBS=DIR: a directory of Debian .deb files (libjansson-dev, libjansson4,
# libmicrohttpd-dev, libmicrohttpd12, libnuma-dev, libnuma1, libxxhash-dev,
# libxxhash0) unpacked into a
# private prefix, for a GPU machine without those -dev packages and no network.
# SKIP_BUILD=1: use the binaries already in build/ (tiermem, libtiermem-cuda.so,
# cuda/check-gpu), run tests/gpu/run directly.
set -u -o pipefail
OUTD=${1:-build/gpu-run}
mkdir -p "$OUTD"
W=${TMPDIR:-/tmp}/tiermem-gpu-run
mkdir -p "$W"
MK=()
if [ -n "${DEBS:-}" ]; then
	P=$PWD/build/deps
	mkdir -p "$P"
	for f in "$DEBS"/*.deb; do dpkg -x "$f" "$P"; done
	L=$P/usr/lib/x86_64-linux-gnu
	export LIBRARY_PATH=$L${LIBRARY_PATH:+:$LIBRARY_PATH} C_INCLUDE_PATH=$P/usr/include
	export LD_LIBRARY_PATH=$L:$P/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	MK+=(DEPLIBS="-ljansson -lmicrohttpd -lxxhash -lnuma")
fi
{
	echo "== machine"
	nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,power.limit --format=csv
	nvcc --version | tail -1
	gcc --version | head -1
	echo "node: $(command -v node || echo none)"
	nproc
} 2>&1 | tee "$OUTD/machine.txt"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
	echo "== build"
	if ! make -j"$(nproc)" all "${MK[@]}" >"$OUTD/build.log" 2>&1; then
		tail -30 "$OUTD/build.log"
		echo "== build failed with warnings as errors; again without -Werror (reported, not hidden)"
		make -j"$(nproc)" all "${MK[@]}" WARN="-Wall -Wextra -Wno-unused-parameter" >>"$OUTD/build.log" 2>&1 ||
			{ tail -30 "$OUTD/build.log"; exit 1; }
	fi
fi

echo "== make check-gpu"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
	make --no-print-directory check-gpu "${MK[@]}"
else
	BUILD=build tests/gpu/run
fi 2>&1 | tee "$OUTD/check-gpu.log" | grep -v '^ok '

grep -c '^ok ' "$OUTD/check-gpu.log" | sed 's/^/ok lines: /'

echo "== models"
build/tiermem synth --arch llama --type q4_K_M --size 2G -q -o "$W/dense.gguf" | tail -1
build/tiermem synth --arch qwen3moe --type q4_K_M --size 4G -q -o "$W/moe.gguf" | tail -1

echo "== one matvec alone, per type"
build/cuda/check-gpu kbench 2>&1 | tee -a "$OUTD/bench.txt"
echo "== decode, all weights in VRAM"
for m in dense moe; do
	build/cuda/check-gpu bench "$W/$m.gguf" 7 128 2>&1 | tee -a "$OUTD/bench.txt"
done
echo "== tiermem run --gpu"
build/tiermem run --gpu -m "$W/dense.gguf" -n 64 --temp 0 -p "Once upon a time" 2>&1 | tail -6 | tee -a "$OUTD/bench.txt"
build/tiermem run --gpu -m "$W/moe.gguf" -n 64 --temp 0 -p "Once upon a time" 2>&1 | tail -6 | tee -a "$OUTD/bench.txt"
echo "== tiermem bench (gpu tier)"
build/tiermem bench --size 4G --passes 5 -t 2 --tier anon-thp 2>/dev/null | tail -4 | tee -a "$OUTD/bench.txt"
