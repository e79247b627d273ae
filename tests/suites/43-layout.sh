#!/usr/bin/env bash
# Weight layouts: the interleaved-row layout of q4_K/q6_K/q8_0 matrices
# (kernels/kernels.h; made by `tiermem import` into the store and by a DDR
# load, --repack on|off) against the GGUF layout, on a dense and an MoE
# Q4_K_M synth model and a dense q8_0 one, decode (--batch 1) and prefill
# (--batch 16):
#  - the GGUF layout is untouched where asked: --repack off (DDR) and an
#    import with --repack off give logits bit-identical to the mapped file;
#  - a repacked import and a repacked DDR load are bit-identical to each
#    other (same bytes, same kernels), and the manifest names r16 for exactly
#    the q4_K/q6_K/q8_0 matrices (never token_embd, never f32 vectors);
#  - repacked vs GGUF layout: the same integer block sums, only the order of
#    float additions differs (unit test test_repack: 4e-8 S per matvec), but
#    the activations are quantized to q8_K before every matvec and a sum on a
#    rounding boundary flips one q8 step, which these random models amplify
#    (the GGUF-layout kernels of two ISAs, AVX-512 vs AVX2, differ by as much:
#    0.09 on a logit of 11 at one position). So the bound is the peer suite's
#    for that mechanism: every position within 0.15 std, median 0.06;
#  - and that bound does catch a wrong layout: the manifest edited to say
#    "gguf" for one repacked tensor (its checksum still passes, the bytes are
#    what was stored) must fail it;
#  - a manifest claiming an unknown layout, or r16 for a tensor that cannot
#    have it, and --repack with a bad value: one line, exit 2.
set -u
cd "$TOP"
TM=$BUILD/tiermem
SAN=$BUILD/san/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-layout.XXXXXX")
export TIERMEM_HOME=$W/home TIERMEM_BACKEND=user ASAN_OPTIONS=detect_leaks=1
trap 'rm -rf "$W"' EXIT
. "$TOP/tests/lib/tap.sh"
CMP=(node tests/peer/logits-compare.mjs)
TOL=(--tol 0.15 --med 0.06)
TOKS=1,17,300,45,9,880,2,31,600,5,77,12,400,3,1000,64 NTOK=16

for b in "$TM" "$SAN"; do
	if [ ! -x "$b" ]; then
		notok "$b is missing (make all san)"
		exit 1
	fi
done

for spec in llama:q4_K_M qwen3moe:q4_K_M llama:q8_0; do
	arch=${spec%%:*}-${spec#*:}
	m=$W/$arch.gguf
	synth_or_notok "$m" --arch ${spec%%:*} --type ${spec#*:} || continue
	"$TM" import -m "$m" --name $arch-r16 --repack on -q --tier fast=ddr:1M@20 --tier slow=file:1G@5 >/dev/null 2>"$W/err" ||
		notok "$arch: import failed: $(tail -1 "$W/err")"
	"$TM" import -m "$m" --name $arch-gguf --repack off -q >/dev/null 2>"$W/err" ||
		notok "$arch: import --repack off failed: $(tail -1 "$W/err")"
	mf=$TIERMEM_HOME/models/$arch-r16/manifest.json
	check "$arch: the manifest says r16 for every q4_K/q6_K/q8_0 matrix and for nothing else" \
		"python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))[\"tensors\"]; \
sys.exit(not all((x[\"layout\"]==\"r16\")==(x[\"type\"] in (8,12,14) and x[\"name\"]!=\"token_embd.weight\") for x in t) \
or not any(x[\"layout\"]==\"r16\" for x in t))' '$mf'"
	check "$arch: import --repack off keeps every tensor in the GGUF layout" \
		"! grep -q '\"r16\"' '$TIERMEM_HOME/models/$arch-gguf/manifest.json'"
	for batch in 1 16; do
		run() { "$TM" logits --tokens $TOKS --batch $batch "$@" 2>>"$W/err"; }
		: >"$W/err"
		if ! run -m "$m" -o "$W/mmap.bin" || ! run -m "$m" --weights ddr --repack off -o "$W/ddr-off.bin" ||
		   ! run -m "$m" --weights ddr --repack on -o "$W/ddr-r16.bin" || ! run --name $arch-r16 -o "$W/name-r16.bin" ||
		   ! run --name $arch-gguf -o "$W/name-gguf.bin"; then
			notok "$arch batch $batch: logits failed: $(tail -1 "$W/err")"
			continue
		fi
		check "$arch batch $batch: --weights ddr --repack off and a --repack off import are bit-identical to the mapped GGUF" \
			'cmp -s "$W/mmap.bin" "$W/ddr-off.bin" && cmp -s "$W/mmap.bin" "$W/name-gguf.bin"'
		# Prefill's VNNI matmul (AVX-512 VNNI without AMX) decodes an r16
		# group into the panel its rows give in the GGUF layout, so a dense
		# batch of 16 is then bit-identical in both layouts: "differs" proves
		# nothing there. (AMX tiles sum an r16 group in the r16 kernels' order.)
		if [ $batch -gt 1 ] && grep -qw avx512_vnni /proc/cpuinfo && ! grep -qw amx_int8 /proc/cpuinfo; then
			check "$arch batch $batch: the repacked import is bit-identical to the repacked DDR load (VNNI prefill: either layout)" \
				'cmp -s "$W/ddr-r16.bin" "$W/name-r16.bin"'
		else
			check "$arch batch $batch: the repacked import is bit-identical to the repacked DDR load, and not to the GGUF layout" \
				'cmp -s "$W/ddr-r16.bin" "$W/name-r16.bin" && ! cmp -s "$W/ddr-r16.bin" "$W/mmap.bin"'
		fi
		vocab=$(($(stat -c %s "$W/mmap.bin") / 4 / NTOK))
		if res=$("${CMP[@]}" "$W/name-r16.bin" "$W/mmap.bin" --vocab "$vocab" "${TOL[@]}"); then
			ok "$arch batch $batch: repacked vs GGUF layout within ${TOL[*]}: $res"
		else
			notok "$arch batch $batch: repacked vs GGUF layout beyond ${TOL[*]}: $res"
		fi
	done
done

# ---- what a wrong layout gives fails that bound ----
M=$W/llama-q4_K_M.gguf
mf=$TIERMEM_HOME/models/llama-q4_K_M-r16/manifest.json
cp "$mf" "$W/manifest.good"
python3 - "$mf" blk.0.ffn_down.weight layout gguf <<'PY'
import json, sys
p, name, key, val = sys.argv[1:5]
m = json.load(open(p))
for t in m["tensors"]:
    if t["name"] == name:
        t[key] = val
json.dump(m, open(p, "w"))
PY
"$TM" logits -m "$M" --tokens $TOKS -o "$W/mmap.bin" 2>/dev/null
vocab=$(($(stat -c %s "$W/mmap.bin") / 4 / NTOK))
if "$TM" logits --name llama-q4_K_M-r16 --tokens $TOKS -o "$W/wrong.bin" 2>"$W/err"; then
	if res=$("${CMP[@]}" "$W/wrong.bin" "$W/mmap.bin" --vocab "$vocab" "${TOL[@]}"); then
		notok "one repacked tensor read as the GGUF layout passes the bound: $res"
	else
		ok "one repacked tensor read as the GGUF layout fails the bound: $res"
	fi
else
	notok "logits with one tensor's layout edited failed to run: $(tail -1 "$W/err")"
fi

# ---- bad input ----
edit() { cp "$W/manifest.good" "$mf"; sed -i "$1" "$mf"; }
edit '0,/"r16"/s//"q4_K_r99"/'
expect2_re "a manifest claiming an unknown layout" "layout 'q4_K_r99'" \
	"$SAN" logits --name llama-q4_K_M-r16 --tokens 1,2 -o "$W/x.bin"
cp "$W/manifest.good" "$mf"
python3 -c 'import json,sys; p=sys.argv[1]; m=json.load(open(p)); [t.update(layout="r16") for t in m["tensors"] if t["name"]=="token_embd.weight"]; json.dump(m,open(p,"w"))' "$mf"
expect2_re "a manifest claiming r16 for token_embd" "cannot have" \
	"$SAN" run --name llama-q4_K_M-r16 -p hi -n 1
cp "$W/manifest.good" "$mf"
check "the restored manifest runs again (sanitized run --name)" \
	'"$SAN" run --name llama-q4_K_M-r16 -p hi -n 2 >/dev/null 2>"$W/err"'
expect2_re "import --repack maybe" "--repack" "$SAN" import -m "$M" --name x --repack maybe
expect2_re "run --repack maybe" "--repack" "$SAN" run -m "$M" --repack maybe -p hi -n 1
check "run -m --weights ddr (repacked, sanitized) generates" \
	'"$SAN" run -m "$M" --weights ddr --repack on -p hello -n 4 >/dev/null 2>"$W/err"'
exit $failed
