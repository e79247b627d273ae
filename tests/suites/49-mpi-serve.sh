#!/usr/bin/env bash
# tiermem serve under MPI (build/tiermem-mpi, Documentation/tiermem-scale.rst):
# rank 0 answers HTTP, the other rank makes the same forward calls. On a small
# synth MoE, at temperature 0: a completion, a streamed one, the same prompt
# again (its slot's cached prefix reused on every rank) and two requests at
# once (decoded together in one batched step) each equal a single-process
# server's text; --split experts, layers and experts,dense. SIGTERM to rank 0 ends
# every rank with 0 (mpirun too); SIGTERM to mpirun ends every rank (mpirun
# exits 1: Open MPI aborts the job); a rank killed with -9 ends the job.
#
# --split layers is a pipeline: with four completions at once (np 2 and 3)
# the ranks compute different groups of sequences at the same time, and the
# texts still equal a single-process server's (batch invariance). That they
# did is measured, not assumed: every rank keeps the spans of time it
# computed its layers and rank 0's report at the stop gives the time two
# ranks were inside one together (overlap_sec). Ranks that take turns cannot
# overlap at all (a rank's span ends before it sends the activations on, the
# next one's begins after it has them), so the control, one completion at a
# time, must measure exactly 0. Those run with --pipeline-groups equal (a
# group per rank); by cost (the default, which the MoE above runs with) a
# pipeline at np 3 gives the same texts and fits every stage's cost per
# call and per row from the calls' measured times.
set -u
cd "$TOP"
TM=$BUILD/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-mpiserve.XXXXXX")
. "$TOP/tests/lib/serve.sh"
. "$TOP/tests/lib/tap.sh"
. "$TOP/tests/lib/mpi.sh"
mpi_or_skip

"$TM" synth --arch qwen3moe --type f32 --layers 4 --experts 16 --experts-used 4 -q -o "$W/moe.gguf" >/dev/null 2>&1
# the server's mpirun: `start` runs "$TM" serve ARGS
cat >"$W/mpiserve" <<SH
#!/bin/sh
exec mpirun $MPIRUN_FLAGS -np \${NP:-2} "$MPI" "\$@"
SH
chmod +x "$W/mpiserve"
# complete PORT PROMPT [stream]: the completion's text (temperature 0, MAXT or 16 tokens)
cat >"$W/complete.py" <<'PY'
import json, os, sys, urllib.request
port, prompt, stream = sys.argv[1], sys.argv[2], len(sys.argv) > 3
body = json.dumps({"prompt": prompt, "max_tokens": int(os.environ.get("MAXT", "16")), "temperature": 0,
                   "stream": stream}).encode()
req = urllib.request.Request("http://127.0.0.1:%s/v1/completions" % port, body,
                             {"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    if not stream:
        print(json.load(r)["choices"][0]["text"])
        sys.exit(0)
    text = ""
    for line in r:
        line = line.decode().strip()
        if line.startswith("data: ") and line != "data: [DONE]":
            text += json.loads(line[6:])["choices"][0]["text"]
    print(text)
PY
# PID has ended (a rank whose mpirun is gone is a zombie until init reaps it)
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
complete() { timeout 90 python3 "$W/complete.py" "$@" 2>&1; }
# the pid of rank R of the mpirun whose pid is P
rank_pid() {
	for c in $(pgrep -P "$1"); do
		tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && echo "$c"
	done
}

P1="Once upon a time" P2="The quick brown fox jumps over"
start one -m "$W/moe.gguf" -np 2 -c 256 || notok "the single-process server did not start: $(cat "$W/one.err")"
# shellcheck disable=SC2154
A=$(complete "$PORT_one" "$P1") B=$(complete "$PORT_one" "$P2")
kill "$PID_one"
check "the single-process server answers (${#A} and ${#B} characters)" '[ ${#A} -gt 0 ] && [ ${#B} -gt 0 ] && [ "$A" != "$B" ]'

TM0=$TM TM=$W/mpiserve
for split in experts layers experts,dense; do
	label=${split/,/_}
	if ! start "$label" -m "$W/moe.gguf" -np 2 -c 256 --split "$split"; then
		notok "mpirun -np 2 serve --split $split did not start: $(head -c 600 "$W/$label.err")"
		continue
	fi
	port_var=PORT_$label pid_var=PID_$label
	port=${!port_var} mpirun_pid=${!pid_var}
	got=$(complete "$port" "$P1")
	check "--split $split: a completion equals one process's" '[ "$got" = "$A" ]'
	got=$(complete "$port" "$P1" stream)
	check "--split $split: streamed, the same prompt again (prefix reused) equals it" '[ "$got" = "$A" ]'
	complete "$port" "$P2" >"$W/c2" & c2=$!
	complete "$port" "$P1" stream >"$W/c1" & c1=$!
	wait $c1 $c2
	check "--split $split: two requests at once each equal their own text" \
		'[ "$(cat "$W/c1")" = "$A" ] && [ "$(cat "$W/c2")" = "$B" ]'
	# rank 0's /metrics: every rank's counters as of its last report, the cluster's MPI share
	curl -s "http://127.0.0.1:$port/metrics" >"$W/$label.metrics"
	calls=$(sed -n 's/^tiermem_mpi_calls_total{rank="1"} \([0-9.e+]*\)$/\1/p' "$W/$label.metrics")
	share=$(sed -n 's/^tiermem_mpi_share \([0-9.]*\)$/\1/p' "$W/$label.metrics")
	check "--split $split: /metrics gives each rank's MPI counters (rank 1: ${calls:-no} calls) and the cluster's MPI share (${share:-none})" \
		'grep -qx "tiermem_mpi_ranks{split=\"$split\"} 2" "$W/$label.metrics" &&
		 [ "$(grep -c "^tiermem_mpi_weight_bytes_total{rank=\"[01]\"} [1-9]" "$W/$label.metrics")" = 2 ] &&
		 awk -v c="${calls:-0}" -v s="${share:--1}" "BEGIN { exit !(c > 0 && s > 0 && s < 1) }"'
	if [ "$split" = layers ]; then
		steps=$(sed -n 's/^tiermem_pipeline_decode_steps_total{groups="[0-2]"} \([0-9]*\)$/\1/p' "$W/$label.metrics" |
			paste -sd+ | bc)
		check "--split layers: /metrics counts the decode steps by the groups they were made in ($steps)" \
			'[ "${steps:-0}" -gt 0 ]'
		# the dashboard's cluster table, in headless Chromium while a request streams
		CLUSTER=2 MODEL=moe MAX_TOKENS=200 dashboard "http://127.0.0.1:$port" "$BUILD/test-artifacts/dashboard-mpi.png"
	fi
	r0=$(rank_pid "$mpirun_pid" 0)
	r1=$(rank_pid "$mpirun_pid" 1)
	if [ "$split" != layers ]; then
		# SIGTERM to rank 0: it finishes, tells rank 1 to stop, everything exits 0
		kill -TERM "$r0"
		for _ in $(seq 1 100); do kill -0 "$mpirun_pid" 2>/dev/null || break; sleep 0.1; done
		wait "$mpirun_pid"
		rc=$?
		check "--split $split: SIGTERM to rank 0 ends both ranks, mpirun exits 0 (got $rc)" \
			'[ $rc = 0 ] && gone "$r1" && grep -q "tiermem serve: stopped" "$W/$label.err"'
	else
		# SIGTERM to mpirun: Open MPI aborts the job, every rank ends, mpirun exits 1
		kill -TERM "$mpirun_pid"
		for _ in $(seq 1 100); do kill -0 "$mpirun_pid" 2>/dev/null || break; sleep 0.1; done
		wait "$mpirun_pid"
		rc=$?
		check "--split $split: SIGTERM to mpirun ends both ranks within 10 s, mpirun exits 1 (got $rc)" \
			'[ $rc = 1 ] && gone "$r0" && gone "$r1"'
	fi
done

# a follower killed while rank 0 waits for requests: the job ends, rank 0 too
if start dies -m "$W/moe.gguf" -np 2 -c 256 --split experts; then
	r0=$(rank_pid "$PID_dies" 0)
	kill -9 "$(rank_pid "$PID_dies" 1)"
	for _ in $(seq 1 100); do kill -0 "$PID_dies" 2>/dev/null || break; sleep 0.1; done
	wait "$PID_dies"
	rc=$?
	check "a follower killed with -9: the job ends within 10 s, not 0 (got $rc)" \
		'[ $rc != 0 ] && gone "$r0"'
else
	notok "the server for the kill test did not start: $(head -c 600 "$W/dies.err")"
fi

# the pipeline: a dense model with enough work per layer that the ranks' spans are not all MPI latency
"$TM0" synth --arch llama --type q8_0 --dim 768 --layers 6 --ff 2048 -q -o "$W/dense.gguf" >/dev/null 2>&1
PS=("Once upon a time" "The quick brown fox jumps over" "In the beginning" "Hello world, said the")	# all4.py's
export MAXT=32
# all4 PORT PREFIX: the four prompts at once (one process, four threads let go together, so the
# completions overlap however loaded the host is), texts in W/PREFIX0..3
cat >"$W/all4.py" <<'PY'
import json, os, sys, threading, urllib.request
port, prefix = sys.argv[1], sys.argv[2]
prompts = ["Once upon a time", "The quick brown fox jumps over", "In the beginning", "Hello world, said the"]
go = threading.Barrier(len(prompts))
def one(i):
    body = json.dumps({"prompt": prompts[i], "max_tokens": int(os.environ["MAXT"]), "temperature": 0}).encode()
    req = urllib.request.Request("http://127.0.0.1:%s/v1/completions" % port, body,
                                 {"Content-Type": "application/json"})
    go.wait()
    with urllib.request.urlopen(req, timeout=120) as r:
        text = json.load(r)["choices"][0]["text"]
    with open(prefix + str(i), "w") as f:
        print(text, file=f)
ts = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
for t in ts:
    t.start()
for t in ts:
    t.join()
PY
all4() { timeout 150 python3 "$W/all4.py" "$1" "$W/$2" 2>&1; }
# stop_rank0 MPIRUN-PID: SIGTERM to rank 0, which stops the others and reports; sets rc
stop_rank0() {
	kill -TERM "$(rank_pid "$1" 0)"
	for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	wait "$1"
	rc=$?
}
# field NAME FILE: NAME=VALUE from the cluster line
field() { grep -m1 '^cluster:' "$2" | sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
# the reference: a fresh single-process server, the four at once (no slot reuses another's prefix)
TM=$TM0
if start ref4 -m "$W/dense.gguf" -np 4 -c 256; then
	all4 "$PORT_ref4" r
	kill "$PID_ref4"
else
	notok "the single-process reference server did not start: $(head -c 600 "$W/ref4.err")"
fi
TM=$W/mpiserve
for np in 2 3; do
	if ! NP=$np start "pipe$np" -m "$W/dense.gguf" -np 4 -c 256 --split layers --pipeline-groups equal; then
		notok "mpirun -np $np serve --split layers did not start: $(head -c 600 "$W/pipe$np.err")"
		continue
	fi
	port_var=PORT_pipe$np pid_var=PID_pipe$np
	all4 "${!port_var}" p
	same=0
	for i in 0 1 2 3; do [ -s "$W/r$i" ] && cmp -s "$W/r$i" "$W/p$i" && same=$((same + 1)); done
	check "--split layers -np $np: four completions at once each equal the single-process text ($same of 4)" \
		'[ $same = 4 ]'
	stop_rank0 "${!pid_var}"
	calls=$(field overlapped_calls "$W/pipe$np.err") ov=$(field overlap_sec "$W/pipe$np.err")
	check "--split layers -np $np: ranks computed at once ($(grep -m1 '^cluster:' "$W/pipe$np.err" | grep -o 'parallelism.*'))" \
		'[ $rc = 0 ] && [ "${calls:-0}" -gt 0 ] && awk -v o="${ov:-0}" "BEGIN { exit !(o > 0) }"'
done
# by cost: the same texts; the report gives every stage's fitted cost and the groups chosen
if NP=3 start cost3 -m "$W/dense.gguf" -np 4 -c 256 --split layers; then
	all4 "$PORT_cost3" q
	curl -s "http://127.0.0.1:$PORT_cost3/metrics" >"$W/cost3.metrics"
	same=0
	for i in 0 1 2 3; do [ -s "$W/r$i" ] && cmp -s "$W/r$i" "$W/q$i" && same=$((same + 1)); done
	check "--split layers -np 3, groups by cost: four completions at once each equal the single-process text ($same of 4)" \
		'[ $same = 4 ]'
	stop_rank0 "$PID_cost3"
	line=$(grep -m1 '^pipeline groups' "$W/cost3.err")
	fitted=$(grep -o 'stage [0-9] [0-9.]* ms + [0-9.]* ms/row' <<<"$line" | wc -l)
	check "--split layers -np 3, groups by cost: each stage's cost fitted from its calls ($line)" \
		'[ $rc = 0 ] && [ "$fitted" = 3 ] && grep -q "(by cost)" <<<"$line"'
	check "--split layers -np 3: /metrics gave each stage's fitted cost per call and per row, and 3 ranks' counters" \
		'[ "$(grep -c "^tiermem_pipeline_stage_seconds{stage=\"[0-2]\",per=\"\(call\|row\)\"} [0-9]" "$W/cost3.metrics")" = 6 ] &&
		 [ "$(grep -c "^tiermem_mpi_calls_total{rank=" "$W/cost3.metrics")" = 3 ]'
else
	notok "the cost-grouped server did not start: $(head -c 600 "$W/cost3.err")"
fi
TM=$TM0
expect2_re "--pipeline-groups some: refused" "want cost or equal" "$TM0" serve -m "$W/dense.gguf" --pipeline-groups some
expect2_re "--pipeline-groups without --split: refused" "only with --split layers" \
	"$TM0" serve -m "$W/dense.gguf" --pipeline-groups equal
TM=$W/mpiserve
# the control: one completion at a time, each step waits for the one before: no overlap (the
# second one's text is not compared: its slot may reuse the first's prefix, see 65-serve)
if NP=2 start turns -m "$W/dense.gguf" -np 4 -c 256 --split layers --pipeline-groups equal; then
	complete "$PORT_turns" "${PS[0]}" >"$W/t0"
	complete "$PORT_turns" "${PS[2]}" >"$W/t2"
	stop_rank0 "$PID_turns"
	calls=$(field overlapped_calls "$W/turns.err") ov=$(field overlap_sec "$W/turns.err")
	check "--split layers -np 2, one completion at a time: no overlap measured ($(grep -m1 '^cluster:' "$W/turns.err" | grep -o 'overlapped_calls.*'))" \
		'[ $rc = 0 ] && [ "$calls" = 0 ] && [ "$ov" = 0.000000 ] && cmp -s "$W/t0" "$W/r0"'
else
	notok "the control server did not start: $(head -c 600 "$W/turns.err")"
fi
unset MAXT
TM=$TM0
echo "1..$n"
exit $failed
