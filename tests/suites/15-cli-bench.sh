#!/usr/bin/env bash
# tiermem bench from the outside: a small real run, and bad input refused with
# exit code 2, one line naming the problem, and nothing on stdout.
set -u
cd "$TOP"
tm=$BUILD/san/tiermem
n=0 rc=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; rc=1; }

# the release binary: under ASan, shadow-memory faults would blur the fault counts
out=$("$BUILD/tiermem" bench --size 64M --passes 2 -t 2 --tier anon-4k --tier anon-thp --json 2>/dev/null)
if python3 - "$out" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
t = j["tiers"]
assert [x["backend"] for x in t] == ["anon-4k", "anon-thp"], t
for x in t:
    assert len(x["read"]) == 4 and all(r["best_gbs"] >= r["median_gbs"] > 0 for r in x["read"])
    # ceiling_tok_s is printed to 3 decimals: on a slow host it is a small number
    assert abs(x["ceiling_tok_s"] - x["best_gbs"] * 1e9 / j["active_bytes"]) < 1e-3 * x["ceiling_tok_s"] + 5e-4
# 4 KiB pages fault 512x more often than 2 MiB ones
assert t[0]["first_touch"]["faults_per_gib"] > 100 * t[1]["first_touch"]["faults_per_gib"], t
PY
then ok "bench --json: both DDR tiers, 1 and 2 threads, ceilings consistent, THP faults 1/512 of 4K"
else notok "bench --json output wrong: $out"; fi

table=$("$tm" bench --size 32M --passes 1 -t 1 --tier anon-thp --active-bytes 16G 2>/dev/null)
if grep -q "Optane PMem" <<<"$table" && grep -q "anon-thp" <<<"$table"; then
	ok "bench table lists the measured tier and the reference tiers"
else notok "bench table: $table"; fi

model=$TOP/../shared/models/llama-2-tiny-random.gguf
mj=$("$tm" bench --model "$model" --tier anon-thp --size 8M --passes 1 -t 1 --json 2>/dev/null)
if python3 - "$mj" "$model" <<'PY'
import json, os, sys
j = json.loads(sys.argv[1])
# most of this file is its 32k-token vocabulary and embedding table, of which a
# token reads one row: the active bytes are a positive part of the file
size = os.path.getsize(sys.argv[2])
assert j["model"] == sys.argv[2] and 0 < j["active_bytes"] < size * 0.5, (j["active_bytes"], size)
t = j["tiers"][0]
assert abs(t["ceiling_tok_s"] - t["best_gbs"] * 1e9 / j["active_bytes"]) < 1e-3 * t["ceiling_tok_s"]
PY
then ok "bench --model takes the active bytes per token from a GGUF"
else notok "bench --model: $mj"; fi

# bench --decode: the in-process share of the ceiling. The figure itself is
# host-dependent; what must hold is its bookkeeping: the weight bytes a token
# reads are the model's active bytes, KV bytes grow with the context exactly
# as attention reads them (positions 0 .. pos for each token: the same bytes
# per position at every context length),
# and the share is a positive ratio with ordered quartiles.
dj=$("$tm" bench --decode "$model" --ctx 8 --ctx 200 --gen 6 -t 2 --json 2>&1)
if python3 - "$dj" "$mj" <<'PY'
import json, sys
j, active = json.loads(sys.argv[1]), json.loads(sys.argv[2])["active_bytes"]
a, b = j["runs"]
assert a["ctx"] == 10 and b["ctx"] == 202 and a["tokens"] == 6, j
for r in (a, b):
    assert r["weight_bytes"] == active, (r["weight_bytes"], active)
    assert 0 < r["share_q1"] <= r["share"] <= r["share_q3"], r
    assert r["decode_tok_s"] > 0 and r["read_gbs"] > 0 and r["share_cpu"] > 0, r
    # the read ran without prefetch, each line and a line per 2 KiB (8K ahead by default), the fastest counting
    assert r["read_loops"] == 3 and 0 <= r["sparse_faster"] <= r["prefetch_faster"] <= 1, r
# the 6 tokens read positions 0 .. ctx+k for k = 0..5: ctx + 3.5 rows on average
pa, pb = a["kv_bytes"] / (10 + 3.5), b["kv_bytes"] / (202 + 3.5)
assert pa > 0 and abs(pa - pb) < 1e-6 * pa and pa == int(pa), (a, b)
PY
then ok "bench --decode: share and quartiles, weight bytes = active bytes, KV bytes per context"
else notok "bench --decode: $dj"; fi

# --prefetch 0: one read loop per token, without prefetch, which then never "wins"
dj0=$("$tm" bench --decode "$model" --ctx 8 --gen 3 -t 2 --prefetch 0 --json 2>&1)
if python3 -c 'import json,sys; r=json.loads(sys.argv[1])["runs"][0]; assert r["read_loops"] == 1 and r["prefetch_faster"] == 0 and r["sparse_faster"] == 0 and r["share"] > 0, r' "$dj0"
then ok "bench --decode --prefetch 0: one read loop, without prefetch"
else notok "bench --decode --prefetch 0: $dj0"; fi

# the header names the weight layout --repack gave a q4_K model loaded into DDR
q4k=$(mktemp --suffix=.gguf)
lay=""
if "$tm" synth --arch llama --type q4_K -q -o "$q4k" >/dev/null 2>&1; then
	for r in on off; do
		lay="$lay $("$tm" bench --decode "$q4k" --weights ddr --repack $r --ctx 8 --gen 2 -t 1 --json 2>&1 |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["layout"])' 2>&1)"
	done
fi
rm -f "$q4k"
if [ "$lay" = " r16 gguf" ]
then ok "bench --decode: layout r16 with --repack on, gguf with off (q4_K model in DDR)"
else notok "bench --decode layout with --repack on/off: '$lay'"; fi

expect_usage() {
	local what=$1; shift
	local so se code
	so=$("$tm" bench "$@" 2>/tmp/tm-se.$$); code=$?
	se=$(cat /tmp/tm-se.$$); rm -f /tmp/tm-se.$$
	if [ $code -eq 2 ] && [ -z "$so" ] && [ "$(wc -l <<<"$se")" -le 2 ] && [ -n "$se" ]; then
		ok "$what: exit 2: $se"
	else
		notok "$what: exit $code, stdout '$so', stderr '$se'"
	fi
}
tmpf=$(mktemp)
truncate -s 8M "$tmpf"
expect_usage "missing PMEM path" --pmem /nonexistent/pmem --size 8M
expect_usage "PMEM file not on DAX" --pmem "$tmpf" --size 8M
expect_usage "size beyond free memory" --size 100T
expect_usage "zero threads" -t 0
expect_usage "absurd threads" -t 100000
expect_usage "unknown tier" --tier floppy
expect_usage "bad size" --size 12Q
expect_usage "stray argument" extra
expect_usage "model that is not GGUF" --model /etc/passwd
expect_usage "missing model" --model /nonexistent.gguf
if out=$("$tm" bench --decode --help 2>&1) && echo "$out" | grep -q '^usage: tiermem bench (--decode'
then ok "bench --decode --help prints its usage (--help is not taken for the MODEL)"
else notok "bench --decode --help: $out"; fi
expect_usage "decode: missing model" --decode /nonexistent.gguf
expect_usage "decode: not a GGUF" --decode /etc/passwd
expect_usage "decode: more threads than CPUs" --decode "$model" -t 100000
expect_usage "decode: zero threads" --decode "$model" -t 0
expect_usage "decode: context beyond the model's" --decode "$model" --ctx 1000000
expect_usage "decode: zero tokens" --decode "$model" --gen 0
rm -f "$tmpf"
exit $rc
