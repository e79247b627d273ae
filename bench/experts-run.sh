#!/usr/bin/env bash
# The expert cache in a real run: a ~4 GB synthetic qwen3moe (64 experts
# top-8, Q4_K_M mix) imported with every routed expert on a slow tier and the
# rest on DDR, then `tiermem run --name --json` alternating: no cache, a 25 %
# cache with async copies, with sync copies, and with next-layer prediction.
# The slow tier is a file standing in for PMEM (this machine has none), so
# BOTH TIERS ARE DRAM here: tok/s says nothing about Optane; bytes and hit
# rates are exact. Random-weight routers route almost uniformly, so the hit
# rate is near the cache's share; real skew comes from real traces.
#
#   bench/experts-run.sh [--rounds R] [--threads T] [--gen G] [MODEL.gguf]
#
# Per mode: median tok/s, hit rate, MiB per token from the slow tier (the
# forward pass's reads), from the cache region, and copied; and whether the
# run's cache counters agree with its per-tier counters: the cache region's
# bytes against hits x their experts' bytes, and the slow tier's against
# misses x their experts' bytes (within 1 %). The load average is printed
# before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2 threads=$(nproc) gen=16 model=
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--gen) gen=$2; shift 2 ;;
	-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
	*) model=$1; shift ;;
	esac
done
BUILD=${BUILD:-$PWD/build}
TM=$BUILD/tiermem
[ -x "$TM" ] || { echo "experts-run: run make first" >&2; exit 2; }
if [ -z "$model" ]; then
	mkdir -p "$BUILD/bench-models"
	model=$BUILD/bench-models/qwen3moe-4g-q4_K_M.gguf
	[ -f "$model" ] || "$TM" synth --arch qwen3moe --type q4_K_M --size 4G -q -o "$model"
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-xrun.XXXXXX")
trap 'rm -rf "$W"' EXIT
export TIERMEM_HOME=$W/home TIERMEM_BACKEND=user
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
size=$(stat -c %s "$model")
"$TM" import -m "$model" --name m -q --tier ddr=ddr:$((size / 1048576 / 2))M@50 --tier pmem=file:$((size / 1048576 * 2))M@10 \
	-ot exps=pmem >/dev/null
modes=("none" "--expert-cache 25%" "--expert-cache 25% --expert-copy sync" "--expert-cache 25% --expert-predict")
for r in $(seq 1 "$rounds"); do
	# alternate the order: odd rounds forwards, even rounds backwards
	idx=(0 1 2 3)
	[ $((r % 2)) -eq 0 ] && idx=(3 2 1 0)
	for i in "${idx[@]}"; do
		m=${modes[$i]}
		[ "$m" = none ] && m=
		# shellcheck disable=SC2086
		"$TM" run --name m -p "Once upon a time" -n "$gen" --temp 0 -t "$threads" $m --json >"$W/r$i.$r.json" 2>/dev/null
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$W" "$rounds" "${modes[@]}" <<'EOF'
import json, statistics, sys
w, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
M = 1048576
print("| mode | tok/s (median) | hits | slow tier MiB/tok | cache region MiB/tok | copied MiB/tok | region = hits x bytes | slow = misses x bytes |")
print("|---|---|---|---|---|---|---|---|")
for i, mode in enumerate(modes):
    runs = [json.load(open(f"{w}/r{i}.{r}.json")) for r in range(1, rounds + 1)]
    tps = statistics.median(j["decode_tps"] for j in runs)
    j = runs[-1]
    tiers = {t["tier"]: t["read_per_token"] for t in j["tiers"]}
    slow = tiers.get("pmem", 0)
    x = j.get("experts")
    if not x:
        print(f"| {mode} | {tps:.2f} | -- | {slow / M:.1f} | 0 | 0 | -- | -- |")
        continue
    region = x["cache_bytes_per_token"]
    hitb = x.get("hit_bytes_per_token", region)
    missb = x["slow_expert_bytes_per_token"]
    ok = lambda a, b: "yes (%.3f %%)" % (100 * abs(a - b) / max(b, 1)) if abs(a - b) <= 0.01 * max(b, 1) else "NO (%.1f vs %.1f)" % (a / M, b / M)
    print(f"| {mode} | {tps:.2f} | {100 * x['total']['hit_rate']:.1f} % | {slow / M:.1f} | {region / M:.1f} | "
          f"{x['copy_bytes_per_token'] / M:.1f} | {ok(region, hitb)} | {ok(slow, missb)} |")
EOF
