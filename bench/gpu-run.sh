#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, in one go (about 8 minutes on the H200 with
# 16 cores; every step has a time limit, so one that hangs cannot eat the
# device budget): build, make check-gpu (kernels, whole-model logits, the
# hybrid and pcie paths and the dp4a matvec, never run on a GPU before),
# then one matvec per type on the float and the dp4a path, and decode speed
# with every weight in VRAM on a ~2 GB dense llama Q4_K_M and a ~4 GB
# qwen3moe Q4_K_M (tiermem synth makes both), float vs dp4a
# (TIERMEM_CUDA_MATVEC) alternating, each alternating with a read kernel
# over the same byte count (bandwidth share, medians); the hybrid on the MoE
# (-ot exps=CPU: routed experts on the CPU; -ot exps=pcie: read over PCIe)
# against all in VRAM and the CPU alone; and the gpu tier of tiermem bench.
#
#   bench/gpu-run.sh [OUTDIR]     logs go to OUTDIR (default build/gpu-run)
#
# DEBS=DIR: a directory of Debian .deb files (libjansson-dev, libjansson4,
# libmicrohttpd-dev, libmicrohttpd12, libnuma-dev, libnuma1, libxxhash-dev,
# libxxhash0) unpacked into a
# private prefix, for a GPU machine without those -dev packages and no network.
# SKIP_BUILD=1: use the binaries already in build/ (tiermem, libtiermem-cuda.so,
# cuda/check-gpu), run tests/gpu/run directly.
#
# llama.cpp's CUDA build, when bench/gpu-peer-stage.sh's parts were carried
# (.peer-cuda/peer.tar.xz.part*): unpacked and checked (SHA-256), then decode
# tok/s against tiermem on the same GGUFs, alternating, 3 rounds: all in VRAM
# (dense and MoE), and the MoE with routed experts in host memory (llama.cpp
# -ot exps=CPU against tiermem's -ot exps=CPU, and tiermem's exps=pcie with and
# without --expert-cache). The first llama.cpp run is timed on its own: the
# driver compiles the release's compute_90 PTX then (kept in .peer-cuda/jit).
# PEER_ONLY=1: build, the models and that comparison only (no check-gpu, no
# other benchmarks), for a call of its own.
# DP4A_ONLY=1: build, the models, check-gpu's kernel checks and dp4a logits
# of 8 small models, the per-type matvec and the decode A/B of the float and
# dp4a paths, tiermem run --gpu; no hybrid, pcie or peer (about 5 minutes).
set -u -o pipefail
OUTD=${1:-build/gpu-run}
# step LIMIT_S CMD...: a command under a time limit; a timeout is said, not hidden
step() {
	local lim=$1
	shift
	timeout "$lim" "$@"
	local rc=$?
	[ $rc -eq 124 ] && echo "## TIMED OUT after ${lim}s: $*"
	return $rc
}
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

echo "== models"
build/tiermem synth --arch llama --type q4_K_M --size 2G -q -o "$W/dense.gguf" | tail -1
build/tiermem synth --arch qwen3moe --type q4_K_M --size 4G -q -o "$W/moe.gguf" | tail -1
T=$(nproc)

# llama.cpp's CUDA build against tiermem (see the top)
peer() {
	local L=$W/peer/peer d r m json
	echo "== llama.cpp CUDA peer"
	if ! cat .peer-cuda/peer.tar.xz.part* | sha256sum | cut -c1-64 | cmp -s - <(cut -c1-64 .peer-cuda/peer.tar.xz.sha256); then
		echo "peer: the parts do not add up to the staged tarball (a part missing?): not run"
		return
	fi
	rm -rf "$W/peer"
	mkdir -p "$W/peer"
	if ! cat .peer-cuda/peer.tar.xz.part* | xz -d | tar -x -C "$W/peer"; then
		echo "peer: unpacking failed"
		return
	fi
	# the release links the CUDA 13 runtime and cuBLAS: the toolkit's, or the Python wheels'
	for d in /usr/local/cuda/lib64 $(find /usr/local /opt -name 'libcublas.so.13' -printf '%h\n' 2>/dev/null); do
		[ -e "$d/libcublas.so.13" ] || [ -e "$d/libcudart.so.13" ] && LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	done
	export LD_LIBRARY_PATH
	export CUDA_CACHE_PATH=$PWD/.peer-cuda/jit CUDA_CACHE_MAXSIZE=4294967296
	d=$(date +%s)
	step 420 "$L/llama_decode" "$W/moe.gguf" --libdir "$L" -p 16 -n 4 -t "$T"
	echo "peer: first run (the driver compiles the PTX): exit $?, $(($(date +%s) - d)) s"
	for r in 1 2 3; do
		for m in dense moe moe-cpu; do
			a=()
			[ $m = moe-cpu ] && a=(-ot exps=CPU)
			json=$(step 120 "$L/llama_decode" "$W/${m%-cpu}.gguf" --libdir "$L" "${a[@]}" -p 16 -n 64 -t "$T")
			echo "round $r $m llama.cpp: $json"
			step 60 build/tiermem run --gpu "${a[@]}" -m "$W/${m%-cpu}.gguf" --weights ddr -t "$T" -n 64 --temp 0 \
				-p "Once upon a time" >/dev/null 2>"$W/t.err"
			echo "round $r $m tiermem: exit $? $(grep -h '^generation:' "$W/t.err")"
		done
		for c in "" "--expert-cache 25%"; do
			# shellcheck disable=SC2086
			step 60 build/tiermem run --gpu -ot exps=pcie $c -m "$W/moe.gguf" --weights ddr -t "$T" -n 64 --temp 0 \
				-p "Once upon a time" >/dev/null 2>"$W/t.err"
			echo "round $r moe-pcie${c:+ $c} tiermem: exit $? $(grep -h '^generation:' "$W/t.err") $(grep -h -A1 'VRAM cache of' "$W/t.err" | tail -1)"
		done
	done
}
if [ "${PEER_ONLY:-0}" = 1 ]; then
	if ls .peer-cuda/peer.tar.xz.part* >/dev/null 2>&1; then
		peer 2>&1 | tee -a "$OUTD/peer.txt"
	else
		echo "PEER_ONLY=1 but no .peer-cuda/peer.tar.xz.part*: run bench/gpu-peer-stage.sh here and carry .peer-cuda"
	fi
	exit 0
fi

if [ "${DP4A_ONLY:-0}" = 1 ]; then
	# the dp4a decision alone: its kernel checks and the logits of a few models
	echo "== check-gpu kernels; dp4a logits of llama and qwen3moe synth models"
	{
		[ "${SKIP_BUILD:-0}" = 1 ] || make --no-print-directory -j"$(nproc)" build/cuda/check-gpu "${MK[@]}" >>"$OUTD/build.log" 2>&1
		step 120 build/cuda/check-gpu kernels
		ms=()
		for a in llama qwen3moe; do
			for t in q4_K_M q6_K q8_0 iq4_xs; do
				build/tiermem synth --arch $a --type $t -q -o "$W/dp-$a-$t.gguf" >/dev/null && ms+=("$W/dp-$a-$t.gguf")
			done
		done
		step 180 env TIERMEM_CUDA_MATVEC=dp4a build/cuda/check-gpu logits "${ms[@]}"
	} 2>&1 | tee "$OUTD/check-gpu.log" | grep -v '^ok '
else
	echo "== make check-gpu"
	if [ "${SKIP_BUILD:-0}" != 1 ]; then
		step 360 make --no-print-directory check-gpu "${MK[@]}"
	else
		step 360 env BUILD=build tests/gpu/run
	fi 2>&1 | tee "$OUTD/check-gpu.log" | grep -v '^ok '
fi

grep -c '^ok ' "$OUTD/check-gpu.log" | sed 's/^/ok lines: /'

echo "== one matvec alone, per type: the float path and the dp4a path alternating"
step 90 build/cuda/check-gpu kbench 2>&1 | tee -a "$OUTD/bench.txt"
# Whole-token decode, every weight in VRAM: the float matvec (the default)
# and the dp4a one (TIERMEM_CUDA_MATVEC=dp4a), one process each, alternating
# for AB_ROUNDS rounds (default 2: each process loads the model into VRAM,
# 5-10 s); each process gives medians of 5 rounds against the read kernel;
# the summary takes the median (the lower of two) per path and model.
echo "== decode, all weights in VRAM: float vs dp4a alternating"
for r in $(seq "${AB_ROUNDS:-2}"); do
	for m in dense moe; do
		for path in float dp4a; do
			step 60 env TIERMEM_CUDA_MATVEC=$path build/cuda/check-gpu bench "$W/$m.gguf" 5 128 2>&1 |
				sed "s/^/round $r $path /"
		done
	done
done | tee -a "$OUTD/bench.txt" | tee "$OUTD/decode-ab.txt"
# the median of one number per line
med() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "none" }'; }
for m in dense moe; do
	for path in float dp4a; do
		lines=$(grep "^round [0-9]* $path bench $m.gguf:" "$OUTD/decode-ab.txt")
		tps=$(sed -n 's/.* decode \([0-9.]*\) tok\/s (graph).*/\1/p' <<<"$lines" | med)
		share=$(sed -n 's/.* bandwidth share \([0-9.]*\)%.*/\1/p' <<<"$lines" | med)
		echo "decode $m $path: median over rounds $tps tok/s (graph), $share % of the read kernel"
	done
done | tee -a "$OUTD/bench.txt"
echo "== tiermem run --gpu"
step 30 build/tiermem run --gpu -m "$W/dense.gguf" -n 64 --temp 0 -p "Once upon a time" 2>&1 | tail -6 | tee -a "$OUTD/bench.txt"
step 30 env TIERMEM_CUDA_MATVEC=dp4a build/tiermem run --gpu -m "$W/dense.gguf" -n 64 --temp 0 -p "Once upon a time" 2>&1 |
	tail -6 | sed 's/^/dp4a: /' | tee -a "$OUTD/bench.txt"
step 30 build/tiermem run --gpu -m "$W/moe.gguf" -n 64 --temp 0 -p "Once upon a time" 2>&1 | tail -6 | tee -a "$OUTD/bench.txt"
[ "${DP4A_ONLY:-0}" = 1 ] && exit 0
# The hybrid on the 4 GB MoE, alternating 3 rounds: all in VRAM, routed experts
# on the CPU (weights in DDR: --weights ddr), experts over PCIe, the CPU alone.
# Greedy text must be the same in the VRAM and pcie runs (same kernels, same bytes).
echo "== hybrid (qwen3moe 4 GB): generation tok/s, 3 rounds alternating"
for r in 1 2 3; do
	for mode in vram cpu pcie cpu-only; do
		case $mode in
		vram) a=(--gpu) ;;
		cpu) a=(--gpu -ot exps=CPU) ;;
		pcie) a=(--gpu -ot exps=pcie) ;;
		cpu-only) a=() ;;
		esac
		step 60 build/tiermem run "${a[@]}" -m "$W/moe.gguf" --weights ddr -t "$T" -n 48 --temp 0 \
			-p "Once upon a time" >"$OUTD/hybrid-$mode-$r.txt" 2>"$OUTD/hybrid-$mode-$r.err"
		echo "round $r $mode: exit $? $(grep -h '^generation:' "$OUTD/hybrid-$mode-$r.err") $(grep -h '^weights:' "$OUTD/hybrid-$mode-$r.err")" |
			tee -a "$OUTD/bench.txt"
	done
	[ -s "$OUTD/hybrid-vram-$r.txt" ] && cmp -s "$OUTD/hybrid-vram-$r.txt" "$OUTD/hybrid-pcie-$r.txt" &&
		echo "round $r: pcie text = vram text" ||
		echo "round $r: pcie text DIFFERS from vram text (or no text)"
done | tee -a "$OUTD/bench.txt"
echo "== tiermem bench (gpu tier)"
step 60 build/tiermem bench --size 4G --passes 5 -t 2 --tier anon-thp 2>/dev/null | tail -4 | tee -a "$OUTD/bench.txt"
if ls .peer-cuda/peer.tar.xz.part* >/dev/null 2>&1; then
	peer 2>&1 | tee -a "$OUTD/peer.txt"
else
	echo "== llama.cpp CUDA peer: not staged (bench/gpu-peer-stage.sh here, then carry .peer-cuda)"
fi
