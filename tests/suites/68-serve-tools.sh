#!/usr/bin/env bash
# Tool calls parsed out of model output, through the official openai npm
# client (tests/serve/tools.mjs). A synth model would never write a call, so
# each server runs with TIERMEM_SERVE_TEST_REPLY (tests only): its every
# completion is that text's tokens instead of sampled ones, and goes through
# the real detokenizing, streaming and parsing. The parsers themselves, per
# format and on malformed input, are unit tests (tests/unit/test_tools.c).
set -u
cd "$TOP"
TM=$BUILD/san/tiermem
[ -x "$TM" ] || TM=$BUILD/tiermem
NODE_DIR=$BUILD/serve-test
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-serve-tools.XXXXXX")
. "$TOP/tests/lib/serve.sh"
. "$TOP/tests/lib/tap.sh"

need_npm openai
synth_or_notok "$W/m.gguf" --arch qwen3 --type q8_0 || exit 1

DS_BAR=$'\uff5c' DS_LOW=$'\u2581'
ds() { printf '<%s%s%s>' "$DS_BAR" "$1" "$DS_BAR"; }
CALL_ARGS='[{"city":"Paris","days":2},{}]'
qwen_reply='Let me check.
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}
</tool_call>
<tool_call>
{"name": "noop", "arguments": {}}
</tool_call>'
kimi_reply='<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "Paris", "days": 2}<|tool_call_end|><|tool_call_begin|>functions.noop:1<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>'
ds_reply="Checking.$(ds "tool${DS_LOW}calls${DS_LOW}begin")$(ds "tool${DS_LOW}call${DS_LOW}begin")function$(ds "tool${DS_LOW}sep")get_weather
\`\`\`json
{\"city\": \"Paris\", \"days\": 2}
\`\`\`$(ds "tool${DS_LOW}call${DS_LOW}end")
$(ds "tool${DS_LOW}call${DS_LOW}begin")function$(ds "tool${DS_LOW}sep")noop
\`\`\`json
{}
\`\`\`$(ds "tool${DS_LOW}call${DS_LOW}end")$(ds "tool${DS_LOW}calls${DS_LOW}end")"
glm_reply='Sure.
<tool_call>get_weather
<arg_key>city</arg_key>
<arg_value>Paris</arg_value>
<arg_key>days</arg_key>
<arg_value>2</arg_value>
</tool_call>
<tool_call>noop
</tool_call>'
# llama-3.1 takes one call per message (its template refuses two when they come back)
llama_reply='<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}'
# cut off inside the arguments: not a call
glm_bad='Sure.
<tool_call>get_weather
<arg_key>city</arg_key>
<arg_value>Paris'

# run_case NAME TEMPLATE CASE REPLY [ID0]; NAMES and ARGS (JSON) the calls it holds
run_case() {
	local name=$1 tmpl=$2 kind=$3 reply=$4 id0=${5:-} port_var=PORT_$1
	if ! TIERMEM_SERVE_TEST_REPLY=$reply start "$name" -m "$W/m.gguf" -np 2 -c 2048 --chat-template "$tmpl"; then
		notok "$name: the server did not start: $(tail -2 "$W/$name.err")"
		return
	fi
	URL=http://127.0.0.1:${!port_var} CASE=$kind LABEL="$name ($tmpl)" NAMES=${NAMES:-'["get_weather","noop"]'} ARGS=${ARGS:-$CALL_ARGS} \
		ID0=$id0 node_tap "$name" tools.mjs
	stop_server "$name"
}

run_case qwen qwen3 calls "$qwen_reply"
run_case kimi kimi-k2 calls "$kimi_reply" "functions.get_weather:0"
run_case deepseek deepseek3 calls "$ds_reply"
run_case glm glm4.5 calls "$glm_reply"
NAMES='["get_weather"]' ARGS='[{"city":"Paris","days":2}]' run_case llama llama3.1 calls "$llama_reply"
run_case glmbad glm4.5 bad "$glm_bad"
grep -q "TIERMEM_SERVE_TEST_REPLY is set" "$W/qwen.err"
check "the test reply says so on stderr" '[ $? -eq 0 ]'
exit $failed
