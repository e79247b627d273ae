#!/usr/bin/env bash
# Our DDR read ceiling against Debian's sysbench (memory, read, sequential),
# side by side in one run: rounds alternate the two tools, each round runs
# every thread count, and the ratio reported is the median over rounds of the
# per-round ratio (both tools saw about the same host state within a round).
# Our figure is the *median* pass (not the best) of the THP tier, with and
# without prefetch, whichever is higher; sysbench's is its whole-run average.
# Usage: bench/vs-sysbench.sh [ROUNDS] [MAX_THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
maxt=${2:-$(nproc)}
tm=${TIERMEM:-build/tiermem}
command -v sysbench >/dev/null || { echo "vs-sysbench: sysbench missing (make deps)" >&2; exit 2; }
[ -x "$tm" ] || { echo "vs-sysbench: $tm missing (make)" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
	"$tm" bench --tier anon-thp --size 1G --passes 10 -t "$maxt" --json >"$out/tm.$r.json"
	for t in $(seq 1 "$maxt"); do
		sysbench memory --memory-oper=read --memory-access-mode=seq --memory-block-size=1G \
			--memory-total-size=$((10 * t))G --threads="$t" run |
			sed -n 's/.*transferred (\([0-9.]*\) MiB\/sec).*/\1/p' >"$out/sb.$r.$t"
	done
	echo "round $r/$rounds done" >&2
done

python3 - "$out" "$rounds" "$maxt" <<'PY'
import json, statistics, sys
d, rounds, maxt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(f"DDR read bandwidth, GB/s (1e9 B/s), medians of {rounds} alternating rounds")
print(f"{'threads':>7} {'tiermem':>9} {'sysbench':>9} {'ratio (median of per-round ratios)':>36}")
worst = None
for t in range(1, maxt + 1):
    ours, peer = [], []
    for r in range(1, rounds + 1):
        j = json.load(open(f"{d}/tm.{r}.json"))
        reads = [x for x in j["tiers"][0]["read"] if x["threads"] == t]
        ours.append(max(x["median_gbs"] for x in reads))
        peer.append(float(open(f"{d}/sb.{r}.{t}").read()) * 1048576 / 1e9)
    o, p = statistics.median(ours), statistics.median(peer)
    ratio = statistics.median([a / b for a, b in zip(ours, peer)])
    worst = ratio if worst is None else min(worst, ratio)
    print(f"{t:>7} {o:>9.1f} {p:>9.1f} {ratio:>35.2f}x")
print(f"lowest ratio tiermem/sysbench: {worst:.2f}x")
PY
