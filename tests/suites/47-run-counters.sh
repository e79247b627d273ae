#!/usr/bin/env bash
# Per-tier counters of a run, as a user meets them: `tiermem run` prints per
# tier the bytes read per token, GB/s, the share of the tier's bandwidth and
# predicted next to measured tok/s (--json the same); `tiermem stats` shows a
# run in progress without the module, from the run's counters file, which
# goes away when the run ends (normally, on SIGINT; after kill -9 it is
# recognised as dead and ignored). No figure here is judged for speed: only
# that the counters add up and are the run's own.
set -u
cd "$TOP"
TM=$BUILD/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-counters.XXXXXX")
bg=
trap '[ -n "$bg" ] && kill -9 $bg 2>/dev/null; rm -rf "$W"' EXIT
export TIERMEM_HOME=$W/home
. "$TOP/tests/lib/tap.sh"
py() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }

"$TM" synth --arch qwen3moe --type q4_K -q -o "$W/moe.gguf" >/dev/null 2>&1 ||
	{ notok "synth"; echo "1..$n"; exit 1; }

"$TM" run -m "$W/moe.gguf" -n 12 --seed 3 -t 2 >/dev/null 2>"$W/run.err"
check "run: a per-tier line (read/token, GB/s, bench GB/s, share) and predicted next to measured tok/s" \
	'grep -q "^tier .*read/token .*GB/s .*bench GB/s .*share" "$W/run.err" &&
	 grep -Eq "^ddr +anon-thp +[0-9.]+ MiB +[0-9.]+ +[0-9.]+ +[0-9.]+%" "$W/run.err" &&
	 grep -Eq "^tok/s: +predicted [0-9.]+ .*measured [0-9.]+" "$W/run.err"'

"$TM" run -m "$W/moe.gguf" -n 12 --seed 3 -t 2 --json --weights mmap >"$W/run.json" 2>"$W/err"
check "run --json: only JSON on stdout, with the text" \
	'py "$W/run.json" "j[\"text\"].startswith(\"Once upon a time\") and j[\"n_decoded\"] == 11"'
check "run --json: the tiers' bytes per token add up to the run's, each tier measured (bench GB/s > 0)" \
	'py "$W/run.json" "len(j[\"tiers\"]) == 1 and j[\"tiers\"][0][\"tier\"] == \"file\" and abs(sum(t[\"read_per_token\"] for t in j[\"tiers\"]) - j[\"bytes_per_token\"]) < 1 and all(t[\"bench_gbps\"] > 0 and t[\"share\"] > 0 for t in j[\"tiers\"])"'
check "run --json: predicted tok/s is bytes per token over the bench bandwidth" \
	'py "$W/run.json" "abs(j[\"predicted_tps\"] - 1 / sum(t[\"read_per_token\"] / (t[\"bench_gbps\"] * 1e9) for t in j[\"tiers\"])) < 1e-6 * j[\"predicted_tps\"]"'
check "a finished run leaves no counters file" '[ -z "$(ls -A "$TIERMEM_HOME/run" 2>/dev/null)" ]'

"$TM" stats >"$W/s0.txt" 2>"$W/err"
rc=$?
check "stats without the module and without runs: exit 0, says so (was exit 1)" \
	'[ $rc -eq 0 ] && grep -q "module: not loaded" "$W/s0.txt" && grep -q "no tiermem run in progress" "$W/s0.txt"'

# a long run to watch (killed once watched): 16000 tokens of a 256 MB MoE take
# at least 20 s even on an idle host
"$TM" synth --arch qwen3moe --type q4_K --size 256M --ctx 16384 -q -o "$W/long.gguf" >/dev/null 2>&1
"$TM" run -m "$W/long.gguf" -n 16000 --seed 3 -t 1 >/dev/null 2>"$W/bg.err" &
bg=$!
for _ in $(seq 1 300); do
	f=$(ls "$TIERMEM_HOME/run/" 2>/dev/null | grep '\.stat$')
	[ -n "$f" ] && "$TM" stats --json 2>/dev/null | grep -q '"n_decoded": [1-9]' && break
	sleep 0.2
done
check "a run in progress publishes TIERMEM_HOME/run/PID.stat" '[ "$f" = "$bg.stat" ]'
"$TM" stats --json >"$W/s1.json" 2>"$W/err"
check "stats --json without the module: the run, its tier, bytes read, bench bandwidth" \
	'py "$W/s1.json" "not j[\"module\"] and [r[\"pid\"] for r in j[\"runs\"]] == [$bg] and j[\"runs\"][0][\"tiers\"][0][\"bytes_read\"] > 0 and j[\"runs\"][0][\"tiers\"][0][\"bench_gbps\"] > 0 and j[\"runs\"][0][\"n_decoded\"] >= 1"'
"$TM" stats --watch 1 --count 3 --json >"$W/s2.json" 2>"$W/err"
check "stats --watch: one line per sample; the run's bytes grow and give GB/s and bytes per token" \
	'[ $(wc -l <"$W/s2.json") -eq 3 ] && python3 -c "
import json, sys
s = [json.loads(l) for l in open(sys.argv[1])]
a, c = s[0][\"runs\"][0], s[2][\"runs\"][0]
t = c[\"tiers\"][0]
sys.exit(0 if c[\"tiers\"][0][\"bytes_read\"] > a[\"tiers\"][0][\"bytes_read\"] and t[\"read_gbps\"] > 0 and t[\"read_per_token\"] > 0 else 1)" "$W/s2.json"'
"$TM" stats >"$W/s3.txt" 2>"$W/err"
check "stats (text): the run with its tier line and predicted tok/s" \
	'grep -q "^run $bg: .*long.gguf, decoding, .* tok/s, predicted" "$W/s3.txt" && grep -Eq "^  ddr +anon-thp" "$W/s3.txt"'

kill -INT $bg
wait $bg 2>/dev/null
bg=
check "SIGINT: the run's counters file is removed" '[ ! -e "$TIERMEM_HOME/run/$f" ]'

# kill -9 leaves the file; stats must not show a dead run, and cleans it up
"$TM" run -m "$W/long.gguf" -n 16000 --seed 3 -t 1 >/dev/null 2>&1 &
bg=$!
for _ in $(seq 1 300); do [ -e "$TIERMEM_HOME/run/$bg.stat" ] && break; sleep 0.1; done
kill -9 $bg
wait $bg 2>/dev/null
dead=$bg
bg=
check "kill -9 leaves the file behind" '[ -e "$TIERMEM_HOME/run/$dead.stat" ]'
head -c 3000 /dev/urandom >"$TIERMEM_HOME/run/1.stat"
: >"$TIERMEM_HOME/run/2.stat"
"$TM" stats --json >"$W/s4.json" 2>"$W/err"
rc=$?
check "stats ignores a dead run's file and garbage files, exit 0" \
	'[ $rc -eq 0 ] && py "$W/s4.json" "j[\"runs\"] == []"'
check "the dead run's file is cleaned up" '[ ! -e "$TIERMEM_HOME/run/$dead.stat" ]'

echo "1..$n"
exit $failed
