#!/usr/bin/env bash
# The expert cache's trace tools as a user meets them: tiermem synth
# --expert-trace writes a trace, tiermem bench --expert-trace replays it
# through every policy; a malformed trace or a bad cache size is one line on
# stderr and exit 2.
set -u
cd "$TOP"
TM=$BUILD/san/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-experts-cli.XXXXXX")
bg=
trap '[ -n "$bg" ] && kill -9 $bg 2>/dev/null; rm -rf "$W"' EXIT
. "$TOP/tests/lib/tap.sh"

py() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }
py_val() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }


"$TM" synth --expert-trace -o "$W/t.jsonl" --layers 8 --tokens 500 --predict-accuracy 0.9 >"$W/out" 2>"$W/err"
rc=$?
check "synth --expert-trace: exit 0, a header line and 500 x 8 records" \
	'[ $rc -eq 0 ] && [ $(wc -l <"$W/t.jsonl") -eq 4001 ] && head -1 "$W/t.jsonl" | grep -q "\"format\":\"tiermem-expert-trace\",\"version\":1"'
check "synth --expert-trace: no temp file left" '[ $(ls "$W" | wc -l) -eq 3 ]'

"$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 25% --predict >"$W/b.txt" 2>"$W/err"
rc=$?
check "bench --expert-trace: a row per policy (and per policy with prediction), 32 slots for 25 %" \
	'[ $rc -eq 0 ] && grep -q "32 slots per layer" "$W/b.txt" && [ $(grep -cE "^(lru|lfu|lrfu|static|opt) " "$W/b.txt") -eq 9 ]'
"$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 32 --policy lru,opt --json >"$W/j.txt" 2>"$W/err"
check "bench --expert-trace --json: one object per policy, OPT hits at least as often as LRU" \
	'[ $(wc -l <"$W/j.txt") -eq 2 ] && awk -F"hit_rate\":" "{split(\$2,a,\",\"); h[NR]=a[1]} END {exit !(h[2] >= h[1])}" "$W/j.txt"'
# bytes: 10616832 per expert, 1 GiB = 101 experts per layer... 2G over 8 layers of 10.1 MiB = 25 slots
"$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 2G --policy lru >"$W/g.txt" 2>&1
check "bench --expert-cache 2G: whole experts split over the MoE layers (25 per layer)" \
	'grep -q "25 slots per layer" "$W/g.txt"'

# slots split by heat: layers of different skew (Zipf 0.1 to 1.1) get different numbers of slots, same total
"$TM" synth --expert-trace -o "$W/ts.jsonl" --layers 8 --tokens 400 --zipf 0.6 --zipf-spread 0.5 --drift 0.02 >/dev/null 2>&1
"$TM" bench --expert-trace "$W/ts.jsonl" --expert-cache 32 --split heat --split-floor 0 --policy static >"$W/sp.txt" 2>"$W/err"
check "bench --split heat: the same total split unevenly ($(grep -o "[0-9]* to [0-9]* slots per layer" "$W/sp.txt"))" \
	'[ $? -eq 0 ] && grep -Eq "split by heat .*: [0-9]+ to [0-9]+ slots per layer" "$W/sp.txt" && ! grep -q ": 32 to 32 slots" "$W/sp.txt"'
"$TM" bench --expert-trace "$W/ts.jsonl" --expert-cache 32 --policy static --json >"$W/se.json" 2>/dev/null
"$TM" bench --expert-trace "$W/ts.jsonl" --expert-cache 32 --split heat --split-floor 0 --policy static --json >"$W/sh.json" 2>/dev/null
check "bench --split heat: static placement hits at least as often as with an even split (heat from the trace's first half)" \
	'python3 -c "import json,sys; a=json.loads(open(sys.argv[1]).read()); b=json.loads(open(sys.argv[2]).read()); sys.exit(0 if b[\"hit_rate\"] >= a[\"hit_rate\"] - 0.002 else 1)" "$W/se.json" "$W/sh.json"'
expect2 "bench --split sideways" "$TM" bench --expert-trace "$W/ts.jsonl" --expert-cache 32 --split sideways
expect2 "bench --expert-heat without --split heat" "$TM" bench --expert-trace "$W/ts.jsonl" --expert-cache 32 --expert-heat "$W/none.json"

head -3 "$W/t.jsonl" >"$W/bad1.jsonl"
echo '{"t":0,"l":0,"e":[1,2],"w":[1,0]}' >>"$W/bad1.jsonl"
expect2 "a record with 2 of 8 experts" "$TM" bench --expert-trace "$W/bad1.jsonl" --expert-cache 8
check "  ... names the file and line" 'grep -q "bad1.jsonl:4: .e. has 2 entries" "$W/err"'
printf 'garbage\n' >"$W/bad2.jsonl"
expect2 "a file that is not JSON" "$TM" bench --expert-trace "$W/bad2.jsonl" --expert-cache 8
head -c 3000 "$W/t.jsonl" >"$W/bad3.jsonl"
expect2 "a truncated trace" "$TM" bench --expert-trace "$W/bad3.jsonl" --expert-cache 8
expect2 "a missing trace" "$TM" bench --expert-trace "$W/none.jsonl" --expert-cache 8
expect2 "--expert-cache larger than a layer's experts" "$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 200
expect2 "--expert-cache 0%" "$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 0%
expect2 "--expert-cache nonsense" "$TM" bench --expert-trace "$W/t.jsonl" --expert-cache lots
expect2 "--policy unknown" "$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 8 --policy fifo
expect2 "--expert-trace without --expert-cache" "$TM" bench --expert-trace "$W/t.jsonl"
expect2 "synth --expert-trace without -o" "$TM" synth --expert-trace --layers 2
expect2 "synth --expert-trace --experts-used above --experts" "$TM" synth --expert-trace -o "$W/x" --experts 4 --experts-used 8
expect2 "synth --expert-trace --locality 2" "$TM" synth --expert-trace -o "$W/x" --locality 2
"$TM" bench --expert-trace x --help >"$W/h.txt" 2>&1
check "bench --expert-trace --help: exit 0, names the options" '[ $? -eq 0 ] && grep -q -- "--expert-cache SIZE" "$W/h.txt"'

# the online cache in run: same text, counters that add up
# region_matches_hits ERR MIN: equal, and above MIN MiB. Only sync copies are
# sure to hit within a run of ~1 ms: async ones land when the copier gets a CPU,
# which two spinning decode threads on 2 vCPUs may not give it (0 hits, seen in CI).
region_matches_hits() {
	sed -n 's/.* \([0-9.]*\) MiB from the cache region (hits x their experts. bytes: \([0-9.]*\)).*/\1 \2/p' "$1" |
		awk -v min="$2" 'NF == 2 && $1 == $2 && $1 > min { ok = 1 } END { exit !ok }'
}
"$TM" synth --arch qwen3moe --type q4_K_M --experts 16 --experts-used 4 -q -o "$W/moe.gguf" >/dev/null
"$TM" synth --arch qwen3 -q -o "$W/dense.gguf" >/dev/null
"$TM" run -m "$W/moe.gguf" -p "Hello there" -n 16 --temp 0 -t 2 >"$W/r0.txt" 2>"$W/r0.err"
for mode in "--expert-cache 25%" "--expert-cache 4 --expert-copy sync" "--expert-cache 50% --expert-predict --expert-policy lru" \
	"--expert-cache 8 --expert-copy-gbps 0.5"; do
	"$TM" run -m "$W/moe.gguf" -p "Hello there" -n 16 --temp 0 -t 2 $mode >"$W/r1.txt" 2>"$W/r1.err"
	rc=$?
	check "run $mode: exit 0, the same text as without the cache" '[ $rc -eq 0 ] && cmp -s "$W/r0.txt" "$W/r1.txt"'
	# the cache region's byte counter equals its hits times their experts' bytes
	case $mode in *sync*) min=0 ;; *) min=-1 ;; esac
	check "run $mode: the cache region's bytes per token = its hits x their experts' bytes (q4_K_M: layers differ)" \
		'region_matches_hits "$W/r1.err" $min'
done
grep -q "hits [0-9.]* % (layers 0-0 [0-9.]* %, 1-1 [0-9.]* %)" "$W/r1.err"
check "run --expert-cache: hit rate in total and per layer group" '[ $? -eq 0 ]'
"$TM" run -m "$W/moe.gguf" -p "Hello there" -n 16 --temp 0 -t 2 --expert-cache 16 --expert-copy sync >/dev/null 2>"$W/r2.err"
check "run --expert-cache of every expert, sync copies (async ones may lag on a loaded host): misses only while the cache fills (hits above 80 %)" \
	'h=$(sed -n "s/.*decode: hits \([0-9.]*\) %.*/\1/p" "$W/r2.err"); awk -v h="$h" "BEGIN {exit !(h > 80)}"'
"$TM" run -m "$W/moe.gguf" -p "Hello there" -n 8 --temp 0 -t 2 --expert-cache 4 --expert-copy sync --json >"$W/rj.json" 2>/dev/null
check "run --expert-cache --json: the cache's counters in total and per layer group" \
	'py "$W/rj.json" "j[\"experts\"][\"total\"][\"uses\"] == j[\"experts\"][\"total\"][\"hits\"] + j[\"experts\"][\"total\"][\"misses\"] and sum(g[\"uses\"] for g in j[\"experts\"][\"layer_groups\"]) == j[\"experts\"][\"total\"][\"uses\"] > 0"'
"$TM" run -m "$W/dense.gguf" -n 4 --expert-cache 25% >/dev/null 2>"$W/d.err"
check "run --expert-cache on a dense model: exit 0 and a note that it has no effect" \
	'[ $? -eq 0 ] && grep -q "note: --expert-cache has no effect" "$W/d.err"'
expect2 "run --expert-cache above the free memory" "$TM" run -m "$W/moe.gguf" -n 4 --expert-cache 64T
expect2 "run --expert-cache more experts than a layer has" "$TM" run -m "$W/moe.gguf" -n 4 --expert-cache 17
expect2 "run --expert-policy static" "$TM" run -m "$W/moe.gguf" -n 4 --expert-cache 4 --expert-policy static
expect2 "run --expert-copy maybe" "$TM" run -m "$W/moe.gguf" -n 4 --expert-cache 4 --expert-copy maybe

# profile: heat and trace from a real forward pass; plan --heat and run --expert-heat check the model
printf 'Once upon a time\n\nThe cat sat on the mat\n' >"$W/prompts.txt"
"$TM" profile -m "$W/moe.gguf" -f "$W/prompts.txt" -o "$W/heat.json" --trace "$W/prof.jsonl" -n 6 -t 2 >"$W/p.out" 2>"$W/err"
rc=$?
check "profile: exit 0, a heat file and a trace of the same tokens" \
	'[ $rc -eq 0 ] && py "$W/heat.json" "j[\"format\"] == \"tiermem-expert-heat\" and all(sum(r) == 4 * j[\"tokens\"] for r in j[\"counts\"])" && [ $(($(wc -l <"$W/prof.jsonl") - 1)) -eq $(py_val "$W/heat.json" "2 * j[\"tokens\"]") ]'
check "profile: its trace replays (bench --expert-trace)" \
	'"$TM" bench --expert-trace "$W/prof.jsonl" --expert-cache 4 --policy lru >/dev/null 2>&1'
TIERMEM_HOME=$W/home "$TM" import -m "$W/moe.gguf" --name moe -q >/dev/null 2>&1
TIERMEM_HOME=$W/home "$TM" list --json >"$W/list.json" 2>/dev/null
check "profile's model hash is the store's identity of the same GGUF (tiermem list)" \
	'[ "$(py_val "$W/heat.json" "j[\"model\"][\"hash\"]")" = "$(py_val "$W/list.json" "j[0][\"hash\"]")" ]'
"$TM" plan -m "$W/moe.gguf" --tier ddr=ddr:1M@100 --tier pmem=pmem:1G@39 --json >"$W/p0.json" 2>/dev/null
"$TM" plan -m "$W/moe.gguf" --tier ddr=ddr:1M@100 --tier pmem=pmem:1G@39 --json --heat "$W/heat.json" >"$W/p1.json" 2>"$W/err"
check "plan --heat: accepted for the model it was measured on" '[ $? -eq 0 ] && [ -s "$W/p1.json" ]'
"$TM" synth --arch qwen3moe --type q4_K_M --experts 16 --experts-used 4 --seed 2 -q -o "$W/moe2.gguf" >/dev/null
expect2 "plan --heat of another model (same shape, other weights)" "$TM" plan -m "$W/moe2.gguf" --tier ddr=ddr:1M@100 --tier pmem=pmem:1G@39 --heat "$W/heat.json"
check "  ... says it is another model's" 'grep -q "another model" "$W/err"'
echo '{"format":"tiermem-expert-heat","version":1,"model":{}}' >"$W/badheat.json"
expect2 "plan --heat with a malformed heat file" "$TM" plan -m "$W/moe.gguf" --tier ddr=ddr:1M@100 --tier pmem=pmem:1G@39 --heat "$W/badheat.json"
"$TM" run -m "$W/moe.gguf" -p "Hello there" -n 16 --temp 0 -t 2 --expert-cache 4 --expert-heat "$W/heat.json" >"$W/r3.txt" 2>"$W/r3.err"
check "run --expert-heat: warm start from this model's heat, the same text" '[ $? -eq 0 ] && cmp -s "$W/r0.txt" "$W/r3.txt"'
expect2 "run --expert-heat of another model" "$TM" run -m "$W/moe2.gguf" -n 4 --expert-cache 4 --expert-heat "$W/heat.json"
check "run --expert-heat: the slots split over the layers by the heat" 'grep -q "(split by heat" "$W/r3.err"'
expect2 "bench --split heat with the heat of another model (16 experts, the trace has 128)" "$TM" bench --expert-trace "$W/t.jsonl" --expert-cache 8 --split heat --expert-heat "$W/heat.json"
TIERMEM_HOME=$W/home "$TM" run --name moe -p "Hello there" -n 16 --temp 0 -t 2 --expert-cache 4 --expert-heat "$W/heat.json" >"$W/r4.txt" 2>"$W/r4.err"
check "run --name --expert-heat: the store's hash matches the heat (no note), the same text as -m" \
	'[ $? -eq 0 ] && ! grep -q "note:" "$W/r4.err" && cmp -s "$W/r0.txt" "$W/r4.txt"'
"$TM" profile -m "$W/moe2.gguf" -f "$W/prompts.txt" -o "$W/heat2.json" -n 2 -t 2 >/dev/null 2>&1
TIERMEM_HOME=$W/home expect2 "run --name --expert-heat of another model" "$TM" run --name moe -n 4 --expert-cache 4 --expert-heat "$W/heat2.json"
expect2 "profile of a dense model" "$TM" profile -m "$W/dense.gguf" -f "$W/prompts.txt" -o "$W/h2.json"
expect2 "profile without a prompts file" "$TM" profile -m "$W/moe.gguf" -f "$W/none.txt"
: >"$W/empty.txt"
expect2 "profile of an empty prompts file" "$TM" profile -m "$W/moe.gguf" -f "$W/empty.txt" -o "$W/h3.json"
check "  ... leaves no heat file" '[ ! -e "$W/h3.json" ]'

# live counters (tiermem stats) equal the run's summary: a run watched at token k against a
# run of k tokens (greedy, sync copies: the cache's choices do not depend on timing)
"$TM" synth --arch qwen3moe --type q4_K --size 32M --experts 16 --experts-used 4 --ctx 8192 -q -o "$W/moe32.gguf" >/dev/null 2>&1
export TIERMEM_HOME=$W/home
XC="--temp 0 -t 1 --expert-cache 4 --expert-copy sync"
"$TM" run -m "$W/moe32.gguf" -n 8000 $XC >/dev/null 2>"$W/bg.err" &
bg=$!
for _ in $(seq 1 600); do
	"$TM" stats --json >"$W/live.json" 2>/dev/null &&
		py "$W/live.json" "j[\"runs\"] and j[\"runs\"][0][\"experts\"] and j[\"runs\"][0][\"n_decoded\"] >= 5" && break
	sleep 0.2
done
"$TM" stats >"$W/live.txt" 2>/dev/null
kill -INT $bg
wait $bg 2>/dev/null
bg=
k=$(py_val "$W/live.json" "j[\"runs\"][0][\"n_decoded\"]" 2>/dev/null)
check "tiermem stats: a run's expert cache, live (hits per layer group, prefetches, bytes, predicted tok/s)" \
	'grep -Eq "^  experts: 68 slots over 17 MoE layers of 16 experts, lrfu: hits [0-9.]+ % \(layers 0-3" "$W/live.txt" &&
	 grep -q "^  experts per token: .* prefetches .* late" "$W/live.txt" && grep -q "predicted at 100/39 GB/s" "$W/live.txt"'
"$TM" run -m "$W/moe32.gguf" -n $((${k:-1} + 1)) $XC --json >"$W/sum.json" 2>/dev/null
check "the live counters at token $k equal the summary of a run of $k decoded tokens (totals, layer groups, bytes, prediction)" \
	'python3 -c "
import json, sys
live = json.load(open(sys.argv[1]))[\"runs\"][0]
run = json.load(open(sys.argv[2]))
x, e = live[\"experts\"], run[\"experts\"]
keys = [\"uses\", \"hits\", \"misses\", \"admits\"]
same = live[\"n_decoded\"] == run[\"n_decoded\"] and all(x[\"total\"][k] == e[\"total\"][k] for k in keys)
same = same and len(x[\"layer_groups\"]) == len(e[\"layer_groups\"]) == 4
same = same and all(a[k] == b[k] for a, b in zip(x[\"layer_groups\"], e[\"layer_groups\"]) for k in keys + [\"first_layer\", \"last_layer\"])
close = lambda a, b: abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1)
same = same and all(close(x[a], e[b]) for a, b in [(\"cache_bytes_per_token\",) * 2, (\"slow_bytes_per_token\",) * 2,
	(\"copy_bytes_per_token\",) * 2, (\"predicted_tps_rig\",) * 2, (\"predicted_tps_rig_without_cache\",) * 2])
sys.exit(0 if same and x[\"total\"][\"uses\"] > 0 else 1)" "$W/live.json" "$W/sum.json"'
unset TIERMEM_HOME

echo "1..$n"
exit $failed
