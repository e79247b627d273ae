#!/usr/bin/env bash
# The CUDA kernels compile with nvcc and export their entry point. There is no
# GPU where this runs, so nothing here executes them: see kernels/cuda/.
set -u
cd "$TOP"
nvcc=$(command -v /usr/local/cuda/bin/nvcc nvcc 2>/dev/null | head -1)
if [ -z "$nvcc" ]; then
	echo "ok 1 - # SKIP nvcc not installed"
	exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if make --no-print-directory cuda NVCC="$nvcc" BUILD="$out" >"$out/log" 2>&1; then
	echo "ok 1 - make cuda builds kernels/cuda/*.cu with $($nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
else
	sed 's/^/# /' "$out/log"
	echo "not ok 1 - make cuda failed"
	exit 1
fi
if nm -C "$out"/cuda/kernels/cuda/matvec.o 2>/dev/null | grep -q ' T tm_cuda_matvec$'; then
	echo "ok 2 - matvec.o exports tm_cuda_matvec (C linkage)"
else
	echo "not ok 2 - tm_cuda_matvec not exported by matvec.o"
	exit 1
fi
