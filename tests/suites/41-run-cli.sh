#!/usr/bin/env bash
# tiermem run and tiermem logits as a user meets them: text streams and a
# summary follows; a seed repeats a run; MoE reads only the experts it uses;
# bad input (missing or truncated file, unsupported architecture, -n 0, a
# prompt longer than the context, bad token ids) is one line on stderr and
# exit code 2, never a crash.
set -u
cd "$TOP"
TM=$BUILD/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-run-cli.XXXXXX")
trap 'rm -rf "$W"' EXIT
. "$TOP/tests/lib/tap.sh"


for a in llama qwen3moe; do
	synth_or_notok "$W/$a.gguf" --arch $a --type q4_K || exit 1
done

"$TM" run -m "$W/llama.gguf" -p "Once upon a time" -n 12 -t 2 --seed 7 >"$W/a.txt" 2>"$W/a.err"
rc=$?
check "run: exit 0, the prompt then generated text on stdout" \
	'[ $rc -eq 0 ] && grep -q "^Once upon a time" "$W/a.txt" && [ $(wc -c <"$W/a.txt") -gt 17 ]'
check "run: summary with prompt and generation tok/s, bytes per token and GB/s" \
	'grep -q "prompt: .* tok/s" "$W/a.err" && grep -q "generation: .* tok/s" "$W/a.err" && grep -q "MiB read per token, .* GB/s" "$W/a.err"'
"$TM" run -m "$W/llama.gguf" -p "Once upon a time" -n 12 -t 1 --seed 7 >"$W/b.txt" 2>/dev/null
check "run: the same seed gives the same text (on 1 and 2 threads)" 'cmp -s "$W/a.txt" "$W/b.txt"'
"$TM" run -m "$W/llama.gguf" -p "Once upon a time" -n 12 --seed 8 >"$W/c.txt" 2>/dev/null
"$TM" run -m "$W/llama.gguf" -p "Once upon a time" -n 12 --seed 9 >"$W/d.txt" 2>/dev/null
check "run: different seeds give different text" '! cmp -s "$W/c.txt" "$W/d.txt"'
"$TM" run -m "$W/llama.gguf" -p "Once upon a time" -n 12 --temp 0 --seed 1 >"$W/e.txt" 2>/dev/null
"$TM" run -m "$W/llama.gguf" -p "Once upon a time" -n 12 --temp 0 --seed 2 >"$W/f.txt" 2>/dev/null
check "run: --temp 0 is greedy whatever the seed" 'cmp -s "$W/e.txt" "$W/f.txt"'
"$TM" run -m "$W/llama.gguf" -p "Once upon a time" -n 12 --temp 0 --weights mmap >"$W/g.txt" 2>"$W/g.err"
"$TM" run -m "$W/llama.gguf" -p "Once upon a time" -n 12 --temp 0 --weights ddr >"$W/h.txt" 2>"$W/h.err"
check "run: weights mapped from the file and read into 2 MiB DDR pages give the same text" \
	'cmp -s "$W/e.txt" "$W/g.txt" && cmp -s "$W/e.txt" "$W/h.txt" && grep -q "file, file" "$W/g.err" && grep -q "ddr, anon-thp" "$W/h.err"'

# MoE: 8 experts, top-2: a token reads the router and 2 experts' weights, not all 8
"$TM" run -m "$W/qwen3moe.gguf" -p "Hello" -n 8 --seed 1 >/dev/null 2>"$W/moe.err"
per=$(sed -n 's/.* \([0-9.]*\) MiB read per token.*/\1/p' "$W/moe.err")
total=$(sed -n 's/.*, \([0-9.]*\) MiB of weights.*/\1/p' "$W/moe.err")
check "run on MoE: weight bytes per token ($per MiB) well below the file's weights ($total MiB)" \
	'[ -n "$per" ] && awk -v p="$per" -v t="$total" "BEGIN { exit !(p > 0 && p < 0.6 * t) }"'

# no -m: the built-in default model (written beside the binary on first use)
"$TM" run -n 4 -t 2 --seed 1 >"$W/def.txt" 2>"$W/def.err"
rc=$?
check "run without -m: the built-in default model generates and reports ($(grep -o '[0-9.]* MiB read per token' "$W/def.err"))" \
	'[ $rc -eq 0 ] && grep -q "^Once upon a time" "$W/def.txt" && grep -q "MiB read per token" "$W/def.err" && [ -f "$(dirname "$TM")/default-model.gguf" ]'

expect2 "run -n 0" "$TM" run -m "$W/llama.gguf" -p hi -n 0
expect2 "run -t 0" "$TM" run -m "$W/llama.gguf" -p hi -t 0
expect2 "run -t 100000" "$TM" run -m "$W/llama.gguf" -p hi -t 100000
expect2 "run with a KV cache type this build does not run" "$TM" run -m "$W/llama.gguf" -p hi -ctk q4_0
# KV types under the sanitizers: a bad name, and q8_0 on heads of 48 values
# (its blocks of 32 would straddle two heads): one line, exit 2; q8_0 on the
# test model's heads of 64 runs, sanitizers quiet
expect2 "run -ctv with a name that is no KV cache type (sanitizers)" "$BUILD/san/tiermem" run -m "$W/llama.gguf" \
	-p hi -ctv q8
"$TM" synth --arch qwen3 --type q8_0 --head-dim 48 -q -o "$W/hd48.gguf" >/dev/null 2>&1
expect2 "run -ctk q8_0 on heads of 48 values (sanitizers)" "$BUILD/san/tiermem" run -m "$W/hd48.gguf" -p hi -ctk q8_0
expect2 "logits -ctv q8_0 on heads of 48 values" "$TM" logits -m "$W/hd48.gguf" --tokens 1,2 -o "$W/l.bin" -ctv q8_0
"$BUILD/san/tiermem" run -m "$W/llama.gguf" -p "Once upon a time" -n 8 -t 2 --temp 0 -ctk q8_0 -ctv q8_0 \
	>"$W/q8.txt" 2>"$W/q8.err"
rc=$?
check "run -ctk q8_0 -ctv q8_0: exit 0, sanitizers quiet, text generated" \
	'[ $rc -eq 0 ] && ! grep -q "runtime error\|Sanitizer" "$W/q8.err" && [ -s "$W/q8.txt" ]'

# -n far beyond the context (and INT_MAX), under the sanitizers: generation
# stops when the model's 32-token context is full, with no overflow on the way
"$TM" synth --arch llama --type q8_0 --ctx 32 -q -o "$W/ctx32.gguf" >/dev/null 2>&1
"$BUILD/san/tiermem" run -m "$W/ctx32.gguf" -p "Once upon a time" -n 9223372036854775807 -t 2 --temp 0 \
	>"$W/big.txt" 2>"$W/big.err"
rc=$?
np=$(sed -n 's/^prompt: *\([0-9]*\) tokens.*/\1/p' "$W/big.err")
ng=$(sed -n 's/^generation: *\([0-9]*\) tokens.*/\1/p' "$W/big.err")
check "run -n 9223372036854775807: exit 0, sanitizers quiet, stops with the 32-token context full ($np prompt + $ng decoded)" \
	'[ $rc -eq 0 ] && ! grep -q "runtime error\|Sanitizer" "$W/big.err" && [ $((np + ng)) -eq 32 ]'
"$BUILD/san/tiermem" run -m "$W/ctx32.gguf" -p "Once upon a time" -n 8 -t 16 --temp 0 >"$W/over.txt" 2>"$W/over.err"
rc=$?
"$BUILD/san/tiermem" run -m "$W/ctx32.gguf" -p "Once upon a time" -n 8 -t 1 --temp 0 >"$W/one.txt" 2>/dev/null
check "run -t 16 (more threads than CPUs): exit 0, sanitizers quiet, the same greedy text as -t 1" \
	'[ $rc -eq 0 ] && ! grep -q "runtime error\|Sanitizer" "$W/over.err" && cmp -s "$W/over.txt" "$W/one.txt"'
expect2 "run on a missing file" "$TM" run -m "$W/nope.gguf" -p hi
head -c 300000 "$W/llama.gguf" >"$W/trunc.gguf"
expect2 "run on a truncated GGUF" "$TM" run -m "$W/trunc.gguf" -p hi
# the same file claiming an architecture tiermem does not run
node -e '
	const fs = require("fs"), b = fs.readFileSync(process.argv[1]);
	const k = Buffer.from("general.architecture"), i = b.indexOf(k);
	b.write("gamma", i + k.length + 4 + 8);	/* type u32, length u64, then "llama" */
	fs.writeFileSync(process.argv[2], b);
' "$W/llama.gguf" "$W/gamma.gguf"
expect2 "run on an unsupported architecture" "$TM" run -m "$W/gamma.gguf" -p hi
"$TM" synth --arch llama --type q8_0 --ctx 32 -q -o "$W/short.gguf" >/dev/null
expect2 "run with a prompt longer than the context" "$TM" run -m "$W/short.gguf" \
	-p "$(printf 'once upon a time there was a little robot %.0s' 1 2 3 4 5 6)"
expect2 "run with a bad --top-p" "$TM" run -m "$W/llama.gguf" -p hi --top-p 2
expect2 "logits with a token id outside the vocabulary" "$TM" logits -m "$W/llama.gguf" --tokens 1,99999 -o "$W/l.bin"
expect2 "logits with a malformed token list" "$TM" logits -m "$W/llama.gguf" --tokens 1,,2 -o "$W/l.bin"
expect2 "logits without -o" "$TM" logits -m "$W/llama.gguf" --tokens 1,2
expect2 "logits with more tokens than the context" "$TM" logits -m "$W/short.gguf" \
	--tokens "$(seq -s, 1 40)" -o "$W/l.bin"
"$TM" logits -m "$W/llama.gguf" --tokens 1,2,3 -o "$W/l.bin"
vocab=$(node -e '
	const b = require("fs").readFileSync(process.argv[1]);
	process.stdout.write(String(b.length / 4 / 3))' "$W/l.bin")
check "logits: 3 rows of n_vocab float32 ($vocab per row)" '[ "$vocab" = 1024 ]'

# The model options are one parser (cli/model_args.c): every command that runs
# a model refuses the same mistakes the same way.
printf 'hello there\nonce upon a time\n' >"$W/prompts.txt"
for cmd in "run -p hi" "logits --tokens 1 -o $W/l.bin" "serve --port 0" "profile -f $W/prompts.txt" "bench --gen 1"; do
	c=${cmd%% *} m=-m
	[ "$c" = bench ] && m=--decode
	expect2 "$c: $m and --name together" "$TM" $cmd $m "$W/llama.gguf" --name x
	expect2 "$c: --weights with a bad value" "$TM" $cmd $m "$W/llama.gguf" --weights fast
	expect2 "$c: -ctk with a type this build does not run" "$TM" $cmd $m "$W/llama.gguf" -ctk q9_9
	expect2 "$c: --no-verify without --name" "$TM" $cmd $m "$W/llama.gguf" --no-verify
	expect2 "$c: -t 0" "$TM" $cmd $m "$W/llama.gguf" -t 0
done
"$TM" logits -m "$W/llama.gguf" --tokens 1,2,3 --weights ddr --repack off -o "$W/l-ddr.bin"
check "logits --weights ddr --repack off: the same bits as the mapped file" 'cmp -s "$W/l.bin" "$W/l-ddr.bin"'
export TIERMEM_HOME=$W/home
"$TM" import -m "$W/qwen3moe.gguf" --name moe -q >/dev/null 2>"$W/imp.err"
"$TM" profile -m "$W/qwen3moe.gguf" -f "$W/prompts.txt" -n 2 -t 1 -o "$W/heat-m.json" >/dev/null 2>&1
"$TM" profile --name moe -f "$W/prompts.txt" -n 2 -t 1 -o "$W/heat-n.json" >/dev/null 2>"$W/prof.err"
check "profile --name: the heat of the stored model equals the GGUF's, hash included" \
	'[ -s "$W/heat-n.json" ] && cmp -s "$W/heat-m.json" "$W/heat-n.json"'
expect2 "profile --name of a model not in the store" "$TM" profile --name nosuch -f "$W/prompts.txt"
unset TIERMEM_HOME

exit $failed
