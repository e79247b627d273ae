#!/usr/bin/env bash
# tiermem convert --llama2c is faithful: llama.cpp's logits on the converted
# stories260K (shared classifier) and on a variant with its own classifier
# equal those of an independent double-precision llama2.c forward pass
# (tests/peer/llama2c_ref.c) to within float rounding: max |diff| under 1e-3
# of the row's standard deviation at every position (a wrong RoPE pairing,
# swapped w1/w3 or a transposed matrix gives differences of order 1), same
# top-1 everywhere. Bad checkpoints are refused with exit code 2.
set -u
cd "$TOP"
T=$BUILD/tiermem
SRC=$TOP/../shared/models/stories260K.bin
n=0 rc=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() { n=$((n + 1)); echo "$1 $n - $2"; [ "$1" = ok ] || rc=1; }

if [ ! -f "$SRC" ]; then
	echo "not ok 1 - $SRC is missing"
	exit 1
fi
if [ ! -d "$BUILD/peer/node_modules/node-llama-cpp" ]; then
	echo "not ok 1 - the llama.cpp peer is not installed in $BUILD/peer"
	exit 1
fi
cc -O2 -o "$tmp/ref" tests/peer/llama2c_ref.c -lm || { echo "not ok 1 - build llama2c_ref"; exit 1; }

# 64 fixed pseudo-random ids below 512, after BOS
ids=1
x=12345
for i in $(seq 64); do x=$(( (x * 1103515245 + 12345) % 2147483648 )); ids="$ids,$(( x % 512 ))"; done

compare() {
	node -e '
		const fs = require("fs");
		const rd = f => { const b = fs.readFileSync(f); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
		const a = rd(process.argv[1]), b = rd(process.argv[2]), V = +process.argv[3];
		if (a.length !== b.length || a.length % V) { console.log(`sizes differ: ${a.length} vs ${b.length}`); process.exit(1); }
		let worst = 0, agree = 0, T = a.length / V;
		const argmax = (r) => r.reduce((bi, x, i) => x > r[bi] ? i : bi, 0);
		for (let t = 0; t < T; t++) {
			const ra = a.subarray(t * V, (t + 1) * V), rb = b.subarray(t * V, (t + 1) * V);
			let m = 0; for (const x of ra) m += x; m /= V;
			let s = 0; for (const x of ra) s += (x - m) ** 2; const sd = Math.sqrt(s / V);
			let d = 0; for (let i = 0; i < V; i++) d = Math.max(d, Math.abs(ra[i] - rb[i]));
			if (!(d / sd <= worst)) worst = d / sd;
			agree += argmax(ra) === argmax(rb);
		}
		console.log(`${T} positions: max |diff|/sd ${worst.toExponential(2)}, top-1 equal at ${agree}/${T}`);
		process.exit(worst < 1e-3 && agree === T ? 0 : 1);
	' "$1" "$2" "$3"
}

check() {	# NAME CHECKPOINT
	local name=$1 ckpt=$2 out
	if ! out=$("$T" convert --llama2c "$ckpt" -o "$tmp/$name.gguf" 2>&1); then
		say "not ok" "convert $name: $out"
		return
	fi
	say ok "convert $name: $out"
	if ! node tests/peer/llama.mjs logits "$tmp/$name.gguf" --tokens "$ids" --kv f32 -o "$tmp/$name.peer" >"$tmp/log" 2>&1; then
		tail -5 "$tmp/log" | sed 's/^/# /'
		say "not ok" "llama.cpp loads and evaluates converted $name"
		return
	fi
	"$tmp/ref" "$ckpt" "$ids" "$tmp/$name.ref"
	if res=$(compare "$tmp/$name.ref" "$tmp/$name.peer" 512); then
		say ok "llama.cpp on converted $name equals the llama2.c reference: $res"
	else
		say "not ok" "llama.cpp on converted $name differs from the llama2.c reference: $res"
	fi
}

check stories260K "$SRC"

# The same model with its own classifier: vocab_size negated, wcls appended
# (the embedding with every weight negated and halved, so tying it would show).
node -e '
	const fs = require("fs");
	const b = Buffer.from(fs.readFileSync(process.argv[1]));
	const h = new Int32Array(b.buffer, b.byteOffset, 7), V = h[5], D = h[0];
	const emb = new Float32Array(b.buffer, b.byteOffset + 28, V * D);
	const wcls = Float32Array.from(emb, x => -0.5 * x);
	h[5] = -V;
	fs.writeFileSync(process.argv[2], Buffer.concat([b, Buffer.from(wcls.buffer)]));
' "$SRC" "$tmp/unshared.bin"
check unshared "$tmp/unshared.bin"

head -c 100000 "$SRC" >"$tmp/trunc.bin"
"$T" convert --llama2c "$tmp/trunc.bin" -o "$tmp/t.gguf" >"$tmp/log" 2>&1
code=$?
if [ $code -eq 2 ] && [ ! -e "$tmp/t.gguf" ] && grep -q 'implies' "$tmp/log"; then
	say ok "a truncated checkpoint is refused with exit 2: $(cat "$tmp/log")"
else
	say "not ok" "a truncated checkpoint: exit $code, $(cat "$tmp/log")"
fi
exit $rc
