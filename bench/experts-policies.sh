#!/usr/bin/env bash
# Expert-cache policies on synthetic traces of a 128-expert top-8 model whose
# locality gives per-layer LRU-64 about 67 % hits (the public figure), for
# three popularity skews (Zipf 0, 0.3, 0.5, each with the locality that
# calibrates it). Per policy at a cache of 25 % of the experts: hit rate and
# slow-tier MiB per token with admission by a separate copy and fused with the
# miss's read, and that against static frequency placement (the oracle's
# per-layer top 32 over the whole trace). Prediction: the trace's "p" field,
# right with probability ACC (default 0.97, Fate's figure): a model of a
# predictor, not a measured one. Then: slots split by heat against an even split.
#   bench/experts-policies.sh [LAYERS [TOKENS [ACC]]]
set -eu
cd "$(dirname "$0")/.."
TM=${TM:-build/tiermem}
L=${1:-32} N=${2:-2000} ACC=${3:-0.97}
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-xpol.XXXXXX")
trap 'rm -rf "$W"' EXIT
field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

echo "| zipf | locality | LRU-64 hits | policy | predict | hits at 25 % | slow MiB/tok (copy) | (fused) | fused vs static |"
echo "|---|---|---|---|---|---|---|---|---|"
for zl in "0 0.36" "0.3 0.31" "0.5 0.21"; do
	set -- $zl
	"$TM" synth --expert-trace -o "$W/t.jsonl" --layers "$L" --tokens "$N" --zipf "$1" --locality "$2" \
		--predict-accuracy "$ACC" >/dev/null
	lru64=$("$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 64 --policy lru --json | field hit_rate)
	"$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 25% --predict --json >"$W/copy"
	"$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 25% --predict --json --fused >"$W/fused"
	static=$(grep '"static"' "$W/fused" | field slow_bytes_per_token)
	paste -d'\n' "$W/copy" "$W/fused" | paste - - | while IFS=$'\t' read -r c f; do
		pol=$(echo "$c" | sed 's/.*"policy":"\([a-z]*\)".*/\1/')
		pr=$(echo "$c" | field predict)
		[ -n "$pr" ] || pr=$(echo "$c" | sed -n 's/.*"predict":\([a-z]*\).*/\1/p')
		h=$(echo "$c" | field hit_rate)
		sc=$(echo "$c" | field slow_bytes_per_token)
		sf=$(echo "$f" | field slow_bytes_per_token)
		awk -v z="$1" -v l="$2" -v a="$lru64" -v p="$pol" -v pr="$pr" -v h="$h" -v sc="$sc" -v sf="$sf" -v st="$static" \
			'BEGIN { printf "| %s | %s | %.1f %% | %s | %s | %.1f %% | %.0f | %.0f | %.2fx |\n", z, l, 100*a, p, pr, 100*h, sc/1048576, sf/1048576, sf/st }'
	done
done

# Slots split over layers by heat (the trace's first half) against an even
# split, on traces whose layers differ in skew (Zipf exponent 0.5 - S to
# 0.5 + S over the layers; locality 0.21, drift 0.02 so that popularity
# outlives the profile), 25 % of the experts in all, fused admission.
echo
echo "| zipf spread | split | lru hits | mix hits | static hits | mix slow MiB/tok | static slow MiB/tok |"
echo "|---|---|---|---|---|---|---|"
for sp in 0.3 0.5; do
	"$TM" synth --expert-trace -o "$W/s.jsonl" --layers "$L" --tokens "$N" --zipf 0.5 --zipf-spread "$sp" \
		--locality 0.21 --drift 0.02 >/dev/null
	for split in even heat; do
		"$TM" bench --expert-trace "$W/s.jsonl" --expert-cache 25% --fused --split "$split" --split-floor 0 \
			--policy lru,mix,static --json >"$W/sp"
		v() { grep "\"$1\"" "$W/sp" | field "$2"; }
		awk -v s="$sp" -v m="$split" -v a="$(v lru hit_rate)" -v b="$(v mix hit_rate)" -v c="$(v static hit_rate)" \
			-v d="$(v mix slow_bytes_per_token)" -v e="$(v static slow_bytes_per_token)" \
			'BEGIN { printf "| %s | %s | %.1f %% | %.1f %% | %.1f %% | %.0f | %.0f |\n", s, m, 100*a, 100*b, 100*c, d/1048576, e/1048576 }'
	done
done
