#!/usr/bin/env bash
# tiermem serve --expert-cache: one expert cache behind every slot's prefill
# and the batched decode (tm_forward_seqs, where the sequences of one step
# route to different experts). Greedy text of concurrent requests must be the
# same with and without the cache, in every copy mode; /metrics counts the
# cache's hits and misses, and the cache region's bytes are exactly its hits
# times an expert's bytes. Bad input: one line, exit 2.
set -u
cd "$TOP"
TM=$BUILD/san/tiermem
[ -x "$TM" ] || TM=$BUILD/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-serve-experts.XXXXXX")
. "$TOP/tests/lib/serve.sh"
. "$TOP/tests/lib/tap.sh"


# ask NAME: four different prompts at once (decoded together), their texts in W/NAME.K
ask() {
	local port=$1 name=$2 k c=()
	for k in 0 1 2 3; do
		curl -s -m 120 "http://127.0.0.1:$port/v1/completions" \
			-d "{\"model\":\"moe\",\"prompt\":\"Prompt $k: once upon a time $k\",\"max_tokens\":24,\"temperature\":0}" \
			>"$W/$name.$k.json" &
		c+=($!)
	done
	wait "${c[@]}"
	for k in 0 1 2 3; do
		python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' "$W/$name.$k.json" \
			>"$W/$name.$k" 2>/dev/null || echo "no answer: $(head -c 200 "$W/$name.$k.json")" >"$W/$name.$k"
	done
}
metric() { sed -n "s/^$2 \([0-9]*\)$/\1/p" "$W/$1.metrics"; }

"$TM" synth --arch qwen3moe --type q4_K --experts 16 --experts-used 4 --ctx 512 -q -o "$W/moe.gguf" >/dev/null 2>&1 ||
	{ notok "synth"; echo "1..$n"; exit 1; }
"$TM" synth --arch qwen3 --type q4_K -q -o "$W/dense.gguf" >/dev/null 2>&1

if start plain -m "$W/moe.gguf" -np 4 -c 128 --alias moe &&
   start cache -m "$W/moe.gguf" -np 4 -c 128 --alias moe --expert-cache 25% --expert-copy sync &&
   start pred -m "$W/moe.gguf" -np 4 -c 128 --alias moe --expert-cache 4 --expert-predict --expert-policy lru; then
	ok "three servers started (no cache; a 25 % cache with sync copies; async copies with prediction)"
	ask "$PORT_plain" plain
	ask "$PORT_cache" cache
	ask "$PORT_pred" pred
	same=0
	for k in 0 1 2 3; do
		cmp -s "$W/plain.$k" "$W/cache.$k" && cmp -s "$W/plain.$k" "$W/pred.$k" && [ -s "$W/plain.$k" ] && same=$((same + 1))
	done
	check "4 concurrent greedy requests: the same text with and without the cache, in both modes ($same of 4; '$(head -c 60 "$W/plain.0")')" \
		'[ $same -eq 4 ]'
	check "the four prompts gave different texts (so the batch routed differently)" \
		'[ "$(cat "$W"/plain.[0-3] | sort -u | wc -l)" -ge 2 ]'
	for s in plain cache pred; do curl -s "http://127.0.0.1:$(eval echo \$PORT_$s)/metrics" >"$W/$s.metrics"; done
	h=$(metric cache tiermem_expert_cache_hits_total) m=$(metric cache tiermem_expert_cache_misses_total)
	check "/metrics: expert-cache hits and misses counted (hits $h, misses $m)" '[ "${h:-0}" -gt 0 ] && [ "${m:-0}" -gt 0 ]'
	check "/metrics without a cache: no expert-cache counters" '! grep -q tiermem_expert_cache "$W/plain.metrics"'
	# one expert: gate, up and down of 256 x 256 q4_K weights, 144 bytes per 256 of them
	cb=$(sed -n 's/^tiermem_tier_read_bytes_total{map="1".*} \([0-9]*\)$/\1/p' "$W/cache.metrics")
	check "/metrics: the cache region's bytes ($cb) = hits ($h) x one expert's 110592 bytes" \
		'[ -n "$cb" ] && [ -n "$h" ] && [ "$cb" -eq $((h * 110592)) ]'
	hp=$(metric pred tiermem_expert_cache_hits_total)
	check "/metrics with prediction: prefetches counted by outcome" \
		'grep -q "^tiermem_expert_cache_prefetches_total{outcome=\"used\"} [0-9]" "$W/pred.metrics" && [ "${hp:-0}" -gt 0 ]'
	kill -TERM "$PID_cache"
	wait "$PID_cache"
	rc=$?
	check "serve --expert-cache: SIGTERM exits 0 (sanitized: no leak)" '[ $rc -eq 0 ]'
else
	notok "a server did not start: $(tail -2 "$W"/*.err)"
fi

expect2 "serve --expert-cache above the free memory" "$TM" serve -m "$W/moe.gguf" --port 0 --expert-cache 64T
expect2 "serve --expert-cache more experts than a layer has" "$TM" serve -m "$W/moe.gguf" --port 0 --expert-cache 17
expect2 "serve --expert-policy opt" "$TM" serve -m "$W/moe.gguf" --port 0 --expert-cache 4 --expert-policy opt
echo '{"format":"tiermem-expert-heat","version":1}' >"$W/bad-heat.json"
expect2 "serve --expert-heat malformed" "$TM" serve -m "$W/moe.gguf" --port 0 --expert-cache 4 --expert-heat "$W/bad-heat.json"
if start dense -m "$W/dense.gguf" -np 1 -c 64 --expert-cache 25%; then
	check "serve --expert-cache on a dense model: it serves, with a note that the cache has no effect" \
		'grep -q "note: --expert-cache has no effect" "$W/dense.err"'
else
	notok "serve of a dense model with --expert-cache did not start: $(tail -2 "$W/dense.err")"
fi

echo "1..$n"
exit $failed
