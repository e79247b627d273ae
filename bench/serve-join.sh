#!/usr/bin/env bash
# Chunked prefill in tiermem serve: a running stream's inter-token latency
# (p50/p99/max) while a long prompt joins, with the prompt evaluated at once
# (-b 4096: how serve ran before chunked prefill) and in 64-token chunks
# (-b 64, the default), rounds alternating between the two servers. The model
# defaults to a ~256 MB Q4_K_M synth (built into build/bench-models if
# missing) so a round takes seconds. Prints the load average: the host is shared.
# usage: bench/serve-join.sh [--rounds N] [--prompt-tokens N] [--threads T] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rounds=3 ptok=1000 threads=2 model=
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--prompt-tokens) ptok=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	-*) echo "usage: bench/serve-join.sh [--rounds N] [--prompt-tokens N] [--threads T] [MODEL]" >&2; exit 2 ;;
	*) model=$1; shift ;;
	esac
done
if [ -z "$model" ]; then
	model=$BUILD/bench-models/dense-256m-q4km.gguf
	mkdir -p "$BUILD/bench-models"
	[ -f "$model" ] || "$BUILD/tiermem" synth --arch llama --type q4_K_M --size 256M --ctx 4096 -q -o "$model" >/dev/null
fi
W=$(mktemp -d) TM=$BUILD/tiermem SERVE_START_S=120 urls=()
. tests/lib/serve.sh
for b in 4096 64; do
	start "b$b" -m "$model" -t "$threads" -np 2 -c $((ptok + 1100)) -b $b || { cat "$W/b$b.err" >&2; exit 1; }
	port_var=PORT_b$b
	urls+=("-b$b=http://127.0.0.1:${!port_var}")
done
head -1 "$W/b4096.err"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $threads threads, $rounds rounds, a $ptok-token prompt joining"
node bench/serve-join.mjs "$rounds" "$ptok" "${urls[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
