#!/usr/bin/env bash
# tiermem serve's chat templates against @huggingface/jinja rendering the
# template texts in tests/data/chat-templates/ (tests/serve/templates.mjs):
# each family is recognised from its text, and renders the same prompts.
set -u
cd "$TOP"
TM=$BUILD/san/tiermem
[ -x "$TM" ] || TM=$BUILD/tiermem
NODE_DIR=$BUILD/serve-test
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-serve-tmpl.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
n=0 failed=0
notok() { n=$((n + 1)); echo "not ok $n - $*"; failed=1; }

if [ ! -f "$NODE_DIR/node_modules/@huggingface/jinja/package.json" ]; then
	notok "@huggingface/jinja is not installed in $NODE_DIR (run scripts/deps)"
	exit 1
fi
if ! "$TM" synth --arch llama --type q8_0 -q -o "$W/m.gguf" >/dev/null 2>"$W/err"; then
	notok "synth: $(cat "$W/err")"
	exit 1
fi
for f in tests/data/chat-templates/*.jinja; do
	family=$(basename "$f" .jinja)
	"$TM" serve -m "$W/m.gguf" --port 0 -t 1 -np 1 -c 64 --chat-template-file "$f" 2>"$W/$family.err" &
	pid=$!
	port=
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*:\([0-9]*\)\/ with .*/\1/p' "$W/$family.err" 2>/dev/null)
		[ -n "$port" ] && break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		notok "$family: the server did not start: $(cat "$W/$family.err")"
		continue
	fi
	NODE_DIR=$NODE_DIR timeout 60 node tests/serve/templates.mjs "http://127.0.0.1:$port" "$f" "$family" $((n + 1)) >"$W/tap" 2>"$W/node.err"
	rc=$?
	grep -E '^(not )?ok ' "$W/tap"
	last=$(sed -n 's/^# last \([0-9]*\)/\1/p' "$W/tap")
	n=${last:-$n}
	[ $rc -eq 0 ] || { [ -n "$last" ] && grep -q '^not ok' "$W/tap"; } || notok "$family: templates.mjs exited $rc: $(grep -m3 -i "error\|cause\|code" "$W/node.err" | tr "\n" " ")"
	grep -q '^not ok' "$W/tap" && failed=1
	kill -TERM $pid
	wait $pid || notok "$family: the server did not exit 0"
	pid=
done
exit $failed
