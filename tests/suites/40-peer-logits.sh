#!/usr/bin/env bash
# tiermem's logits against llama.cpp's (the peer: tests/peer/logits-peer.mjs,
# llama.mjs's logits for many models in one process; f32 KV cache, no flash
# attention) for the same token ids from position 0, position
# by position, through both of our paths: decode (--batch 1, matvecs) and
# prefill (--batch 16, matmuls over several batches).
#
# The measure, per position: err = max |ours - peer| / std(peer's row).
# Four tolerance tiers, each a bound on the worst position and on the median:
#  exact    f32 and f16 weights: max 0.01, median 0.005. Both sides do the same
#           float math; measured max 4e-6 (f32) and 1.7e-3 (f16, where
#           llama.cpp rounds the activations to f16 and our kernels do not).
#  rounding bf16 and quantized weights: max 0.15, median 0.03. llama.cpp
#           rounds activations to bf16 / q8_0 / q8_K; where a sum lands on a
#           rounding boundary one side's q8 value differs by one step, and the
#           random synth models amplify that at a few positions (their
#           attention is peaked, their MoE routing has near-ties): measured
#           median 1e-6..0.014, worst single positions 0.03.
#  repack   q2_K mixes, q4_1, q5_1: max 0.15, median 0.06. llama.cpp runs
#           batched q2_K through its AVX-512 repacked 8x8 kernel, which
#           quantizes the activations its own way (measured: median 0.039
#           when the peer evaluates 16 tokens per batch, 1e-6 at one token
#           per batch). q4_1 and q5_1 take q8_1 activations whose f16 sum
#           carries each block's min term, which the random synth weights
#           make large (all of a block's weights below zero): any other
#           rounding of that sum moved every position by a median 0.04. With
#           llama.cpp's (kernels/cpu/quant_ref.c) q4_1 and q5_1 match to 1e-6
#           until one position meets a one-step rounding difference, after
#           which the later positions sit at 0.02-0.04: this tier. Which
#           position that is depends on the float order of the kernel: on the
#           dense q4_1 model the scalar kernel met none (max 0.0024), a
#           512-bit two-block kernel one late (max 0.035, median 8e-7), the
#           256-bit one (llama.cpp's AVX2 order) one at position 2 (median
#           0.031).
#  moe      deepseek2 and glm4moe quantized: max 0.15, median 0.06. Their
#           routers (shared experts, 2.5x-scaled sigmoid weights) meet
#           near-ties where a one-step activation rounding difference flips
#           one expert choice at one position; every later position attends
#           to its changed K/V and moves by ~0.03 (measured medians 0.032 and
#           0.037 on 32 positions, 1e-6 on the first 16, before the flip).
#           Still 5-10x below a mis-decoded block, and the same models in f32
#           must pass the exact tier.
# What must fail, and does by a wide margin:
#  - a wrong RoPE: checked below by running tiermem on a copy whose
#    rope.freq_base is doubled (a subtle RoPE error) against the peer on the
#    original: median errors 0.13-0.66, several times the rounding bound and
#    ~30-100x the exact one; a wrong pairing (NORM vs NEOX) or position is
#    larger still. And the peer's own logits with two early tokens swapped
#    (all a position-blind forward pass could produce) differ by a median
#    > 10x the exact bound on the models that check RoPE (llama-2-tiny-random
#    cannot: its 8-wide random attention is nearly uniform; it checks the
#    f16 dense path and a real llama.cpp-converted file).
#  - a swapped head or KV-group mapping mixes unrelated value vectors: O(1)
#    changes of the attention output, errors of order 1 at every position;
#  - a mis-decoded quantized sub-block (scale, min, high bits of one of the
#    8-16 sub-blocks) changes every dot product it enters by ~1/4 of its
#    size: errors of order 0.3 at every position, 10x the median bound.
# The trained model (stories260K, converted) must also pick llama.cpp's top-1
# token at >= 99% of the positions of its own 300-token greedy continuation.
set -u
cd "$TOP"

TM=$BUILD/tiermem
CMP=(node tests/peer/logits-compare.mjs)
MODELS=$TOP/../shared/models
EXACT=(--tol 0.01 --med 0.005)
ROUND=(--tol 0.15 --med 0.03)
REPACK=(--tol 0.15 --med 0.06)
MOE=(--tol 0.15 --med 0.06)
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

# The float32 value of ARCH.rope.freq_base in a GGUF.
rope_base() {
	node -e '
		const b = require("fs").readFileSync(process.argv[1]), k = Buffer.from(process.argv[2]);
		const i = b.indexOf(k);
		if (i < 0 || b.readUInt32LE(i + k.length) !== 6) process.exit(1);
		process.stdout.write(String(b.readFloatLE(i + k.length + 4)));
	' "$1" "$2.rope.freq_base"
}

if [ ! -x "$TM" ]; then
	notok "build/tiermem is missing (make)"
	exit 1
fi
if [ ! -d "$BUILD/peer/node_modules/node-llama-cpp" ]; then
	notok "the llama.cpp peer is not installed in $BUILD/peer (make deps)"
	exit 1
fi

# ---- the models, and one peer job per (model, token list) ----
# A case: NAME|LABEL|MODEL|TOKENS|TIER|EXTRA[|KV] (EXTRA: more compare options;
# KV: both sides' KV cache type, f32 unless given)
cases=()
job() {	# NAME MODEL TOKENS [KV]: the line for logits-peer.mjs
	printf '%s\t%s\t%s\t%s\n' "$2" "$3" "$W/peer-$1.bin" "${4:-f32}"
}
: >"$W/jobs"
: >"$W/jobs-noamx"

# A real llama.cpp-converted GGUF: f16 weights, 32k SentencePiece vocabulary.
TINY=$MODELS/llama-2-tiny-random.gguf
if [ -f "$TINY" ]; then
	cases+=("tiny|llama-2-tiny-random (f16)|$TINY|1,$(ids 47 3 32000 7)|exact|")
else
	notok "$TINY is missing"
fi

# A trained model: stories260K through tiermem convert, on its own greedy continuation.
STORIES=$MODELS/stories260K.bin
LIBS="-lm -lpthread $(pkg-config --libs libpmem2 libxxhash 2>/dev/null)"
if [ ! -f "$STORIES" ]; then
	notok "$STORIES is missing"
elif ! "$TM" convert --llama2c "$STORIES" -o "$W/stories.gguf" >/dev/null 2>"$W/err"; then
	notok "stories260K: tiermem convert failed: $(tail -1 "$W/err")"
elif ! cc -O2 -D_GNU_SOURCE -Iinclude -I. -o "$W/greedy" tests/peer/logits-greedy.c \
		"$BUILD/libtiermem.a" $LIBS 2>"$W/err"; then
	notok "stories260K: building tests/peer/logits-greedy.c failed: $(tail -1 "$W/err")"
else
	STOKS=$("$W/greedy" "$W/stories.gguf" 300 1)
	cases+=("stories|stories260K greedy, 301 positions|$W/stories.gguf|$STOKS|exact|--top1 0.99")
	cases+=("stories-rand|stories260K random ids|$W/stories.gguf|1,$(ids 63 3 512 11)|exact|--top1 0.99")
fi

# Random-weight models of every architecture and type (tiermem synth's test
# size: dim 256, 2 layers, 4 heads / 2 KV heads, vocab 1024; MoE 8 experts top-2).
TOKS="1,$(ids 31 3 1000 5)"
for arch in llama llama-moe qwen3 qwen3moe; do
	for type in f32 f16 bf16 q8_0 q4_0 q4_K q5_K q6_K q4_K_M; do
		m=$W/$arch-$type.gguf
		if ! "$TM" synth --arch $arch --type $type -q -o "$m" >/dev/null 2>"$W/err"; then
			notok "synth $arch $type failed: $(tail -1 "$W/err")"
			continue
		fi
		case $type in
		f32 | f16) tier=exact ;;
		*) tier=round ;;
		esac
		cases+=("$arch-$type|synth $arch $type|$m|$TOKS|$tier|")
	done
done
# The types K-quant mixes add (q2_K, q3_K_M mixes; the legacy fallbacks), and iq4_xs, on a dense and an MoE arch.
for arch in llama qwen3moe; do
	for type in q4_1 q5_0 q5_1 q3_K q2_K q3_K_M iq4_xs; do
		m=$W/$arch-$type.gguf
		if ! "$TM" synth --arch $arch --type $type -q -o "$m" >/dev/null 2>"$W/err"; then
			notok "synth $arch $type failed: $(tail -1 "$W/err")"
			continue
		fi
		case $type in
		q2_K | q4_1 | q5_1) tier=repack ;;
		*) tier=round ;;
		esac
		cases+=("$arch-$type|synth $arch $type|$m|$TOKS|$tier|")
	done
done
# The MoE shapes of the benchmarks (64 experts, top 8) and a top-1 router.
if "$TM" synth --arch qwen3moe --type q4_K --experts 64 --experts-used 8 -q -o "$W/moe64.gguf" >/dev/null 2>"$W/err"; then
	cases+=("moe64|synth qwen3moe q4_K 64 experts top-8|$W/moe64.gguf|$TOKS|round|")
else
	notok "synth qwen3moe 64 experts failed: $(tail -1 "$W/err")"
fi
if "$TM" synth --arch llama-moe --type q8_0 --experts 4 --experts-used 1 -q -o "$W/moe41.gguf" >/dev/null 2>"$W/err"; then
	cases+=("moe41|synth llama-moe q8_0 4 experts top-1|$W/moe41.gguf|$TOKS|round|")
else
	notok "synth llama-moe 4 experts top-1 failed: $(tail -1 "$W/err")"
fi
# An f16 KV cache on both sides (llama.cpp's default): keys and values rounded
# to halves as they are stored, and, as in ggml's f16 matmuls, the queries and
# the attention weights too (kernels/cpu/attention.c). The same arithmetic, so
# the exact tier on float weights (measured max 4e-4 synth, 5e-3 stories) and
# the rounding tier on a quantized MoE (median 7e-7, worst position 0.02).
cases+=("llama-f32-kv16|synth llama f32, f16 KV cache|$W/llama-f32.gguf|$TOKS|exact||f16")
cases+=("qwen3-f32-kv16|synth qwen3 f32, f16 KV cache|$W/qwen3-f32.gguf|$TOKS|exact||f16")
cases+=("moe64-kv16|synth qwen3moe q4_K 64 experts top-8, f16 KV cache|$W/moe64.gguf|$TOKS|round||f16")
[ -f "$W/stories.gguf" ] &&
	cases+=("stories-kv16|stories260K greedy, f16 KV cache|$W/stories.gguf|$STOKS|exact|--top1 0.99|f16")
# A q8_0 KV cache on both sides. llama.cpp runs one only with flash attention
# (logits-peer.mjs turns it on for q8_0), and for heads of a multiple of 64
# it rotates q and k (and v, and back the output) by a Walsh-Hadamard matrix
# first; we do the same (forward.c) and round the queries through q8_0
# blocks as its q8_0 dot product does, so the cached bytes are the same:
# measured medians 9e-7 (llama), 4e-4 (qwen3, worst position 2e-3) and 6e-7
# (MoE, worst 0.011); without the rotation the llama case was at 0.02, as far
# from llama.cpp's q8_0 logits as q8_0 is from f32. The exact tier on float
# weights, the rounding tier on the quantized MoE.
cases+=("llama-f32-kv8|synth llama f32, q8_0 KV cache|$W/llama-f32.gguf|$TOKS|exact||q8_0")
cases+=("qwen3-f32-kv8|synth qwen3 f32, q8_0 KV cache|$W/qwen3-f32.gguf|$TOKS|exact||q8_0")
cases+=("moe64-kv8|synth qwen3moe q4_K 64 experts top-8, q8_0 KV cache|$W/moe64.gguf|$TOKS|round||q8_0")
# deepseek2 (MLA): both GGUF layouts, q_lora_rank 0 and > 0, softmax and
# sigmoid gating with the routing bias, expert groups, YaRN, leading dense
# layer and a shared expert in every case (tiermem synth's deepseek2 test
# shape: 3 layers, the first dense; 8 experts top-2; kv_lora_rank 256, qk_nope
# 64, qk_rope 32, v_head 64).
# llama.cpp's CPU variant for AMX hosts (libggml-cpu-sapphirerapids.so, which
# ggml loads on this CPU) cannot run split-layout files whose per-head 3-D
# attn_k_b/attn_v_b are quantized or f16: its AMX buffer type takes those
# weights at load time, then no backend accepts attn_k_b's batched matmul
# (GGML_ASSERT(*cur_backend_id != -1)) and attn_v_b's gives garbage that
# ends in the MoE's get_rows (GGML_ASSERT(i01 >= 0 && i01 < ne01)). The same
# build without that variant runs them. So quantized split files are compared
# twice: with those two tensors in f32 against the peer as it loads, and as
# synth writes them (the llama-quantize mix) against a copy of the peer
# without the AMX variant (ds2_noamx).
ds2() {	# NAME TIER SYNTH-OPTIONS...
	local name=$1 tier=$2
	shift 2
	if "$TM" synth --arch deepseek2 -q "$@" -o "$W/ds2-$name.gguf" >/dev/null 2>"$W/err"; then
		cases+=("ds2-$name|synth deepseek2 $*${PEER:+ (llama.cpp without its AMX variant)}|$W/ds2-$name.gguf|$TOKS|$tier||f32|${PEER:-}")
	else
		notok "synth deepseek2 $*: $(tail -1 "$W/err")"
	fi
}
ds2 split exact --type f32
ds2 legacy exact --type f32 --mla legacy
ds2 qlora exact --type f32 --q-lora-rank 256
ds2 sigmoid exact --type f32 --gating sigmoid
ds2 groups exact --type f32 --gating sigmoid --expert-groups 4 --expert-groups-used 2
ds2 yarn exact --type f32 --yarn 8
ds2 yarn-legacy exact --type f32 --yarn 8 --mla legacy --q-lora-rank 256
ds2 f16 exact --type f16 --mla legacy
ds2 q8_0 moe --type q8_0 --mla legacy
ds2 q2_K repack --type q2_K --mla legacy --gating sigmoid
ds2 q3_K_M moe --type q3_K_M --mla legacy
ds2 q4_K_M moe --type q4_K_M --mla legacy --gating sigmoid --q-lora-rank 256
KB32=(--tensor-type attn_k_b=f32 --tensor-type attn_v_b=f32)
ds2 split-q4_K_M moe --type q4_K_M --gating sigmoid --expert-groups 4 --expert-groups-used 2 "${KB32[@]}"
ds2 split-q3_K_M moe --type q3_K_M --q-lora-rank 256 --yarn 4 "${KB32[@]}"
PEER=noamx
ds2 split-q4_K_M-noamx moe --type q4_K_M --gating sigmoid --expert-groups 4 --expert-groups-used 2
ds2 split-q3_K_M-noamx moe --type q3_K_M --q-lora-rank 256 --yarn 4
ds2 split-q8_0-noamx moe --type q8_0
ds2 split-iq4_xs-noamx moe --type iq4_xs
PEER=
# MLA with an f16 cache: the latent rows (split) or the decompressed keys and values (legacy) as halves
cases+=("ds2-split-kv16|synth deepseek2 f32, f16 KV cache|$W/ds2-split.gguf|$TOKS|exact||f16")
cases+=("ds2-legacy-kv16|synth deepseek2 legacy f32, f16 KV cache|$W/ds2-legacy.gguf|$TOKS|exact||f16")
# glm4moe: biased q/k/v, q/k norms (or not), RoPE on half of each head,
# post_attention_norm, a dense first layer, sigmoid routing with the bias and
# a shared expert, and one MTP block both sides skip.
glm() {	# NAME TIER SYNTH-OPTIONS...
	local name=$1 tier=$2
	shift 2
	if "$TM" synth --arch glm4moe -q "$@" -o "$W/glm-$name.gguf" >/dev/null 2>"$W/err"; then
		cases+=("glm-$name|synth glm4moe $*|$W/glm-$name.gguf|$TOKS|$tier|")
	else
		notok "synth glm4moe $*: $(tail -1 "$W/err")"
	fi
}
glm f32 exact --type f32
glm f32-noqknorm exact --type f32 --qk-norm no
glm q4_K_M moe --type q4_K_M
glm q3_K_M moe --type q3_K_M --qk-norm no
for c in "${cases[@]}"; do
	IFS='|' read -r name label model toks tier extra kv peer <<<"$c"
	if [ "$peer" = noamx ]; then
		job "$name" "$model" "$toks" "$kv" >>"$W/jobs-noamx"
	else
		job "$name" "$model" "$toks" "$kv" >>"$W/jobs"
	fi
done
# RoPE sensitivity: the peer on two early tokens swapped.
SWAPPED=$(echo "$TOKS" | awk -F, -v OFS=, '{ t = $2; $2 = $3; $3 = t; print }')
for m in llama-f32 qwen3-f32; do
	[ -f "$W/$m.gguf" ] && job "$m-swapped" "$W/$m.gguf" "$SWAPPED" >>"$W/jobs"
done

# ---- llama.cpp, once for all ----
node tests/peer/logits-peer.mjs "$W/jobs" --threads $THREADS >"$W/peer.log" 2>&1
# The same llama.cpp without its AMX CPU variant: a copy of the peer with that
# library (and the GPU builds) left out; ggml loads the best variant left.
tests/peer/copy-noamx.sh "$W/noamx"
BUILD=$W/noamx node tests/peer/logits-peer.mjs "$W/jobs-noamx" --threads $THREADS >>"$W/peer.log" 2>&1
rm -rf "$W/noamx"
grep '^error' "$W/peer.log" | while read -r line; do echo "# peer: $line"; done

vocab_of() { sed -n "s|^ok $W/peer-$1.bin \([0-9]*\)$|\1|p" "$W/peer.log"; }

# ---- ours through decode (--batch 1) and prefill (--batch 16), against it ----
for c in "${cases[@]}"; do
	IFS="|" read -r name label model toks tier extra kv _ <<<"$c"
	kv=${kv:-f32}
	vocab=$(vocab_of "$name")
	if [ -z "$vocab" ]; then
		notok "$label: llama.cpp failed: $(grep "peer-$name.bin" "$W/peer.log" | head -1)"
		continue
	fi
	case $tier in
	exact) tol=("${EXACT[@]}") ;;
	repack) tol=("${REPACK[@]}") ;;
	moe) tol=("${MOE[@]}") ;;
	*) tol=("${ROUND[@]}") ;;
	esac
	for b in 1 16; do
		if ! "$TM" logits -m "$model" --tokens "$toks" -o "$W/ours.bin" -t $THREADS --batch $b \
				-ctk "$kv" -ctv "$kv" 2>"$W/err"; then
			notok "$label (batch $b): tiermem logits failed: $(tail -1 "$W/err")"
			continue
		fi
		# shellcheck disable=SC2086
		if res=$("${CMP[@]}" "$W/ours.bin" "$W/peer-$name.bin" --vocab "$vocab" "${tol[@]}" $extra); then
			ok "$label (batch $b) matches llama.cpp ($tier): $res"
		else
			notok "$label (batch $b) differs from llama.cpp beyond the $tier tier ${tol[*]} $extra: $res"
		fi
	done
done

# ---- negative checks: what a wrong RoPE would give fails the comparison ----
# order_matters NAME: the peer's logits with tokens 2 and 3 swapped differ
# from the original's after position 3 by a median > 10 x the exact median
# bound: a position-blind forward pass would fail there.
order_matters() {
	local name=$1 vocab skip res med
	vocab=$(vocab_of "$name")
	if [ -z "$vocab" ] || [ -z "$(vocab_of "$name-swapped")" ]; then
		notok "synth $name: no peer logits for the order check"
		return
	fi
	skip=$((3 * vocab * 4 + 1))
	tail -c +$skip "$W/peer-$name.bin" >"$W/a.bin"
	tail -c +$skip "$W/peer-$name-swapped.bin" >"$W/b.bin"
	res=$("${CMP[@]}" "$W/a.bin" "$W/b.bin" --vocab "$vocab")
	med=$(echo "$res" | sed -n 's/.*"median_err":\([0-9.e+-]*\).*/\1/p')
	if awk -v m="$med" 'BEGIN { exit !(m > 0.05) }'; then
		ok "synth $name: two early tokens swapped move llama.cpp's later logits by a median $med (> 10 x 0.005)"
	else
		notok "synth $name: two early tokens swapped move llama.cpp's logits by a median of only $med"
	fi
}

# rope_wrong NAME MODEL ARCH TOKENS TIER: tiermem on a copy with the RoPE base
# doubled must FAIL the comparison with the peer on the original.
rope_wrong() {
	local name=$1 model=$2 arch=$3 toks=$4 vocab base res tol
	if [ "$5" = exact ]; then tol=("${EXACT[@]}"); else tol=("${ROUND[@]}"); fi
	vocab=$(vocab_of "$name")
	if [ -z "$vocab" ] || ! base=$(rope_base "$model" "$arch"); then
		notok "$name: no peer logits or no $arch.rope.freq_base to perturb"
		return
	fi
	if ! node tests/peer/logits-patch.mjs "$model" "$W/wrong.gguf" "$arch.rope.freq_base" \
			"$(awk -v b="$base" 'BEGIN { print 2 * b }')" ||
	   ! "$TM" logits -m "$W/wrong.gguf" --tokens "$toks" -o "$W/ours.bin" -t $THREADS 2>"$W/err"; then
		notok "$name: RoPE perturbation setup failed: $(tail -1 "$W/err")"
		return
	fi
	if res=$("${CMP[@]}" "$W/ours.bin" "$W/peer-$name.bin" --vocab "$vocab" "${tol[@]}"); then
		notok "$name: a doubled RoPE base still passes the $5 tier: $res"
	else
		ok "$name: a doubled RoPE base ($base -> 2x) fails the $5 tier: $res"
	fi
}

# ---- deepseek2: the two MLA layouts agree, and what a wrong one would give fails ----
if "$TM" logits -m "$W/ds2-split.gguf" --tokens "$TOKS" -o "$W/split.bin" -t $THREADS 2>"$W/err" &&
   "$TM" logits -m "$W/ds2-legacy.gguf" --tokens "$TOKS" -o "$W/legacy.bin" -t $THREADS 2>>"$W/err"; then
	if res=$("${CMP[@]}" "$W/split.bin" "$W/legacy.bin" --vocab 1024 "${EXACT[@]}"); then
		ok "deepseek2: the split (absorbed, latent cache) and legacy (attn_kv_b) layouts of one model agree: $res"
	else
		notok "deepseek2: split and legacy layouts differ: $res"
	fi
else
	notok "deepseek2 layouts: $(tail -1 "$W/err")"
fi
# must_fail NAME SUFFIX OP WHAT: tiermem on a copy of ds2-NAME with tensor
# SUFFIX patched must FAIL the exact tier against the peer on the original.
PATCH=$W/gguf-patch
cc -O2 -D_GNU_SOURCE -Iinclude -I. -o "$PATCH" tests/peer/gguf-patch.c "$BUILD/libtiermem.a" $LIBS 2>"$W/err" ||
	notok "building tests/peer/gguf-patch.c failed: $(tail -1 "$W/err")"
must_fail() {
	local name=$1 suffix=$2 op=$3 what=$4 vocab res
	vocab=$(vocab_of "ds2-$name")
	if [ -z "$vocab" ] || ! "$PATCH" "$W/ds2-$name.gguf" "$W/wrong.gguf" "$suffix" "$op" ||
	   ! "$TM" logits -m "$W/wrong.gguf" --tokens "$TOKS" -o "$W/ours.bin" -t $THREADS 2>"$W/err"; then
		notok "deepseek2 $what: setup failed: $(tail -1 "$W/err")"
		return
	fi
	if res=$("${CMP[@]}" "$W/ours.bin" "$W/peer-ds2-$name.bin" --vocab "$vocab" "${EXACT[@]}"); then
		notok "deepseek2 $what still passes the exact tier: $res"
	else
		ok "deepseek2 $what fails the exact tier: $res"
	fi
}
must_fail sigmoid exp_probs_b.bias zero "with the routing bias dropped (zeroed)"
must_fail groups exp_probs_b.bias zero "with groups, the routing bias dropped (zeroed)"
must_fail split attn_k_b.weight swap-heads "absorbing attn_k_b with another head's matrix"
must_fail qlora attn_k_b.weight swap-heads "(q_lora_rank > 0) absorbing attn_k_b with another head's matrix"
# glm4moe: the same for a dropped q bias and a dropped routing bias
for what in "attn_q.bias|the q bias dropped (zeroed)" "exp_probs_b.bias|the routing bias dropped (zeroed)"; do
	IFS='|' read -r suffix label <<<"$what"
	vocab=$(vocab_of glm-f32)
	if [ -z "$vocab" ] || ! "$PATCH" "$W/glm-f32.gguf" "$W/wrong.gguf" "$suffix" zero ||
	   ! "$TM" logits -m "$W/wrong.gguf" --tokens "$TOKS" -o "$W/ours.bin" -t $THREADS 2>"$W/err"; then
		notok "glm4moe with $label: setup failed: $(tail -1 "$W/err")"
	elif res=$("${CMP[@]}" "$W/ours.bin" "$W/peer-glm-f32.bin" --vocab "$vocab" "${EXACT[@]}"); then
		notok "glm4moe with $label still passes the exact tier: $res"
	else
		ok "glm4moe with $label fails the exact tier: $res"
	fi
done

order_matters llama-f32
order_matters qwen3-f32
[ -f "$W/stories.gguf" ] && rope_wrong stories "$W/stories.gguf" llama "$STOKS" exact
rope_wrong qwen3-f32 "$W/qwen3-f32.gguf" qwen3 "$TOKS" exact
rope_wrong llama-q4_K "$W/llama-q4_K.gguf" llama "$TOKS" round
rope_wrong qwen3moe-q4_K "$W/qwen3moe-q4_K.gguf" qwen3moe "$TOKS" round

exit $failed
