#!/usr/bin/env bash
# tiermem plan and synth --header-only as a user meets them, on the mission's
# arithmetic: a 1T-parameter MoE shaped like Kimi-K2 (61 layers, 384 experts
# top-8, ~32B active, ~590 GiB at q4_K_M) exists here only as a header of a few
# MB. On 768 GiB of PMEM at 39 GB/s alone it must predict about 1.5-2 tok/s;
# adding DDR for the always-active tensors must predict more, and say which
# tensors moved and why. Bad input is one line and exit 2.
set -u
cd "$TOP"
TM=$BUILD/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-plan-cli.XXXXXX")
trap 'rm -rf "$W"' EXIT
. "$TOP/tests/lib/tap.sh"


# py FILE EXPR: evaluate a Python expression over the JSON in FILE (as j)
py() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }

# Kimi-K2-like: MLA and the shared expert are approximated by qwen3moe's
# attention (q 64x128, kv 8x128) until synth writes deepseek2; the tensor
# table has the same classes the planner sorts by.
KIMI=(--arch qwen3moe --type q4_K_M --layers 61 --dim 7168 --heads 64 --kv-heads 8 --head-dim 128
      --experts 384 --experts-used 8 --expert-ff 2048 --vocab 163840)
"$TM" synth "${KIMI[@]}" --header-only -o "$W/kimi.gguf" >"$W/synth.out" 2>"$W/err"
rc=$?
size=$(stat -c %s "$W/kimi.gguf" 2>/dev/null || echo 0)
check "synth --header-only: a 1T-parameter MoE in a few MB ($size bytes): $(cat "$W/synth.out")" \
	'[ $rc -eq 0 ] && [ "$size" -gt 100000 ] && [ "$size" -lt 8000000 ] && grep -q "1.0.e+06 M params.*header only" "$W/synth.out"'

"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --json >"$W/p1.json" 2>"$W/err"
tps1=$(jq .tok_per_s "$W/p1.json" 2>/dev/null)
check "768 GiB PMEM at 39 GB/s alone: about 1.5-2 tok/s (${tps1:-none})" \
	'py "$W/p1.json" "1.4 <= j[\"tok_per_s\"] <= 2.3 and len(j[\"tiers\"]) == 1 and j[\"tiers\"][0][\"tensors\"] == len(j[\"tensors\"])"'
check "the prediction is the tensors' reads per token over 39 GB/s, recomputed from the JSON" \
	'py "$W/p1.json" "abs(sum(t[\"read_per_token\"] for t in j[\"tensors\"]) / 39e9 - j[\"sec_per_token\"]) < 1e-9"'
check "routed experts are read 8/384 of their bytes per token; attention all of it" \
	'py "$W/p1.json" "all(abs(t[\"read_per_token\"] - t[\"bytes\"] * (8/384 if t[\"class\"] == \"routed experts\" else 1)) < 1 for t in j[\"tensors\"] if t[\"class\"] in (\"routed experts\", \"attention\"))"'

prev=$tps1
for ddr in 64G@100 192G@280; do
	"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:$ddr --json >"$W/p2.json" 2>"$W/err"
	tps=$(jq .tok_per_s "$W/p2.json" 2>/dev/null)
	check "adding DDR $ddr: higher (${tps:-none} > $prev tok/s), every always-read tensor on DDR" \
		'py "$W/p2.json" "j[\"tok_per_s\"] > $prev and all(t[\"tier\"] == \"ddr\" for t in j[\"tensors\"] if t[\"class\"] not in (\"routed experts\", \"embedding\"))"'
	prev=$tps
done
check "192 GiB DDR: the room left after the always-read tensors goes to experts (3-5 tok/s)" \
	'py "$W/p2.json" "3 <= j[\"tok_per_s\"] <= 5 and any(t[\"tier\"] == \"ddr\" and t[\"class\"] == \"routed experts\" for t in j[\"tensors\"]) and j[\"tiers\"][1][\"bytes\"] <= j[\"tiers\"][1][\"capacity\"]"'

"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:64G@100 >"$W/p2.txt" 2>"$W/err"
check "the printed plan: per tier bytes, tensors, read/token, tok/s; what moved and why" \
	'grep -q "^pmem .*GiB .*GB .*[0-9]" "$W/p2.txt" && grep -q "^predicted: [0-9.]* tok/s" "$W/p2.txt" &&
	 grep -q "attention tensors .*pmem -> ddr: attention, read every token" "$W/p2.txt" &&
	 grep -q "router tensors .*pmem -> ddr: router, read every token" "$W/p2.txt" &&
	 grep -q "^routed experts *pmem .*faster tiers full" "$W/p2.txt"'
"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:64G@100 --layer-order --json >"$W/naive.json" 2>"$W/err"
check "file order (--layer-order) predicts less than the plan" \
	'py "$W/naive.json" "j[\"layer_order\"] and j[\"tok_per_s\"] < $(jq .tok_per_s "$W/p2.json" 2>/dev/null || echo 0)"'

"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:64G@100 -ot 'attn_q\.=pmem' \
	-ot 'blk\.1\.ffn_up_exps=ddr' --json >"$W/ot.json" 2>"$W/err"
check "-ot overrides win both ways and say so" \
	'py "$W/ot.json" "all(t[\"tier\"] == \"pmem\" and t[\"why\"].startswith(\"-ot\") for t in j[\"tensors\"] if \".attn_q.\" in t[\"name\"]) and [t[\"tier\"] for t in j[\"tensors\"] if t[\"name\"] == \"blk.1.ffn_up_exps.weight\"] == [\"ddr\"]"'

# --nodes: a cluster of nodes with these tiers each (Documentation/tiermem-scale.rst)
# field NAME from the "cluster: split=MODE" line of file FILE
cl() { grep "^cluster: split=$2 " "$1" | tr ' ' '\n' | sed -n "s/^$3=//p"; }
"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:192G@100 --nodes 8 --link 100,5 >"$W/c8" 2>"$W/err"
"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:192G@100 --nodes 8 --link 10,50 >"$W/c8s" 2>"$W/err"
"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:192G@100 --nodes 2 --link 100,5 >"$W/c2" 2>"$W/err"
e8=$(cl "$W/c8" experts vs_one) p8=$(cl "$W/c8" layers vs_one) e2=$(cl "$W/c2" experts vs_one)
# (a share may beat N x: each node's DDR then holds more of what it reads)
check "experts over 8 nodes beat 2 (${e8:-none}x > ${e2:-none}x one node)" \
	'awk -v a="$e8" -v b="$e2" "BEGIN { exit !(a > b && b > 1.5 && a < 8) }"'
check "pipeline over 8 nodes (${p8:-none}x) gains less than experts: a stream takes turns" \
	'awk -v a="$e8" -v b="$p8" "BEGIN { exit !(b >= 1 && b < a) }"'
# 61 MoE layers, 3 rounds of (5 us + 7168 * 4 bytes at 100 Gbit/s)
c8=$(cl "$W/c8" experts comm_ms)
check "experts' communication: 61 all-reduces of 3 rounds of 5 us + 28.7 kB at 100 Gbit/s (${c8:-none} ms)" \
	'awk -v c="$c8" "BEGIN { x = 61 * 3 * (5e-3 + 7168 * 4 * 8 / 100e9 * 1e3); exit !(c > x * 0.999 && c < x * 1.001) }"'
c8s=$(cl "$W/c8s" experts comm_ms)
check "10 GbE at 50 us costs 10x the communication of 100 Gbit/s at 5 us (${c8s:-none} ms)" \
	'awk -v a="$c8s" -v b="$c8" "BEGIN { exit !(a > 9.99 * b && a < 10.01 * b) }"'
check "per-node tiers printed for the expert-parallel node and a line per pipeline stage" \
	'grep -q "^pmem  *pmem" "$W/c8" && [ "$(grep -c "^  node [0-7]:" "$W/c8")" -eq 8 ]'
# tensor parallel (--split experts,dense): 4 attention matrices per layer and the output, one gather each
t8=$(cl "$W/c8" experts,dense tok_s) x8=$(cl "$W/c8" experts tok_s)
check "experts,dense over 8 nodes at 100 Gbit/s, 5 us: 245 allgathers a token, faster than experts alone (${t8:-none} > ${x8:-none} tok/s)" \
	'grep -q "245 allgathers" "$W/c8" && awk -v a="$t8" -v b="$x8" "BEGIN { exit !(a > b) }"'
# one node's plan: what import --split S --rank R --ranks N stores, the stage plan --nodes prints
"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:192G@100 --nodes 8 --rank 7 --split layers \
	--json >"$W/r7.json" 2>"$W/err"
rc=$?
stage=$(sed -n 's/^  node 7: layers \([0-9]*\)-\([0-9]*\),.*/\1 \2/p' "$W/c8")
check "--nodes 8 --rank 7 --split layers --json: the last stage alone (layers $stage of plan --nodes), with the output" \
	'[ $rc -eq 0 ] && [ -n "$stage" ] && py "$W/r7.json" "j[\"node\"][\"rank\"] == 7 and j[\"node\"][\"first\"] == ${stage% *} and j[\"node\"][\"last\"] == ${stage#* } + 1 and any(t[\"name\"] == \"output.weight\" for t in j[\"tensors\"]) and not any(t[\"name\"] == \"token_embd.weight\" for t in j[\"tensors\"]) and not any(t[\"name\"].startswith(\"blk.0.\") for t in j[\"tensors\"])"'
"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --json >"$W/whole.json" 2>/dev/null
"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:192G@100 --nodes 8 --rank 3 --split experts \
	>"$W/r3.txt" 2>"$W/err"
rc=$?
"$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:768G@39 --tier ddr=ddr:192G@100 --nodes 8 --rank 3 --split experts \
	--json >"$W/r3.json" 2>>"$W/err"
check "--rank 3 --split experts: says what it holds and plans 48 of each layer's 384 experts ($(head -1 "$W/r3.txt"))" \
	'[ $rc -eq 0 ] && grep -q "^rank 3 of 8 (--split experts) holds experts e % 8 == 3" "$W/r3.txt" && python3 -c "
import json, sys
a = {t[\"name\"]: t[\"bytes\"] for t in json.load(open(sys.argv[1]))[\"tensors\"]}
b = {t[\"name\"]: t[\"bytes\"] for t in json.load(open(sys.argv[2]))[\"tensors\"]}
n = \"blk.0.ffn_up_exps.weight\"
sys.exit(0 if a[n] * 8 == b[n] and a[\"blk.0.attn_q.weight\"] == b[\"blk.0.attn_q.weight\"] else 1)" "$W/r3.json" "$W/whole.json"'
expect2 "--rank without --split" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 --nodes 2 --rank 1
expect2 "--rank outside the nodes" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 --nodes 2 --rank 2 --split layers
expect2 "--rank with --link" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 --nodes 2 --rank 1 --split layers --link 100,5
expect2 "--split of another kind" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 --nodes 2 --rank 1 --split rows
"$TM" synth --arch llama --header-only -o "$W/dense-h.gguf" >/dev/null 2>&1
expect2 "--split experts on a dense model" "$TM" plan -m "$W/dense-h.gguf" --tier ddr=ddr:1G@10 --nodes 2 --rank 0 --split experts
expect2 "--link without --nodes" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 --link 100,5
expect2 "--link without a latency" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 --nodes 2 --link 100
expect2 "--nodes 0" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 --nodes 0
expect2 "--nodes with --json" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 --nodes 2 --json

# the same on a real (small) model file with data
"$TM" synth --arch qwen3moe --type q4_K -q -o "$W/small.gguf" >/dev/null 2>&1
"$TM" plan -m "$W/small.gguf" --tier fast=ddr:1G --json >"$W/m.json" 2>"$W/err"
check "a full GGUF plans too; a bandwidth left out is measured here (gbps_given false)" \
	'py "$W/m.json" "j[\"tiers\"][0][\"gbps\"] > 0 and not j[\"tiers\"][0][\"gbps_given\"]"'
"$TM" plan -m "$W/small.gguf" --tier f=file:1G,path=$W --json >"$W/f.json" 2>"$W/err"
check "a file tier is measured in its path and leaves nothing there" \
	'py "$W/f.json" "j[\"tiers\"][0][\"gbps\"] > 0" && [ -z "$(ls -A "$W" | grep tiermem-bw)" ]'

# bad input
expect2 "does not fit: the bytes missing" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:500G@39
grep -q "missing" "$W/err" || notok "the does-not-fit message names the bytes missing"
expect2 "bad tier kind" "$TM" plan -m "$W/kimi.gguf" --tier x=tape:1G
expect2 "bad tier size" "$TM" plan -m "$W/kimi.gguf" --tier x=ddr:lots
expect2 "no tiers" "$TM" plan -m "$W/kimi.gguf"
expect2 "no model" "$TM" plan --tier x=ddr:1G@10
expect2 "missing model file" "$TM" plan -m "$W/nope.gguf" --tier x=ddr:1G@10
head -c 100000 "$W/kimi.gguf" >"$W/trunc.gguf"
expect2 "a truncated header" "$TM" plan -m "$W/trunc.gguf" --tier x=ddr:1T@10
expect2 "-ot naming no tier" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 -ot 'exps=ddr'
expect2 "-ot with a bad regex" "$TM" plan -m "$W/kimi.gguf" --tier pmem=pmem:1T@39 -ot '(=pmem'
expect2 "a NUMA node this machine lacks" "$TM" plan -m "$W/small.gguf" --tier x=node:4000:1G
expect2 "pmem without a bandwidth or a path to measure" "$TM" plan -m "$W/small.gguf" --tier x=pmem:1G
expect2 "two tiers of one name" "$TM" plan -m "$W/small.gguf" --tier x=ddr:1G@1 --tier x=pmem:1G@1

echo "1..$n"
exit $failed
