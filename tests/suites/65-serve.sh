#!/usr/bin/env bash
# tiermem serve against the official openai npm client (tests/serve/client.mjs)
# and hostile clients: the sanitized binary serves a small synth model on
# loopback ports the kernel picks. Also: the command's bad usage, the chat
# templates against @huggingface/jinja, SIGTERM finishing an in-flight
# stream and exiting 0 (under ASan, so also without a leak).
set -u
cd "$TOP"
TM=$BUILD/san/tiermem
[ -x "$TM" ] || TM=$BUILD/tiermem
NODE_DIR=$BUILD/serve-test
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-serve.XXXXXX")
. "$TOP/tests/lib/serve.sh"
. "$TOP/tests/lib/tap.sh"

if [ ! -f "$NODE_DIR/node_modules/openai/package.json" ]; then
	notok "the openai npm client is not installed in $NODE_DIR (run scripts/deps)"
	exit 1
fi


synth_or_notok "$W/m.gguf" --arch llama --type q4_K || exit 1

expect2 "serve without -m" "$TM" serve
expect2 "serve a missing file" "$TM" serve -m "$W/none.gguf"
expect2 "serve --parallel 0" "$TM" serve -m "$W/m.gguf" -np 0
expect2 "serve --ctx-size beyond the model's" "$TM" serve -m "$W/m.gguf" -c 100000000
: >"$W/empty-key"
expect2 "serve --api-key-file with an empty first line" "$TM" serve -m "$W/m.gguf" --api-key-file "$W/empty-key"
expect2 "serve --chat-template nonsense" "$TM" serve -m "$W/m.gguf" --chat-template nonsense --port 0
"$TM" serve --help >"$W/help" 2>&1
check "serve --help names the flags" 'grep -q -- "--api-key" "$W/help" && grep -q -- "-np, --parallel" "$W/help"'

# the appliance unit: systemd's own checker, with ExecStart pointing at this build
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$W/unit"
	sed "s|/usr/local/bin/tiermem|$BUILD/tiermem|" packaging/tiermem-serve.service >"$W/unit/tiermem-serve.service"
	systemd-analyze verify "$W/unit/tiermem-serve.service" >"$W/verify" 2>&1
	check "packaging/tiermem-serve.service passes systemd-analyze verify$(head -c 200 "$W/verify")" '[ ! -s "$W/verify" ]'
else
	echo "ok $((n += 1)) - # SKIP systemd-analyze is not installed"
fi

KEY=sk-test-$RANDOM
start main -m "$W/m.gguf" -np 4 -c 1200 -b 16 --api-key "$KEY" || notok "the main server did not start: $(cat "$W/main.err")"
start busy -m "$W/m.gguf" -np 1 --queue 1 -c 512 || notok "the busy server did not start: $(cat "$W/busy.err")"
start slow -m "$W/m.gguf" -np 1 -c 64 --timeout 2 || notok "the slow server did not start: $(cat "$W/slow.err")"
check "serve listens on loopback by default" 'grep -q "http://127.0.0.1:" "$W/main.err"'

N_PROMPT=$("$TM" tokenize -m "$W/m.gguf" -p "Once upon a time" --bos 2>/dev/null | tr , "\n" | grep -c "[0-9]")
URL=http://127.0.0.1:$PORT_main KEY=$KEY MODEL=m N_PROMPT_TOKENS=$N_PROMPT BUSY_URL=http://127.0.0.1:$PORT_busy \
	SLOW_URL=http://127.0.0.1:$PORT_slow START=$((n + 1)) NODE_DIR=$NODE_DIR \
	timeout 300 node "$TOP/tests/serve/client.mjs" >"$W/client.tap" 2>"$W/client.err"
rc=$?
grep -E '^(not )?ok ' "$W/client.tap"
last=$(sed -n 's/^# last \([0-9]*\)/\1/p' "$W/client.tap")
n=${last:-$n}
[ $rc -eq 0 ] || notok "the openai client tests exited $rc: $(tail -5 "$W/client.err")"

# the dashboard in headless Chromium, a screenshot kept in build/test-artifacts
KEY=$KEY dashboard "http://127.0.0.1:$PORT_main" "$BUILD/test-artifacts/dashboard.png"

# an imported model served by name: its weights over two tiers, the same text
# as the GGUF, and /metrics counting the bytes each tier gave
export TIERMEM_HOME=$W/home TIERMEM_BACKEND=user
half=$(($(stat -c %s "$W/m.gguf") / 2048))K
if "$TM" import -m "$W/m.gguf" --name imported --tier fast=ddr:$half@20 --tier slow=file:1G@5 >"$W/imp" 2>&1 &&
   start named --name imported -np 2 -c 256; then
	body='{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}'
	curl -s "http://127.0.0.1:$PORT_named/v1/completions" -d "$body" >"$W/named.json"
	curl -s "http://127.0.0.1:$PORT_busy/v1/completions" -d "$body" >"$W/file.json"
	curl -s "http://127.0.0.1:$PORT_named/metrics" >"$W/named.metrics"
	check "serve --name: an imported model gives the GGUF's text ($(head -c 120 "$W/named.json"))" \
		'grep -q "\"model\":\"imported\"" "$W/named.json" && [ "$(sed "s/.*\"text\":\(\"[^\"]*\"\).*/\1/" "$W/named.json")" = "$(sed "s/.*\"text\":\(\"[^\"]*\"\).*/\1/" "$W/file.json")" ]'
	check "serve --name: /metrics counts bytes read from both tiers ($(grep -c "^tiermem_tier_read_bytes_total{" "$W/named.metrics") mappings)" \
		'[ "$(grep "^tiermem_tier_read_bytes_total{" "$W/named.metrics" | awk "\$NF > 0" | wc -l)" -eq 2 ]'
	kill -TERM "$PID_named"
	wait "$PID_named"
	rc=$?
	check "serve --name: exits 0 on SIGTERM ($rc)" '[ $rc -eq 0 ]'
else
	notok "serve --name: import or start failed: $(tail -2 "$W/imp") $(tail -2 "$W/named.err" 2>/dev/null)"
fi
expect2 "serve --name of a model never imported" "$TM" serve --name nonesuch
expect2 "serve -m and --name together" "$TM" serve -m "$W/m.gguf" --name imported
unset TIERMEM_HOME TIERMEM_BACKEND

# deepseek2 (MLA) in batched decode, both cache layouts: the latent cache
# (split attn_k_b/attn_v_b, absorbed attention) and decompressed per-head K/V
for mla in split legacy; do
	if "$TM" synth --arch deepseek2 --mla "$mla" -q -o "$W/ds2-$mla.gguf" >/dev/null 2>"$W/err" &&
	   start "ds2$mla" -m "$W/ds2-$mla.gguf" -np 4 -c 256; then
		port_var=PORT_ds2$mla pid_var=PID_ds2$mla
		ONLY=batching LABEL="deepseek2 $mla MLA" URL=http://127.0.0.1:${!port_var} KEY=none MODEL=ds2-$mla \
			START=$((n + 1)) NODE_DIR=$NODE_DIR timeout 300 node "$TOP/tests/serve/client.mjs" >"$W/ds2.tap" 2>"$W/ds2.err"
		rc=$?
		grep -E '^(not )?ok ' "$W/ds2.tap"
		last=$(sed -n 's/^# last \([0-9]*\)/\1/p' "$W/ds2.tap")
		n=${last:-$n}
		[ $rc -eq 0 ] || { failed=1; grep -q '^not ok' "$W/ds2.tap" || notok "deepseek2 $mla: client exited $rc: $(tail -3 "$W/ds2.err")"; }
		kill -TERM "${!pid_var}"
		wait "${!pid_var}"
		rc=$?
		check "deepseek2 $mla MLA: the server exits 0 on SIGTERM ($rc)" '[ $rc -eq 0 ]'
	else
		notok "deepseek2 $mla MLA: synth or start failed: $(tail -1 "$W/err") $(tail -1 "$W/ds2$mla.err" 2>/dev/null)"
	fi
done

# SIGTERM: the stream in flight finishes (all 64 tokens, [DONE]), then exit 0
curl -sN -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT_main/v1/completions" \
	-d '{"prompt": "Once upon a time", "max_tokens": 64, "temperature": 0, "stream": true}' >"$W/term.out" &
cpid=$!
for _ in $(seq 1 100); do grep -q '^data: ' "$W/term.out" && break; sleep 0.05; done
kill -TERM "$PID_main"
wait "$PID_main"
rc=$?
wait "$cpid"
grep -q '"finish_reason":"length"' "$W/term.out" || tail -3 "$W/term.out" | sed 's/^/# /'
check "SIGTERM: the in-flight stream finishes ($(grep -c '"text"' "$W/term.out") chunks, [DONE])" \
	'grep -q "\"finish_reason\":\"length\"" "$W/term.out" && tail -2 "$W/term.out" | grep -q "data: \[DONE\]"'
check "SIGTERM: the server exits 0 (under ASan: no leak) ($rc; $(tail -1 "$W/main.err"))" '[ $rc -eq 0 ]'
check "SIGTERM: nothing listens any more" '! curl -s -m 2 "http://127.0.0.1:$PORT_main/health" >/dev/null'
for name in busy slow; do
	pid_var=PID_$name
	kill -TERM "${!pid_var}"
	wait "${!pid_var}"
	rc=$?
	check "SIGTERM: the $name server exits 0 too ($rc)" '[ $rc -eq 0 ]'
done
pids=()
exit $failed
