#!/usr/bin/env bash
# Tokenisation equals llama.cpp's: `tiermem tokenize` against the peer
# (tests/peer/llama.mjs tokenize, llama.cpp through node-llama-cpp) on the
# corpus tests/data/tokenizer-corpus.txt (line by line, whole, with special
# tokens parsed) and on random stress text, for
#  - the real 32k SentencePiece vocabulary of llama-2-tiny-random.gguf,
#  - small GPT-2 byte-level BPE vocabularies (pre-tokenizers qwen2, gpt-2,
#    llama-bpe) learnt from text by tests/peer/mkvocab.mjs,
#  - the vocabularies of `tiermem synth` models (llama SPM, qwen3 BPE).
set -u
cd "$TOP"
TM=$BUILD/tiermem
PEER="node tests/peer/llama.mjs"
CORPUS=tests/data/tokenizer-corpus.txt
LLAMA2=$TOP/../shared/models/llama-2-tiny-random.gguf
W=$BUILD/test-tokenizer
n=0 rc=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() { n=$((n + 1)); echo "not ok $n - $*"; rc=1; }
skip() { n=$((n + 1)); echo "ok $n - # SKIP $*"; }

# Same ids from both, or the first differing line on stderr of the TAP stream.
compare() {
	local what=$1 model=$2 input=$3
	shift 3
	if ! $PEER tokenize "$model" "$input" "$@" >"$W/peer.out" 2>"$W/peer.err"; then
		fail "$what: the peer failed: $(tail -1 "$W/peer.err")"
		return
	fi
	if ! "$TM" tokenize -m "$model" -f "$input" "$@" >"$W/ours.out" 2>"$W/ours.err"; then
		fail "$what: tiermem tokenize failed: $(tail -1 "$W/ours.err")"
		return
	fi
	local lines
	lines=$(wc -l <"$W/peer.out")
	if cmp -s "$W/peer.out" "$W/ours.out" && [ "$lines" -gt 0 ]; then
		ok "$what: same ids as llama.cpp ($lines line(s), $(tr ',' '\n' <"$W/ours.out" | wc -l) ids)"
	else
		fail "$what: ids differ from llama.cpp"
		diff "$W/peer.out" "$W/ours.out" | head -4 | sed 's/^/# /'
	fi
}

mkdir -p "$W"
if [ ! -x "$TM" ]; then
	fail "build/tiermem is not built (run make)"
	exit 1
fi

# Bad input first: these need no peer.
"$TM" tokenize -m "$W/missing.gguf" -p hi >/dev/null 2>"$W/err"
[ $? -eq 2 ] && grep -q missing.gguf "$W/err" && ok "a missing model: exit 2, named" ||
	fail "a missing model: expected exit 2 naming the file, got: $(cat "$W/err")"
"$TM" tokenize -m "$CORPUS" -p hi >/dev/null 2>"$W/err"
[ $? -eq 2 ] && ok "a file that is not a GGUF: exit 2 ($(head -c 80 "$W/err"))" ||
	fail "a file that is not a GGUF: expected exit 2, got: $(cat "$W/err")"

if [ ! -f "$BUILD/peer/node_modules/node-llama-cpp/package.json" ] || ! command -v node >/dev/null; then
	skip "the llama.cpp peer is not installed (run scripts/deps)"
	exit $rc
fi

node tests/peer/randtext.mjs 400 35 >"$W/random.txt"

if [ -f "$LLAMA2" ]; then
	compare "llama-2 SPM, corpus by line" "$LLAMA2" "$CORPUS" --lines
	compare "llama-2 SPM, corpus whole (newline runs)" "$LLAMA2" "$CORPUS"
	compare "llama-2 SPM, corpus with special tokens" "$LLAMA2" "$CORPUS" --lines --special
	compare "llama-2 SPM, random stress text" "$LLAMA2" "$W/random.txt" --lines --special
else
	fail "$LLAMA2 is missing"
fi

# Merges learnt from prose, code and the corpus itself (so CJK, emoji and
# white-space runs get multi-byte merges too).
train=("$CORPUS" tests/peer/llama.mjs lib/tokenizer.c)
[ -f /usr/share/common-licenses/GPL-3 ] && train+=(/usr/share/common-licenses/GPL-3)
for pre in qwen2 gpt-2 llama-bpe; do
	v=$W/vocab-$pre.gguf
	if ! node tests/peer/mkvocab.mjs "$v" --pre "$pre" --merges 1500 "${train[@]}" 2>"$W/mk.err"; then
		fail "BPE $pre: mkvocab.mjs failed: $(tail -1 "$W/mk.err")"
		continue
	fi
	[ "$pre" = qwen2 ] && compare "BPE $pre, corpus by line" "$v" "$CORPUS" --lines
	[ "$pre" = qwen2 ] && compare "BPE $pre, corpus whole (newline runs)" "$v" "$CORPUS"
	[ "$pre" = qwen2 ] && compare "BPE $pre, corpus with special tokens" "$v" "$CORPUS" --special
	compare "BPE $pre, random stress text" "$v" "$W/random.txt" --lines --special
done
# The vocabularies `tiermem synth` puts in its test models (SPM for llama,
# byte-level BPE "qwen2" for qwen3): what the model suites tokenize with.
for arch in llama qwen3; do
	v=$W/synth-$arch.gguf
	if ! "$TM" synth --arch "$arch" -q -o "$v" >/dev/null 2>"$W/synth.err"; then
		fail "synth $arch vocabulary: tiermem synth failed: $(tail -1 "$W/synth.err")"
		continue
	fi
	compare "synth $arch vocabulary, corpus by line" "$v" "$CORPUS" --lines --special
	compare "synth $arch vocabulary, random stress text" "$v" "$W/random.txt" --lines
done
echo "1..$n"
exit $rc
