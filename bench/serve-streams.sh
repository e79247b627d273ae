#!/usr/bin/env bash
# Continuous batching in tiermem serve: aggregate decode tok/s and p50/p99
# time-to-first-token and inter-token latency for 1, 2, 4 and 8 concurrent
# streams on the ~2 GB dense Q4_K_M benchmark model (synthesized into
# build/bench-models if missing), rounds alternating between stream counts,
# medians. Prints the load average before and after each phase: the host is
# shared. With --llama, the same for llama.cpp's batched decode afterwards
# (bench/llama-streams.mjs, node-llama-cpp: one context with a sequence per
# stream, their pending tokens evaluated in one llama_decode), then both side
# by side. Each phase is cut off after --limit seconds (default 140), so a
# loaded host cannot keep it running for long; a phase cut off says so and
# keeps the stream counts it finished.
# --repack on|off: tiermem serve's weight layout, weights in DDR (the layout
# needs them there; default: serve's own defaults).
# usage: bench/serve-streams.sh [--rounds N] [--tokens N] [--threads T] [--limit S] [--repack on|off] [--llama] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rounds=2 tokens=24 threads=2 limit=140 model= llama=0 repack=()
usage="usage: bench/serve-streams.sh [--rounds N] [--tokens N] [--threads T] [--limit S] [--repack on|off] [--llama] [MODEL]"
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--tokens) tokens=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--limit) limit=$2; shift 2 ;;
	--repack) repack=(--weights ddr --repack "$2"); shift 2 ;;
	--llama) llama=1; shift ;;
	-*) echo "$usage" >&2; exit 2 ;;
	*) model=$1; shift ;;
	esac
done
if [ -z "$model" ]; then
	model=$BUILD/bench-models/dense-2g-q4km.gguf
	mkdir -p "$BUILD/bench-models"
	[ -f "$model" ] || "$BUILD/tiermem" synth --arch llama --type q4_K_M --size 2G -o "$model"
fi
[ -f "$model" ] || { echo "bench/serve-streams.sh: $model: no such file" >&2; exit 2; }
if [ $llama -eq 1 ] && [ ! -d "$BUILD/peer/node_modules/node-llama-cpp" ]; then
	echo "bench/serve-streams.sh: --llama needs node-llama-cpp in $BUILD/peer (scripts/deps)" >&2
	exit 2
fi
W=$(mktemp -d) TM=$BUILD/tiermem SERVE_START_S=120
. tests/lib/serve.sh
load() { echo "load average $1: $(cut -d' ' -f1-3 /proc/loadavg)"; }

start tm -m "$model" "${repack[@]}" -t "$threads" -np 8 -c $((tokens + 64)) || { cat "$W/tm.err" >&2; exit 1; }
head -1 "$W/tm.err"
load before
echo "$threads threads, $rounds rounds, $tokens tokens per stream"
RESULTS_JSON=$W/tiermem.json timeout "$limit" node bench/serve-streams.mjs "http://127.0.0.1:$PORT_tm" "$rounds" "$tokens" 1 2 4 8 ||
	echo "tiermem phase: cut off after $limit s or failed (exit $?)"
load after
kill "$PID_tm"
wait "$PID_tm" 2>/dev/null || true
[ $llama -eq 1 ] || exit 0

load before
BUILD=$BUILD RESULTS_JSON=$W/llama.json timeout "$limit" node bench/llama-streams.mjs "$model" "$threads" "$rounds" "$tokens" 1 2 4 8 ||
	echo "llama.cpp phase: cut off after $limit s or failed (exit $?)"
load after
[ -f "$W/tiermem.json" ] && [ -f "$W/llama.json" ] || exit 1
node -e '
const [t, l] = process.argv.slice(1).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")));
console.log("| streams | tiermem tok/s | llama.cpp tok/s | tiermem / llama.cpp | tiermem vs 1 stream | llama.cpp vs 1 stream | TTFT p50 ms tiermem / llama.cpp | inter-token p50 / p99 ms tiermem; llama.cpp |");
console.log("|---|---|---|---|---|---|---|---|");
for (const c of Object.keys(t).filter((k) => l[k])) {
	const a = t[c], b = l[c], f = (x) => x.toFixed(0);
	console.log(`| ${c} | ${a.agg.toFixed(2)} | ${b.agg.toFixed(2)} | ${(a.agg / b.agg).toFixed(2)}x | ${(a.agg / t[1].agg).toFixed(2)}x | ${(b.agg / l[1].agg).toFixed(2)}x | ${f(a.ttft50)} / ${f(b.ttft50)} | ${f(a.itl50)} / ${f(a.itl99)}; ${f(b.itl50)} / ${f(b.itl99)} |`);
}' "$W/tiermem.json" "$W/llama.json"
