#!/usr/bin/env bash
# A thinking model's <think> reasoning as reasoning_content (llama-server's
# --reasoning-format; --reasoning-budget 0 and chat_template_kwargs'
# enable_thinking), tool_choice, and calls of undeclared functions,
# through the official openai npm client (tests/serve/reasoning.mjs). As in
# suite 68, a synth model would never think or call, so each server runs
# with TIERMEM_SERVE_TEST_REPLY (tests only): every completion is that
# text's tokens, through the real detokenizing, streaming and parsing. The
# split itself, fed byte by byte, is a unit test (tests/unit/test_reasoning.c).
set -u
cd "$TOP"
TM=$BUILD/san/tiermem
[ -x "$TM" ] || TM=$BUILD/tiermem
NODE_DIR=$BUILD/serve-test
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-serve-reasoning.XXXXXX")
. "$TOP/tests/lib/serve.sh"
. "$TOP/tests/lib/tap.sh"

need_npm openai
synth_or_notok "$W/m.gguf" --arch qwen3 --type q8_0 || exit 1

THINK='The user greets me; I should answer briefly, and < is not a tag.'
ANSWER='Hello! How can I help?'
CALL='<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris"}}
</tool_call>'

# run_case NAME CASE REPLY ANSWER [SERVER ARGS...]
run_case() {
	local name=$1 kind=$2 reply=$3 answer=$4 port_var=PORT_$1
	shift 4
	if ! TIERMEM_SERVE_TEST_REPLY=$reply start "$name" -m "$W/m.gguf" -np 2 -c 2048 --chat-template qwen3 "$@"; then
		notok "$name: the server did not start: $(tail -2 "$W/$name.err")"
		return
	fi
	URL=http://127.0.0.1:${!port_var} CASE=$kind LABEL=$name THINK=$THINK ANSWER=$answer node_tap "$name" reasoning.mjs
	stop_server "$name"
}

run_case think think "<think>
$THINK
</think>

$ANSWER" "$ANSWER"
run_case none none "<think>
$THINK
</think>

$ANSWER" "$ANSWER" --reasoning-format none --reasoning-budget 0
run_case toolthink toolthink "<think>
$THINK
</think>

$CALL" "$CALL"

expect2_re "--reasoning-budget other than -1 and 0" "reasoning-budget 512: only -1" \
	"$TM" serve -m "$W/m.gguf" --reasoning-budget 512
expect2_re "--reasoning-format with an unknown name" "reasoning-format deepseek-legacy" \
	"$TM" serve -m "$W/m.gguf" --reasoning-format deepseek-legacy
"$TM" serve --help | grep -q -- "--reasoning-format F"
check "--help lists --reasoning-format" '[ $? -eq 0 ]'
exit $failed
