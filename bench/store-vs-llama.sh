#!/usr/bin/env bash
# Time to first token and peak RSS of `tiermem run --name` (an imported model,
# its tiers mapped) against llama.cpp (node-llama-cpp, mmap, as it loads by
# default) and `tiermem run -m` on the same GGUF, with a warm and a cold page
# cache (cold: caches dropped before each run; needs root), alternating the
# order every round; medians of per-round ratios. Also the import's MB/s
# against the write rate of the store's filesystem (dd with fdatasync; tiermem
# bench measures reads only) in the same run.
#
#   bench/store-vs-llama.sh [--rounds R] [--threads T] [--ddr-share F] [MODEL]
#
# Without MODEL: a ~2 GB dense llama Q4_K_M synthesized into build/bench-models.
# The import puts --ddr-share (default 0.25) of the model on a ddr tier (copied
# into 2 MiB pages at start) and the rest on a file tier (mapped, zero copy),
# the issue's measurement layout (bandwidths given as @20 and @5 GB/s so ddr is
# filled first: here both tiers are DRAM and measuring them would order them
# by noise). Time to first token: tiermem's is its own
# "load" + "prompt" figures (from before the model is opened to the first
# token; the per-tier bandwidth measurement run does in between is not
# counted); llama.cpp's is measured inside node from before loadModel to the
# first token (node's own start-up is not counted). Peak RSS is the process's
# (GNU time %M; llama.cpp's includes node's own, reported separately as the
# RSS of node loading the peer with no model).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 threads=$(nproc) share=0.25 model=""
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--ddr-share) share=$2; shift 2 ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) model=$1; shift ;;
	esac
done
BUILD=${BUILD:-$PWD/build}
export BUILD
TM=$BUILD/tiermem
[ -x "$TM" ] || { echo "store-vs-llama: run make first" >&2; exit 2; }
cold=1
[ "$(id -u)" -eq 0 ] || { echo "store-vs-llama: not root: no cold runs (cannot drop caches)" >&2; cold=0; }
if [ -z "$model" ]; then
	mkdir -p "$BUILD/bench-models"
	model=$BUILD/bench-models/dense-2g-q4km.gguf
	[ -f "$model" ] || "$TM" synth --arch llama --type q4_K_M --size 2G -q -o "$model" >/dev/null
fi
out=$(mktemp -d)
export TIERMEM_HOME=$out/home TIERMEM_BACKEND=user
trap 'rm -rf "$out"' EXIT
PROMPT="Once upon a time"
size=$(stat -c %s "$model")
ddr=$(awk -v s="$size" -v f="$share" 'BEGIN { printf "%d", s * f / 1024 }')K

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# the store's filesystem write rate: what the import's copy is bounded by
write_rate() {
	local f=$TIERMEM_HOME/dd.tmp mb=$((size / 1048576)) t0 t1
	mkdir -p "$TIERMEM_HOME"
	t0=$(date +%s.%N)
	dd if=/dev/zero of="$f" bs=1M count="$mb" conv=fdatasync status=none
	t1=$(date +%s.%N)
	rm -f "$f"
	awk -v b="$size" -v a="$t0" -v c="$t1" 'BEGIN { printf "%.1f", b / (c - a) / 1e6 }'
}

# tiermem: "load: X s" + "prompt: N tokens in Y s" -> ttft, rss (KiB)
run_tm() {	# ARGS...
	/usr/bin/time -f "rss %M" "$TM" run "$@" -p "$PROMPT" -n 1 -t "$threads" --seed 1 >/dev/null 2>"$out/err" ||
		{ cat "$out/err" >&2; exit 1; }
	awk '/^load:/ { l = $2 } /^prompt:/ { p = $5 } /^rss / { r = $2 } END { printf "%.4f %d\n", l + p, r }' "$out/err"
}
run_llama() {
	/usr/bin/time -f "rss %M" -o "$out/rss" node bench/ttft-llama.mjs "$model" "$PROMPT" "$threads" >"$out/j" ||
		exit 1
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); r=open(sys.argv[2]).read().split()[-1]; print("%.4f %s %.4f" % (j["ttft_s"], r, j["load_s"]))' "$out/j" "$out/rss"
}
node_rss=$(/usr/bin/time -f "%M" node -e 'import("./tests/peer/peer.mjs").then(p => p.openPeer([])).then(() => process.exit(0))' 2>&1 >/dev/null | tail -1)

# ---- import, side by side with the filesystem's write rate ----
: >"$out/import"
for r in $(seq 1 "$rounds"); do
	"$TM" rm bench >/dev/null 2>&1 || true
	wr=$(write_rate)
	cat "$model" >/dev/null
	t0=$(date +%s.%N)
	"$TM" import -m "$model" --name bench --tier ddr=ddr:"$ddr"@20 --tier slow=file:1T@5 -q >"$out/imp" 2>&1 ||
		{ cat "$out/imp" >&2; exit 1; }
	t1=$(date +%s.%N)
	copy=$(sed -n 's/.* in \([0-9.]*\) s (\([0-9]*\) MB\/s).*/\2/p' "$out/imp")
	awk -v b="$size" -v a="$t0" -v c="$t1" -v w="$wr" -v m="$copy" \
		'BEGIN { printf "%s %.1f %s\n", m, b / (c - a) / 1e6, w }' >>"$out/import"
	echo "import round $r/$rounds done" >&2
done
grep '^  ' "$out/imp" >"$out/placement"

# ---- time to first token and peak RSS ----
for mode in warm cold; do
	[ $mode = cold ] && [ $cold = 0 ] && continue
	for r in $(seq 1 "$rounds"); do
		if [ $((r % 2)) -eq 1 ]; then order="name file llama"; else order="llama file name"; fi
		for who in $order; do
			if [ $mode = warm ]; then
				cat "$model" "$TIERMEM_HOME"/models/bench/*.region >/dev/null
			else
				drop
			fi
			case $who in
			name) run_tm --name bench ;;
			file) run_tm -m "$model" ;;
			llama) run_llama ;;
			esac >"$out/$mode.$who.$r"
		done
		echo "$mode round $r/$rounds done" >&2
	done
done

python3 - "$out" "$rounds" "$threads" "$model" "$size" "$share" "$node_rss" "$cold" <<'PY'
import statistics as st, sys
d, rounds, threads, model, size, share, node_rss, cold = sys.argv[1:9]
rounds, size, cold = int(rounds), int(size), int(cold)
med = st.median
print(f"store vs llama.cpp: {model} ({size / 1e9:.2f} GB), {threads} threads, "
      f"ddr share {share}, medians of {rounds} alternating rounds; "
      f"load average {open('/proc/loadavg').read().split()[0]}")
print(open(f"{d}/placement").read().rstrip())
imp = [list(map(float, l.split())) for l in open(f"{d}/import")]
print(f"import: copy {med([i[0] for i in imp]):.0f} MB/s, whole command (hash + copy + seal) "
      f"{med([i[1] for i in imp]):.0f} MB/s; the store's filesystem writes {med([i[2] for i in imp]):.0f} MB/s "
      f"(dd, fdatasync); copy / write rate {med([i[0] / i[2] for i in imp]):.2f}x")
def get(mode, who):
    return [list(map(float, open(f"{d}/{mode}.{who}.{r}").read().split())) for r in range(1, rounds + 1)]
print(f"{'':6} {'ttft s: run --name':>19} {'run -m':>8} {'llama.cpp':>10} {'llama/name':>11} "
      f"{'RSS MiB: --name':>16} {'-m':>7} {'llama.cpp':>10}")
for mode in (["warm", "cold"] if cold else ["warm"]):
    n, f, l = get(mode, "name"), get(mode, "file"), get(mode, "llama")
    ratio = med([b[0] / a[0] for a, b in zip(n, l)])
    print(f"{mode:6} {med([x[0] for x in n]):19.3f} {med([x[0] for x in f]):8.3f} "
          f"{med([x[0] for x in l]):10.3f} {ratio:10.2f}x "
          f"{med([x[1] for x in n]) / 1024:16.0f} {med([x[1] for x in f]) / 1024:7.0f} "
          f"{med([x[1] for x in l]) / 1024:10.0f}")
    print(f"{'':6} llama.cpp's loadModel alone: {med([x[2] for x in l]):.3f} s of its time to first token")
print(f"(node with the peer loaded and no model: {int(node_rss) / 1024:.0f} MiB RSS)")
PY
