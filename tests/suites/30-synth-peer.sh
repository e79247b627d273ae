#!/usr/bin/env bash
# tiermem synth writes files llama.cpp accepts: every architecture x type,
# loaded by the llama.cpp peer (tests/peer/llama.mjs), which evaluates two
# tokens; the logits must be finite and spread (not all equal).
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

for arch in llama llama-moe qwen3 qwen3moe; do
	for type in f32 f16 bf16 q8_0 q4_0 q4_K q5_K q6_K q4_K_M q5_K_M; do
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
