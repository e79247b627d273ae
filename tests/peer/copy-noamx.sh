#!/usr/bin/env bash
# Copy the llama.cpp peer ($BUILD/peer) to DEST/peer without ggml's AMX CPU
# variant (libggml-cpu-sapphirerapids.so) and without the GPU and ARM builds,
# so ggml loads the best variant left (on this host the AVX-512 one). For
# files that variant cannot run (suite 40) and for speed figures of both.
#
#   tests/peer/copy-noamx.sh DEST    (then run peer scripts with BUILD=DEST)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: copy-noamx.sh DEST" >&2; exit 2; }
BUILD=${BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
[ -d "$BUILD/peer/node_modules" ] || { echo "copy-noamx: no peer in $BUILD/peer (run scripts/deps)" >&2; exit 1; }
mkdir -p "$1/peer"
(cd "$BUILD/peer" && tar cf - --exclude='./node_modules/@node-llama-cpp/linux-x64-*' \
	--exclude='./node_modules/@node-llama-cpp/linux-arm*' --exclude='*/libggml-cpu-sapphirerapids.so' .) |
	(cd "$1/peer" && tar xf -)
