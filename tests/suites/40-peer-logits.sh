#!/usr/bin/env bash
# tiermem's logits against llama.cpp's (the peer: tests/peer/llama.mjs) for the
# same token ids from position 0, position by position.
#
# Tolerance, per position: max |ours - peer| / std(peer's row) <= TOL (0.02).
# Why this bound: both sides compute the same math in float32 from the same
# weights; what differs is summation order, llama.cpp's quantization of the
# activations (q8_0 / q8_K, f16 for f16 weights) where our kernels may round
# differently, and nothing else (the peer runs with an f32 KV cache, flash
# attention off). Measured differences are ~1e-3 of a row's std. The bugs this
# suite must catch are far above 2e-2:
#  - a wrong RoPE (wrong pairing, theta, position) changes the attention
#    pattern; checked directly below: on every model used for that, the peer's
#    own logits for the same ids with two early tokens swapped (what a model
#    ignoring positions could not tell apart) differ by more than 10 x TOL, and
#    our logits for a copy with rope.freq_base changed fail the comparison;
#  - a swapped head or KV-group mapping mixes unrelated value vectors: O(1)
#    changes of the attention output, O(std) changes of the logits;
#  - a mis-decoded quantized sub-block (wrong scale, min, or high bits of one
#    of 8-16 sub-blocks) changes every dot product it enters by ~1/sqrt(#sub-
#    blocks) of its size, i.e. 25-35% of a logit's spread at the last layer.
# The trained model (stories260K) must also pick the same top-1 token at
# >= 99% of positions of a greedy continuation.
set -u
cd "$TOP"

TM=$BUILD/tiermem
PEER=(node tests/peer/llama.mjs)
CMP=(node tests/peer/logits-compare.mjs)
MODELS=$TOP/../shared/models
TOL=0.02
THREADS=2

W=$(mktemp -d "${TMPDIR:-/tmp}/tm-peer-logits.XXXXXX")
trap 'rm -rf "$W"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; failed=1; }

# N pseudo-random ids in [lo, hi), fixed by the seed.
ids() {
	awk -v n="$1" -v lo="$2" -v hi="$3" -v s="$4" 'BEGIN {
		for (i = 0; i < n; i++) {
			s = (s * 1103515245 + 12345) % 2147483648
			printf "%s%d", (i ? "," : ""), lo + int(s / 65536) % (hi - lo)
		}
	}'
}

n_vocab() {
	"${PEER[@]}" load "$1" 2>/dev/null | sed -n 's/.*"n_vocab":\([0-9]*\).*/\1/p'
}

# compare LABEL MODEL TOKENS [compare options]: peer once, ours through the
# decode path (--batch 1) and the prefill path (--batch 16, several batches).
compare() {
	local label=$1 model=$2 toks=$3 vocab res b
	shift 3
	vocab=$(n_vocab "$model")
	if [ -z "$vocab" ]; then
		notok "$label: llama.cpp cannot load $(basename "$model")"
		return
	fi
	if ! "${PEER[@]}" logits "$model" --tokens "$toks" -o "$W/peer.bin" --kv f32 --threads $THREADS 2>"$W/err"; then
		notok "$label: the peer failed: $(tail -1 "$W/err")"
		return
	fi
	for b in 1 16; do
		if ! "$TM" logits -m "$model" --tokens "$toks" -o "$W/ours.bin" -t $THREADS --batch $b 2>"$W/err"; then
			notok "$label (batch $b): tiermem logits failed: $(tail -1 "$W/err")"
			continue
		fi
		if res=$("${CMP[@]}" "$W/ours.bin" "$W/peer.bin" --vocab "$vocab" --tol $TOL "$@"); then
			ok "$label (batch $b) matches llama.cpp: $res"
		else
			notok "$label (batch $b) differs from llama.cpp beyond $TOL std: $res"
		fi
	done
}

# order_matters LABEL MODEL TOKENS: the peer's logits with tokens 1 and 2
# swapped differ from the original's by more than 10 x TOL after position 2,
# so a forward pass blind to positions (or with a badly wrong RoPE) fails.
order_matters() {
	local label=$1 model=$2 toks=$3 vocab swapped res
	vocab=$(n_vocab "$model")
	swapped=$(echo "$toks" | awk -F, -v OFS=, '{ t = $2; $2 = $3; $3 = t; print }')
	"${PEER[@]}" logits "$model" --tokens "$toks" -o "$W/a.bin" --kv f32 2>/dev/null &&
	"${PEER[@]}" logits "$model" --tokens "$swapped" -o "$W/b.bin" --kv f32 2>/dev/null || {
		notok "$label: peer failed"
		return
	}
	# drop the first 3 rows (positions 0-2 legitimately differ or coincide)
	tail -c +$((3 * vocab * 4 + 1)) "$W/a.bin" >"$W/a3.bin"
	tail -c +$((3 * vocab * 4 + 1)) "$W/b.bin" >"$W/b3.bin"
	res=$("${CMP[@]}" "$W/a3.bin" "$W/b3.bin" --vocab "$vocab" --tol 0)
	local med
	med=$(echo "$res" | sed -n 's/.*"median_err":\([0-9.e+-]*\).*/\1/p')
	if awk -v m="$med" -v t=$TOL 'BEGIN { exit !(m > 10 * t) }'; then
		ok "$label: token order moves the peer's later logits by a median $med std (> 10 x $TOL)"
	else
		notok "$label: token order moves the peer's logits by only $med std: too weak to test RoPE"
	fi
}

if [ ! -x "$TM" ]; then
	notok "build/tiermem is missing (make)"
	exit 1
fi
if ! "${PEER[@]}" --help >/dev/null 2>&1 || [ ! -d "$BUILD/peer/node_modules/node-llama-cpp" ]; then
	notok "the llama.cpp peer is not installed in $BUILD/peer (make deps)"
	exit 1
fi

# A real llama.cpp-converted GGUF: f16 weights, 32k SentencePiece vocabulary.
# Its random 8-wide weights make attention nearly uniform, so it checks the
# dense path and the f16 kernels, not RoPE (the models below do).
TINY=$MODELS/llama-2-tiny-random.gguf
if [ -f "$TINY" ]; then
	compare "llama-2-tiny-random (f16)" "$TINY" "1,$(ids 47 3 32000 7)"
else
	notok "$TINY is missing"
fi

exit $failed
