#!/usr/bin/env bash
# Continuous batching in tiermem serve: aggregate decode tok/s and p50/p99
# time-to-first-token and inter-token latency for 1, 2, 4 and 8 concurrent
# streams on the ~2 GB dense Q4_K_M benchmark model (synthesized into
# build/bench-models if missing), rounds alternating between stream counts,
# medians. Prints the load average before and after: the host is shared.
# With --llama, the same for llama.cpp's batched decode (bench/llama-streams.mjs,
# node-llama-cpp: several sequences of one context), after tiermem's.
# usage: bench/serve-streams.sh [--rounds N] [--tokens N] [--threads T] [--llama] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rounds=3 tokens=48 threads=2 model= llama=0
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--tokens) tokens=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--llama) llama=1; shift ;;
	-*) echo "usage: bench/serve-streams.sh [--rounds N] [--tokens N] [--threads T] [--llama] [MODEL]" >&2; exit 2 ;;
	*) model=$1; shift ;;
	esac
done
if [ -z "$model" ]; then
	model=$BUILD/bench-models/dense-2g-q4km.gguf
	mkdir -p "$BUILD/bench-models"
	[ -f "$model" ] || "$BUILD/tiermem" synth --arch llama --type q4_K_M --size 2G -o "$model"
fi
log=$(mktemp)
"$BUILD/tiermem" serve -m "$model" --port 0 -t "$threads" -np 8 -c $((tokens + 64)) 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
port=
for _ in $(seq 1 600); do
	port=$(sed -n 's/.*:\([0-9]*\)\/ with .*/\1/p' "$log")
	[ -n "$port" ] && break
	kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
	sleep 0.1
done
head -1 "$log"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $threads threads, $rounds rounds, $tokens tokens per stream"
node bench/serve-streams.mjs "http://127.0.0.1:$port" "$rounds" "$tokens" 1 2 4 8
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ $llama -eq 1 ]; then
	kill $pid; wait $pid 2>/dev/null || true
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	BUILD=$BUILD node bench/llama-streams.mjs "$model" "$threads" "$rounds" "$tokens" 1 2 4 8
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
