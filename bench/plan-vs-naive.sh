#!/usr/bin/env bash
# The planner's placement against naive file (layer) order, on a ~2 GB dense
# and a ~4 GB MoE model (Q4_K_M mix), tiers `ddr` capped at 25 % of the model
# and the rest on `pmem`: here a file standing in for PMEM (labelled "file (not
# persistent memory)"; this machine has none), so BOTH TIERS ARE DRAM: the
# fast tier anonymous 2 MiB pages, the slow one the page cache's 4 KiB pages.
# A measured gap between the placements here is mostly page size and page
# cache, not PMEM; the predicted one is the cost model at the bandwidths
# measured here.
#
#   bench/plan-vs-naive.sh [--rounds R] [--threads T] [--gen G] [MODEL...]
#
# Per model and placement: the slow tier's bytes per token and tok/s, predicted
# and, when `tiermem import` and `run --name` exist, measured. Placements are
# made for the mission's tiers (ddr 100 GB/s, pmem 39 GB/s: only their order
# matters to the planner); the predictions use the bandwidths measured here
# (medians of 5 alternating measurements of both tiers by `tiermem plan`),
# since on this host either DRAM stand-in may measure faster. Measured: both
# placements imported into a private store (TIERMEM_HOME in a temp dir), then
# R rounds of `tiermem run --name --json`, alternating which placement goes
# first; medians, and the median of the per-round planner/naive ratios. The
# load average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5 threads=$(nproc) gen=32
models=()
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--gen) gen=$2; shift 2 ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	*) models+=("$1"); shift ;;
	esac
done
BUILD=${BUILD:-$PWD/build}
TM=$BUILD/tiermem
[ -x "$TM" ] || { echo "plan-vs-naive: run make first" >&2; exit 2; }
if [ ${#models[@]} -eq 0 ]; then
	mkdir -p "$BUILD/bench-models"
	d=$BUILD/bench-models/dense-2g-q4km.gguf m=$BUILD/bench-models/moe-4g-q4km.gguf
	[ -f "$d" ] || "$TM" synth --arch llama --type q4_K_M --size 2G -o "$d"
	[ -f "$m" ] || "$TM" synth --arch qwen3moe --type q4_K_M --size 4G -o "$m"
	models=("$d" "$m")
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/tm-plan-bench.XXXXXX")
export TIERMEM_HOME=$W/home
mkdir -p "$W/pmem"
trap 'rm -rf "$W"' EXIT
have_import=0
"$TM" import --help >/dev/null 2>&1 && have_import=1

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
for i in "${!models[@]}"; do
	mdl=${models[$i]}
	size=$(stat -c %s "$mdl")
	ddr=$((size / 4)) slow=$((size * 2))
	# the bandwidths the predictions use: both tiers measured 5 times, alternating
	for k in 1 2 3 4 5; do
		if [ $((k % 2)) -eq 1 ]; then
			"$TM" plan -m "$mdl" --tier ddr=ddr:$ddr --tier pmem=file:$slow,path="$W/pmem" -t "$threads" --json
		else
			"$TM" plan -m "$mdl" --tier pmem=file:$slow,path="$W/pmem" --tier ddr=ddr:$ddr -t "$threads" --json
		fi | jq -c '[.tiers[] | {(.name): .gbps}] | add' >>"$W/$i.bw"
	done
	echo "$(basename "$mdl"): $size bytes; ddr $ddr bytes; bandwidths measured here (GB/s): $(jq -c . "$W/$i.bw" | tr '\n' ' ')"
	for how in planned naive; do
		extra=()
		[ $how = naive ] && extra=(--layer-order)
		"$TM" plan -m "$mdl" --tier "ddr=ddr:$ddr@100" --tier "pmem=file:$slow@39,path=$W/pmem" \
			"${extra[@]}" --json >"$W/$i.$how.json"
		if [ $have_import = 1 ]; then
			"$TM" import -q -m "$mdl" --name "b$i-$how" --plan "$W/$i.$how.json" >/dev/null
		fi
	done
	if [ $have_import = 1 ]; then
		for r in $(seq 1 "$rounds"); do
			if [ $((r % 2)) -eq 1 ]; then order="planned naive"; else order="naive planned"; fi
			for how in $order; do
				"$TM" run --name "b$i-$how" -n "$gen" --temp 0 --seed 1 -t "$threads" --json \
					>"$W/$i.$how.run.$r.json" 2>/dev/null
			done
			echo "  round $r/$rounds done" >&2
		done
	fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$W" "${#models[@]}" "$rounds" "$have_import" "${models[@]}" <<'PY'
import json, os, statistics, sys
w, n, rounds, have = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
names = [os.path.basename(p) for p in sys.argv[5:]]
def read(p, name):
    return next(t["read_per_token"] for t in p["tiers"] if t["name"] == name)
print()
print("%-22s %-10s %14s %10s %14s %10s %10s" % ("model", "placement", "slow GB/tok", "tok/s", "slow GB/tok", "tok/s", "measured/"))
print("%-22s %-10s %14s %10s %14s %10s %10s" % ("", "", "predicted", "predicted", "measured", "measured", "predicted"))
for i in range(n):
    tps = {}
    bw = [json.loads(l) for l in open(f"{w}/{i}.bw")]
    bd = statistics.median(b["ddr"] for b in bw)
    bp = statistics.median(b["pmem"] for b in bw)
    for how in ("planned", "naive"):
        p = json.load(open(f"{w}/{i}.{how}.json"))
        pred = 1 / (read(p, "ddr") / (bd * 1e9) + read(p, "pmem") / (bp * 1e9))
        row = [names[i], "planner" if how == "planned" else "file order", "%.3f" % (read(p, "pmem") / 1e9), "%.2f" % pred]
        if have:
            runs = [json.load(open(f"{w}/{i}.{how}.run.{r}.json")) for r in range(1, rounds + 1)]
            slow = statistics.median(sum(t["read_per_token"] for t in x["tiers"] if t["tier"] in ("pmem", "file")) for x in runs)
            tps[how] = [x["decode_tps"] for x in runs]
            m = statistics.median(tps[how])
            row += ["%.3f" % (slow / 1e9), "%.2f" % m, "%.2f" % (m / pred)]
        else:
            row += ["-", "-", "-"]
        print("%-22s %-10s %14s %10s %14s %10s %10s" % tuple(row))
    print("%-22s at ddr %.2f GB/s, pmem (file) %.2f GB/s: medians of %d measurements here" % ("", bd, bp, len(bw)))
    pl, nv = (json.load(open(f"{w}/{i}.{h}.json"))["tok_per_s"] for h in ("planned", "naive"))
    print("%-22s at the mission's ddr 100 / pmem 39 GB/s: planner %.2f, file order %.2f tok/s predicted" % ("", pl, nv))
    if have:
        ratio = statistics.median(a / b for a, b in zip(tps["planned"], tps["naive"]))
        print("%-22s planner / file order, measured: %.3fx (median of %d per-round ratios)" % ("", ratio, rounds))
if not have:
    print("\nmeasured columns: `tiermem import` and `run --name` are not in this build")
print("\nboth tiers are DRAM here (ddr: anonymous 2 MiB pages; pmem: a file in the page cache)")
PY
