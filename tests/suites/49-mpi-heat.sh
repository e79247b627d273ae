#!/usr/bin/env bash
# --split experts with the experts assigned to the ranks by heat
# (lib/experts/assign.c, Documentation/tiermem-scale.rst), one thread per
# rank, -np 2 and 3 over 16 experts. The heat is skewed on purpose: the hot
# experts all have even indices, so e % N would put them all on rank 0 at
# np 2; the assignment spreads them. The split changes only which rank sums
# which experts: logits equal one process's within 1e-4 (f32; 49-mpi's
# tolerance for the experts' summation order), and runs with the same
# assignment give the same bits. A flat heat is the uniform prior: exactly
# e % N, so the same bits as no heat. deepseek2 (a dense first layer) with
# its own profile's heat at np 3. Per-rank imports record the assignment; a
# run with another (another heat, or none) is refused at start, as is a rank
# with another heat than rank 0's, and a share whose recorded assignment was
# damaged. plan --nodes --heat prints each node's expected expert reads: more
# balanced than e % N's. serve at np 2 with the heat answers as one process.
set -u
cd "$TOP"
TM=$BUILD/tiermem
. "$TOP/tests/lib/tap.sh"
. "$TOP/tests/lib/mpi.sh"
mpi_or_skip
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-mpi-heat.XXXXXX")
. "$TOP/tests/lib/serve.sh"	# its EXIT trap stops the servers and removes W
TOK=1,5,9,200,31,7,64,3,17,99,250,12,40,8,77,120
PROMPT="the quick brown fox"

synth_or_notok "$W/moe.gguf" --arch qwen3moe --type f32 --layers 4 --experts 16 --experts-used 4 || { echo "1..$n"; exit 1; }
synth_or_notok "$W/other.gguf" --arch qwen3moe --type f32 --layers 4 --experts 16 --experts-used 4 --seed 2 ||
	{ echo "1..$n"; exit 1; }
printf 'Hello there\nThe cat sat on the mat\n' >"$W/prompts.txt"
"$TM" profile -m "$W/moe.gguf" -f "$W/prompts.txt" -o "$W/heat.json" -n 4 -t 1 >/dev/null 2>&1
"$TM" profile -m "$W/other.gguf" -f "$W/prompts.txt" -o "$W/heat-other.json" -n 2 -t 1 >/dev/null 2>&1
# the profile's identity with made-up counts of 100000 tokens (a short profile's gains are within
# the counts' noise, and the assignment keeps e % N): skewed (hot experts at even indices), and flat
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
j = json.load(open(w + '/heat.json'))
t = j['tokens'] = 100000
j['counts'] = [[t * 3 // 4 if e % 2 == 0 and e < 8 else t // 8 if e % 2 == 0 else t // 16 for e in range(16)]
               for _ in j['counts']]
json.dump(j, open(w + '/skew.json', 'w'))
j['counts'] = [[t // 4] * 16 for _ in j['counts']]
json.dump(j, open(w + '/flat.json', 'w'))
PY
check "profile made a heat file of the model, skewed and flat versions of it" \
	'[ -s "$W/heat.json" ] && [ -s "$W/skew.json" ] && [ -s "$W/flat.json" ] && [ -s "$W/heat-other.json" ]'

. "$TOP/tests/lib/logits.sh"	# compare A B TOL

"$TM" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/one.bin"
for np in 2 3; do
	run -np $np "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/mod$np.bin" --split experts 2>/dev/null
	run -np $np "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/h$np.bin" --split experts \
		--expert-heat "$W/skew.json" 2>"$W/err"
	rc=$?
	msg=$(compare "$W/one.bin" "$W/h$np.bin" 1e-4)
	check "-np $np, skewed heat: the ranks compute experts by heat, not e % N ($(grep -m1 '^rank 0:' "$W/err" | cut -d, -f1)); logits equal one process's within 1e-4 ($msg)" \
		'[ $rc -eq 0 ] && grep -q "^rank 0: experts by heat" "$W/err" && ! grep -q "experts e %" "$W/err" && compare "$W/one.bin" "$W/h$np.bin" 1e-4 >/dev/null'
	run -np $np "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/hd.bin" --split experts,dense \
		--expert-heat "$W/skew.json" 2>/dev/null
	rc=$?
	check "-np $np, skewed heat, experts,dense: logits bit-identical to --split experts' with the same heat" \
		'[ $rc -eq 0 ] && cmp -s "$W/h$np.bin" "$W/hd.bin"'
	run -np $np "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/f.bin" --split experts \
		--expert-heat "$W/flat.json" 2>"$W/err"
	rc=$?
	check "-np $np, flat heat (the uniform prior): e % N exactly, logits bit-identical to no heat's" \
		'[ $rc -eq 0 ] && grep -q "^rank 0: experts e % $np == 0" "$W/err" && cmp -s "$W/mod$np.bin" "$W/f.bin"'
done

# deepseek2 (a dense first layer, whose heat is all zeros; shared experts) with its real profile,
# its counts as if of 1000 times the tokens (else within their noise: e % N), -np 3
if synth_or_notok "$W/ds.gguf" --arch deepseek2 --type f32; then
	"$TM" profile -m "$W/ds.gguf" -f "$W/prompts.txt" -o "$W/ds-heat.json" -n 4 -t 1 >/dev/null 2>&1
	python3 - "$W/ds-heat.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j['tokens'] *= 1000
j['counts'] = [[c * 1000 for c in r] for r in j['counts']]
json.dump(j, open(sys.argv[1], 'w'))
PY
	"$TM" logits -m "$W/ds.gguf" --tokens $TOK -o "$W/ds1.bin"
	run -np 3 "$MPI" logits -m "$W/ds.gguf" --tokens $TOK -o "$W/ds3.bin" --split experts \
		--expert-heat "$W/ds-heat.json" 2>"$W/err"
	rc=$?
	check "deepseek2 -np 3 with its profile's heat: logits equal one process's within 1e-4 ($(compare "$W/ds1.bin" "$W/ds3.bin" 1e-4))" \
		'[ $rc -eq 0 ] && grep -q "^rank 2: experts by heat" "$W/err" && compare "$W/ds1.bin" "$W/ds3.bin" 1e-4 >/dev/null'
fi

# greedy text with an expert cache on each rank (it holds and prefetches the rank's experts by heat)
"$TM" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 >"$W/one.txt" 2>/dev/null
run -np 2 "$MPI" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 --split experts --expert-heat "$W/skew.json" \
	--expert-cache 4 --expert-predict >"$W/n.txt" 2>"$W/err"
rc=$?
check "-np 2, skewed heat, expert caches warmed from it: greedy text equals one process's" \
	'[ $rc -eq 0 ] && [ -s "$W/one.txt" ] && cmp -s "$W/one.txt" "$W/n.txt" && grep -q "^rank 1: experts by heat" "$W/err"'

run -np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts --expert-heat "$W/skew.json" : \
	-np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts >"$W/out" 2>"$W/err"
rc=$?
check "a rank without the heat rank 0 gives is refused at start ($(grep -m1 'otherwise than rank 0' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "rank 1 assigns the experts to the ranks otherwise than rank 0" "$W/err"'

# per-rank imports with the heat: each store records the assignment
export TIERMEM_BACKEND=user
for r in 0 1; do
	TIERMEM_HOME=$W/s$r "$TM" import -m "$W/moe.gguf" --name m --split experts --rank $r --ranks 2 -q \
		--tier ddr=ddr:1G --expert-heat "$W/skew.json" >"$W/imp$r" 2>&1
done
check "import --split experts --expert-heat says the share is by heat ($(grep -m1 holds "$W/imp1"))" \
	'grep -q "^  rank 1 of 2 holds every tensor but the routed experts, and its share of each MoE layer.s experts by heat (assignment [0-9a-f]*): 8 to 8 of 16" "$W/imp1"'
shares() {
	run -x TIERMEM_BACKEND=user -np 1 -x TIERMEM_HOME="$W/s0" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" "$@" : \
		-np 1 -x TIERMEM_HOME="$W/s1" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" "$@"
}
shares --split experts --expert-heat "$W/skew.json" >"$W/out" 2>"$W/err"
rc=$?
check "two ranks on their heat-assigned shares, the same heat: logits bit-identical to -m's with that heat" \
	'[ $rc -eq 0 ] && cmp -s "$W/h2.bin" "$W/n.bin"'
shares --split experts >"$W/out" 2>"$W/err"
rc=$?
check "the shares run without the heat (e % N) are refused at start ($(grep -m1 'another assignment' "$W/err" | cut -c1-90)...)" \
	'[ $rc -ne 0 ] && grep -q "model holds the experts of another assignment than this run.s" "$W/err"'
shares --split experts --expert-heat "$W/heat.json" >"$W/out" 2>"$W/err"
rc=$?
check "the shares run with another heat file are refused at start" \
	'[ $rc -ne 0 ] && grep -q "model holds the experts of another assignment than this run.s" "$W/err"'
# experts,dense shares (the rank's rows of the dense matrices too) by the same heat
for r in 0 1; do
	TIERMEM_HOME=$W/d$r "$TM" import -m "$W/moe.gguf" --name m --split experts,dense --rank $r --ranks 2 -q \
		--tier ddr=ddr:1G --expert-heat "$W/skew.json" >"$W/dimp$r" 2>&1
done
run -np 2 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/hd2.bin" --split experts,dense --expert-heat "$W/skew.json" \
	2>/dev/null
run -x TIERMEM_BACKEND=user -np 1 -x TIERMEM_HOME="$W/d0" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" \
	--split experts,dense --expert-heat "$W/skew.json" : -np 1 -x TIERMEM_HOME="$W/d1" "$MPI" logits --name m \
	--tokens $TOK -o "$W/n.bin" --split experts,dense --expert-heat "$W/skew.json" >"$W/out" 2>"$W/err"
rc=$?
check "experts,dense shares by heat ($(grep -m1 holds "$W/dimp1" | cut -c3-60)...): logits bit-identical to -m's with that heat" \
	'[ $rc -eq 0 ] && grep -q "(by heat)" "$W/dimp1" && cmp -s "$W/hd2.bin" "$W/n.bin"'

# a manifest whose assignment was damaged: refused, never half-used
cp -r "$W/s0" "$W/bad"
python3 - "$W/bad/models/m/manifest.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["expert_owner"][1][3] = 7
json.dump(j, open(sys.argv[1], "w"))
PY
TIERMEM_HOME=$W/bad expect2_re "a share whose manifest assigns an expert to rank 7 of 2" "does not fit the share's expert assignment" \
	"$TM" logits --name m --tokens 1,2 -o "$W/x.bin"
python3 - "$W/s0/models/m/manifest.json" "$W/bad/models/m/manifest.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["expert_owner"][1][3] = 1 - j["expert_owner"][1][3]
json.dump(j, open(sys.argv[2], "w"))
PY
TIERMEM_HOME=$W/bad expect2_re "... one that moves an expert to the other rank (its tensors' sizes no longer match)" "differs between its header and its manifest" \
	"$TM" logits --name m --tokens 1,2 -o "$W/x.bin"
TIERMEM_HOME=$W/s0 "$TM" import -m "$W/moe.gguf" --name m --split experts --rank 0 --ranks 2 -q \
	--tier ddr=ddr:1G --expert-heat "$W/skew.json" >"$W/out" 2>&1
check "importing the same share with the same heat again: nothing to do" 'grep -q "already imported" "$W/out"'
TIERMEM_HOME=$W/s0 expect2_re "importing it with another heat over it, without --replace" "another expert assignment" \
	"$TM" import -m "$W/moe.gguf" --name m --split experts --rank 0 --ranks 2 -q --tier ddr=ddr:1G \
	--expert-heat "$W/heat.json"
TIERMEM_HOME=$W/s1 "$TM" import -m "$W/moe.gguf" --name j --split experts --rank 1 --ranks 2 -q --tier ddr=ddr:1G \
	--expert-heat "$W/skew.json" --json >"$W/imp.json" 2>"$W/err"
rc=$?
check "import --json: the share (by heat, its assignment's hash as the text says) and the plan as plan --json prints it" \
	'[ $rc -eq 0 ] && python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
s, p = j[\"share\"], j[\"plan\"]
assert s[\"split\"] == \"experts\" and s[\"rank\"] == 1 and s[\"ranks\"] == 2 and s[\"assignment\"] == \"heat\"
assert s[\"assignment_hash\"] in open(sys.argv[2]).read()
assert p[\"node\"][\"rank\"] == 1 and p[\"tensors\"] and j[\"hash\"] and not j[\"unchanged\"]
" "$W/imp.json" "$W/imp1"'
expect2 "import --expert-heat without --split experts" "$TM" import -m "$W/moe.gguf" --name z --expert-heat "$W/skew.json"
TIERMEM_HOME=$W/s2 expect2_re "import --expert-heat of another model" "another model" "$TM" import -m "$W/moe.gguf" \
	--name z --split experts --rank 0 --ranks 2 -q --tier ddr=ddr:1G --expert-heat "$W/heat-other.json"
expect2 "logits --expert-heat without --split" "$MPI" logits -m "$W/moe.gguf" --tokens 1,2 -o "$W/x.bin" --expert-heat "$W/skew.json"

# plan: each node's expected expert reads, by heat and by e % N
for np in 2 3; do
	"$TM" plan -m "$W/moe.gguf" --tier ddr=ddr:1G@100 --nodes $np --heat "$W/skew.json" >"$W/plan" 2>"$W/err"
	rc=$?
	heat=$(sed -n 's/^balance: assign=heat .*max_mean=\([0-9.]*\) .*/\1/p' "$W/plan")
	mod=$(sed -n 's/^balance: assign=mod .*max_mean=\([0-9.]*\) .*/\1/p' "$W/plan")
	check "plan --nodes $np --heat: the nodes' expected expert reads are more balanced than e % N's (max/mean $heat against $mod)" \
		'[ $rc -eq 0 ] && [ -n "$heat" ] && [ -n "$mod" ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$heat" "$mod"'
done
"$TM" plan -m "$W/moe.gguf" --tier ddr=ddr:1G@100 --nodes 2 --rank 1 --split experts --heat "$W/skew.json" >"$W/plan" 2>&1
check "plan --nodes 2 --rank 1 --split experts --heat: the node's share is by heat" \
	'grep -q "^rank 1 of 2 (--split experts) holds its share of each MoE layer.s experts by heat" "$W/plan"'

# serve: rank 0's scheduler and rank 1 compute the experts by heat; completions equal one process's
cat >"$W/complete.py" <<'PY'
import json, sys, urllib.request
body = json.dumps({"prompt": sys.argv[2], "max_tokens": 16, "temperature": 0}).encode()
req = urllib.request.Request("http://127.0.0.1:%s/v1/completions" % sys.argv[1], body,
                             {"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    print(json.load(r)["choices"][0]["text"])
PY
complete() { timeout 90 python3 "$W/complete.py" "$@" 2>&1; }
cat >"$W/mpiserve" <<SH
#!/bin/sh
exec mpirun $MPIRUN_FLAGS -np 2 "$MPI" "\$@"
SH
chmod +x "$W/mpiserve"
P1="Once upon a time" P2="The quick brown fox jumps over"
if start one -m "$W/moe.gguf" -np 2 -c 256; then
	A=$(complete "$PORT_one" "$P1") B=$(complete "$PORT_one" "$P2")
	kill "$PID_one"
	TM0=$TM TM=$W/mpiserve
	if start heat -m "$W/moe.gguf" -np 2 -c 256 --split experts --expert-heat "$W/skew.json"; then
		# shellcheck disable=SC2154
		complete "$PORT_heat" "$P2" >"$W/c2" & c2=$!
		complete "$PORT_heat" "$P1" >"$W/c1" & c1=$!
		wait $c1 $c2
		check "serve -np 2 --split experts --expert-heat: a completion, and two at once, equal one process's texts" \
			'[ ${#A} -gt 0 ] && [ "$(complete "$PORT_heat" "$P1")" = "$A" ] && [ "$(cat "$W/c1")" = "$A" ] && [ "$(cat "$W/c2")" = "$B" ]'
		# SIGTERM to rank 0: it stops rank 1, and every rank reports
		for c in $(pgrep -P "$PID_heat"); do
			tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=0" && kill -TERM "$c"
		done
		for _ in $(seq 1 100); do kill -0 "$PID_heat" 2>/dev/null || break; sleep 0.1; done
		wait "$PID_heat" 2>/dev/null
		check "serve: the ranks computed the experts by heat (stop report: $(grep -m1 '^rank 1:' "$W/heat.err" | cut -d, -f1))" \
			'grep -q "^rank 1: experts by heat" "$W/heat.err"'
	else
		notok "mpirun -np 2 serve --split experts --expert-heat did not start: $(head -c 600 "$W/heat.err")"
	fi
	TM=$TM0
else
	notok "the single-process server did not start: $(cat "$W/one.err")"
fi

echo "1..$n"
exit $failed
