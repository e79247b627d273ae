#!/usr/bin/env bash
# Prepares llama.cpp's CUDA build (the pinned npm peer, @node-llama-cpp/linux-x64-cuda)
# for the GPU machine, which has no network and no node, and takes at most 64 MiB per
# call, working tree included. Run here; bench/gpu-run.sh then runs the comparison on
# the GPU machine when the parts are present.
#
#   bench/gpu-peer-stage.sh [OUTDIR]     default .peer-cuda (git-ignored)
#
# Run it at the root of the checkout that the GPU session calls the device from: the
# device tool sends that checkout (and the ignored paths named in carry), not a helper's
# worktree.
#   KEEP="ptx:90"                         the CUDA code kept (fatbin_keep.py); KEEP=all keeps it all
#   PART=56M                              the largest part (a device call carries one)
#
# What it does:
# - extracts the release's own headers (llama.h, ggml*.h) from the source bundle that
#   node-llama-cpp ships (llama/gitRelease.bundle) and builds bench/peer-cuda/llama_decode.c,
#   a small C driver, against the release's libllama: no node (99 MB) is needed there;
# - keeps only the CUDA code an H200 can run: libggml-cuda.so (159 MB) holds machine code
#   for sm_86/89/120/121 and PTX for compute_75/80/90; an sm_90 GPU runs only the
#   compute_90 PTX (the driver compiles it at load; gpu-run.sh keeps that compile in
#   .peer-cuda/jit for the machine's later calls). nvprune and cuobjdump are not installed
#   here, so bench/peer-cuda/fatbin_keep.py rewrites the .so's fat binaries in place;
# - packs the driver and the libraries (libggml-cuda, libggml-base, libggml and libllama of
#   the CUDA release, the CPU backend variants) into one xz tarball, split into parts of
#   at most PART, with a SHA-256 of the whole.
#
# Measured here (session 5): libggml-cuda.so 159 MB, 124 MB as xz; with KEEP=ptx:90 its
# fat binaries shrink from 128.5 MB of code to 18.7 MB of (compressed) PTX and the .so
# compresses to 21.4 MB: the whole tarball fits one part, so ONE device call carries it
# (carry: [".peer-cuda"]). With KEEP=all (124 MB of xz, an earlier session's figure, not
# re-measured) it would take 3 parts: 3 calls back to back while the
# machine stays warm (30 s), each carrying .peer-cuda/peer.tar.xz.partNN alone (ignored
# paths left by an earlier call of a warm machine stay), the last also running gpu-run.sh.
# Not run on a GPU yet: whether the driver JIT-compiles the PTX in reasonable time is
# unknown (gpu-run.sh times it).
set -eu -o pipefail
OUT=${1:-.peer-cuda}
KEEP=${KEEP:-ptx:90}
PART=${PART:-56M}
NM=build/peer/node_modules
PKG=$NM/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda
BUNDLE=$NM/node-llama-cpp/llama/gitRelease.bundle
die() { echo "gpu-peer-stage: $*" >&2; exit 2; }
[ -f "$PKG/libggml-cuda.so" ] || die "no $PKG/libggml-cuda.so: install the npm peer first (make deps)"
[ -f "$BUNDLE" ] || die "no $BUNDLE: the peer's source bundle (for llama.h) is missing"
lib=$(cd "$PKG" && ls libllama.cuda.*.so) || die "no libllama.cuda.*.so in $PKG"
ggml=$(cd "$PKG" && ls libggml.cuda.*.so) || die "no libggml.cuda.*.so in $PKG"
S=$(mktemp -d "${TMPDIR:-/tmp}/gpu-peer-stage.XXXXXX")
trap 'rm -rf "$S"' EXIT

echo "== the release's headers, from its source bundle"
git clone -q --no-checkout "$BUNDLE" "$S/src"
mkdir -p "$S/h"
git -C "$S/src" archive HEAD include ggml/include | tar -x -C "$S/h"

echo "== the driver and the libraries"
mkdir -p "$S/peer"
cp "$PKG/libggml-cuda.so" "$PKG/libggml-base.so" "$PKG/$ggml" "$PKG/$lib" "$PKG"/libggml-cpu-*.so "$S/peer/"
cc -O2 -std=c11 -Wall -Wextra -Werror -I"$S/h/include" -I"$S/h/ggml/include" bench/peer-cuda/llama_decode.c \
	-o "$S/peer/llama_decode" -L"$S/peer" -l:"$lib" -l:"$ggml" -l:libggml-base.so -Wl,-rpath,"\$ORIGIN"
if [ "$KEEP" != all ]; then
	# shellcheck disable=SC2086
	python3 bench/peer-cuda/fatbin_keep.py "$S/peer/libggml-cuda.so" $KEEP
fi

echo "== packing (xz, parts of at most $PART)"
tar -C "$S" -cf - peer | xz -T2 -6 >"$S/peer.tar.xz"
rm -rf "$OUT"
mkdir -p "$OUT"
split -b "$PART" -d -a 2 "$S/peer.tar.xz" "$OUT/peer.tar.xz.part"
(cd "$S" && sha256sum peer.tar.xz) >"$OUT/peer.tar.xz.sha256"
n=$(find "$OUT" -name 'peer.tar.xz.part*' | wc -l)
echo "libggml-cuda.so: $(stat -c %s "$PKG/libggml-cuda.so") bytes, kept: $KEEP"
echo "tarball: $(stat -c %s "$S/peer.tar.xz") bytes of xz ($(du -sb "$S/peer" | cut -f1) bytes unpacked) in $n part(s):"
ls -l "$OUT"
if [ "$n" -eq 1 ]; then
	echo "device calls: 1 (carry [\"$OUT\"], command bench/gpu-run.sh)"
else
	echo "device calls: $n, back to back while the machine is warm: each carries one $OUT/peer.tar.xz.partNN" \
		"(and $OUT/peer.tar.xz.sha256), the last runs bench/gpu-run.sh"
fi
