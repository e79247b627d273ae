#!/usr/bin/env bash
# tiermem synth writes files llama.cpp accepts: every architecture x type,
# loaded by the llama.cpp peer (tests/peer/llama.mjs), which evaluates two
# tokens; the logits must be finite and spread (not all equal).
# SYNTH_ARCHS limits the architectures (default: all five; deepseek2 is
# loaded by the logits suite, 40-peer-logits).
set -u
cd "$TOP"
T=$BUILD/tiermem
n=0 rc=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { n=$((n + 1)); echo "$1 $n - $2"; [ "$1" = ok ] || rc=1; }

if [ ! -d "$BUILD/peer/node_modules/node-llama-cpp" ]; then
	echo "not ok 1 - the llama.cpp peer is not installed in $BUILD/peer (make deps, or ln -s /work/main/build/peer build/peer)"
	exit 1
fi

# Finite, not all equal: prints "min max sd" or fails.
check_logits() {
	node -e '
		const b = require("fs").readFileSync(process.argv[1]);
		const v = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
		let s = 0, s2 = 0, lo = Infinity, hi = -Infinity;
		for (const x of v) {
			if (!Number.isFinite(x)) { console.log("non-finite logit"); process.exit(1); }
			s += x; s2 += x * x; lo = Math.min(lo, x); hi = Math.max(hi, x);
		}
		const m = s / v.length, sd = Math.sqrt(s2 / v.length - m * m);
		console.log(`${v.length} logits in [${lo.toFixed(2)}, ${hi.toFixed(2)}], sd ${sd.toFixed(2)}`);
		process.exit(v.length > 0 && sd > 0.1 ? 0 : 1);
	' "$1"
}

# Deterministic for a seed, different across seeds.
"$T" synth --arch qwen3moe --type q4_K_M --seed 5 -o "$tmp/a.gguf" >/dev/null &&
"$T" synth --arch qwen3moe --type q4_K_M --seed 5 -o "$tmp/b.gguf" >/dev/null &&
"$T" synth --arch qwen3moe --type q4_K_M --seed 6 -o "$tmp/c.gguf" >/dev/null
if cmp -s "$tmp/a.gguf" "$tmp/b.gguf" && ! cmp -s "$tmp/a.gguf" "$tmp/c.gguf"; then
	say ok "synth is deterministic for a seed and differs across seeds"
else
	say "not ok" "synth determinism: same seed gives different files, or different seeds the same"
fi
rm -f "$tmp"/[abc].gguf

# Bad usage is exit 2 with a message naming the problem.
bad=0
for args in "--arch gpt9" "--type q1_K" "--type q4_K --dim 100" "--kv-heads 3" "--size 1X" "--experts 4 --arch qwen3"; do
	# shellcheck disable=SC2086
	"$T" synth $args -o "$tmp/bad.gguf" 2>"$tmp/err" >/dev/null
	code=$?
	if [ $code -ne 2 ] || [ -e "$tmp/bad.gguf" ] || [ ! -s "$tmp/err" ]; then
		echo "# synth $args: exit $code, $(cat "$tmp/err")"
		bad=$((bad + 1))
	fi
done
[ $bad -eq 0 ] && say ok "bad options refused with exit 2 and a message" || say "not ok" "$bad bad option sets not refused properly"

# A writer killed midway leaves nothing under the output name, and its temp file is not GGUF.
"$T" synth --size 1G --type f32 -q -o "$tmp/killed.gguf" >/dev/null 2>&1 &
pid=$!
for i in $(seq 50); do [ "$(stat -c %s "$tmp"/killed.gguf.tmp.* 2>/dev/null | head -1)" -gt 1000000 ] 2>/dev/null && break; sleep 0.1; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
left=$(ls "$tmp"/killed.gguf.tmp.* 2>/dev/null | head -1)
if [ ! -e "$tmp/killed.gguf" ] && [ -n "$left" ] && [ "$(head -c 4 "$left" | tr -d "\\0")" != GGUF ]; then
	say ok "synth killed midway: no output file, and the leftover temp file has no GGUF magic"
else
	say "not ok" "synth killed midway: output exists or the temp file looks like GGUF (${left:-no temp file})"
fi
rm -f "$tmp"/killed.gguf*

# Interrupted (SIGINT, SIGTERM): it removes its temp file too.
"$T" synth --size 1G --type f32 -q -o "$tmp/int.gguf" >/dev/null 2>&1 &
pid=$!
for i in $(seq 50); do [ "$(stat -c %s "$tmp"/int.gguf.tmp.* 2>/dev/null | head -1)" -gt 1000000 ] 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid 2>/dev/null
wait $pid 2>/dev/null
if [ -z "$(ls "$tmp"/int.gguf* 2>/dev/null)" ]; then
	say ok "synth terminated midway leaves no file at all"
else
	say "not ok" "synth terminated midway left $(ls "$tmp"/int.gguf*)"
fi
rm -f "$tmp"/int.gguf*

for arch in ${SYNTH_ARCHS:-llama llama-moe qwen3 qwen3moe glm4moe}; do
	for type in f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q3_K q4_K q5_K q6_K iq4_xs q2_K q3_K_M q4_K_M q5_K_M; do
		f=$tmp/$arch-$type.gguf
		if ! out=$("$T" synth --arch "$arch" --type "$type" --seed 7 -o "$f" 2>&1); then
			say "not ok" "synth $arch $type: $out"
			continue
		fi
		if ! peer=$(node tests/peer/llama.mjs logits "$f" --tokens 1,300 -o "$tmp/logits" 2>&1); then
			echo "$peer" | tail -5 | sed 's/^/# /'
			say "not ok" "llama.cpp loads and evaluates synth $arch $type"
		elif ! chk=$(check_logits "$tmp/logits"); then
			say "not ok" "synth $arch $type: llama.cpp logits: $chk"
		else
			say ok "synth $arch $type: llama.cpp loads it, $chk"
		fi
		rm -f "$f"
	done
done
exit $rc
