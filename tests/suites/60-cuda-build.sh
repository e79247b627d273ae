#!/usr/bin/env bash
# The GPU path where there is no GPU (CI, this VM): the CUDA code compiles for
# sm_80 and sm_90 without warnings into libtiermem-cuda.so, which exports its
# entry point and needs no CUDA library but the driver's at run time; tiermem
# itself links no CUDA; --gpu fails with one line naming the missing GPU,
# exit 2; make check-gpu passes nothing. Running the kernels needs a GPU:
# that is make check-gpu (tests/gpu/), run where one exists.
set -u
cd "$TOP"
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
TM=$BUILD/tiermem
SO=$BUILD/libtiermem-cuda.so
nvcc=$(command -v /usr/local/cuda/bin/nvcc nvcc 2>/dev/null | head -1)
if [ -z "$nvcc" ]; then
	echo "ok 1 - # SKIP nvcc not installed: the CUDA code was not built"
	exit 0
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# make all builds it with nvcc's -Werror all-warnings and gcc's -Werror:
# it exists only if nothing warned
if [ -f "$SO" ] && nm -D --defined-only "$SO" | grep -q ' T tmc_api$'; then
	ok "libtiermem-cuda.so is built (nvcc $($nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), warnings as errors) and exports tmc_api"
else
	notok "libtiermem-cuda.so missing or without tmc_api (make all builds it when nvcc exists)"
fi
# cuobjdump where the toolkit has it; else the target names in the fat binary
cuobj=$(dirname "$nvcc")/cuobjdump
if [ -x "$cuobj" ]; then
	archs=$("$cuobj" --list-elf "$SO" 2>/dev/null | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')
else
	archs=$(strings -a "$SO" | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')
fi
if [[ $archs == *sm_80* && $archs == *sm_90* ]]; then
	ok "libtiermem-cuda.so holds machine code for: $archs"
else
	notok "libtiermem-cuda.so machine code: '$archs' (want sm_80 and sm_90)"
fi
# bench/peer-cuda/fatbin_keep.py (how llama.cpp's CUDA build is slimmed for the GPU machine), on our own
# object: keeping sm_90 machine code leaves exactly half the entries, nothing outside .nv_fatbin changes,
# the object still loads (the error is then the missing driver, not the object), and asking for code
# the object lacks is refused
cp "$SO" "$W/slim.so"
keep=$(python3 bench/peer-cuda/fatbin_keep.py "$W/slim.so" elf:90 2>&1)
read -r off size < <(readelf -S -W "$SO" | sed -n 's/.*\.nv_fatbin *PROGBITS *[0-9a-f]* \([0-9a-f]*\) \([0-9a-f]*\) .*/\1 \2/p')
off=$((16#${off:-0})) size=$((16#${size:-0}))
kept=$(echo "$keep" | sed -n 's/.*kept \([0-9]*\) entries.*dropped \([0-9]*\)/\1 \2/p')
if [ "$off" -gt 0 ] && [ -n "$kept" ] && [ "${kept% *}" = "${kept#* }" ] && [ "${kept% *}" -gt 0 ] &&
   cmp -s <(head -c "$off" "$SO") <(head -c "$off" "$W/slim.so") &&
   cmp -s <(tail -c +$((off + size + 1)) "$SO") <(tail -c +$((off + size + 1)) "$W/slim.so") &&
   ! cmp -s "$SO" "$W/slim.so" &&
   TIERMEM_CUDA_LIB=$W/slim.so $TM run --gpu -m ../shared/models/llama-2-tiny-random.gguf -n 1 2>&1 >/dev/null |
	grep -qv "cannot load" &&
   ! python3 bench/peer-cuda/fatbin_keep.py "$W/slim.so" ptx:90 >/dev/null 2>&1; then
	ok "fatbin_keep.py: $keep; only .nv_fatbin changed, the object still loads, missing code refused"
else
	notok "fatbin_keep.py on libtiermem-cuda.so: '$keep' (section at $off, $size bytes)"
fi
needed=$(readelf -d "$SO" "$TM" 2>/dev/null | grep NEEDED | grep -ci 'cuda\|cudart' | tr -d ' ')
if [ "$needed" = 0 ]; then
	ok "neither tiermem nor libtiermem-cuda.so needs a CUDA library at load time (runtime static, driver loaded on demand)"
else
	notok "a CUDA library is a load-time dependency: $(readelf -d "$SO" "$TM" | grep NEEDED | grep -i cuda)"
fi

# no GPU here: one clear line, exit 2, for each way to ask for one
if nvidia-smi -L >/dev/null 2>&1; then
	echo "ok $((n + 1)) - # SKIP this machine has a GPU: the no-GPU errors are not checked here"
	n=$((n + 1))
else
	m=../shared/models/llama-2-tiny-random.gguf
	for args in "run --gpu -m $m -n 2" "run -ngl 999 -m $m -n 2" "logits --gpu -m $m --tokens 1,2 -o $W/l.f32" \
		    "logits -ngl 99 -m $m --tokens 1 -o $W/l.f32"; do
		$TM $args >"$W/out" 2>"$W/err"
		rc=$?
		if [ $rc -eq 2 ] && [ "$(wc -l <"$W/err")" -eq 1 ] && grep -q "no GPU" "$W/err" && ! [ -s "$W/out" ]; then
			ok "tiermem $args without a GPU: exit 2, $(cat "$W/err")"
		else
			notok "tiermem $args without a GPU: exit $rc, stderr: $(head -3 "$W/err")"
		fi
	done
	# the bench's GPU tiers: named, a missing GPU is an error; by default, a line says why they were not measured
	for t in pcie gpu; do
		$TM bench --tier $t --size 8M --passes 1 -t 1 >"$W/out" 2>"$W/err"
		rc=$?
		if [ $rc -eq 2 ] && [ "$(wc -l <"$W/err")" -eq 1 ] && grep -q "^tiermem bench: --tier $t: no GPU" "$W/err" &&
		   ! [ -s "$W/out" ]; then
			ok "tiermem bench --tier $t without a GPU: exit 2, $(cat "$W/err")"
		else
			notok "tiermem bench --tier $t without a GPU: exit $rc, stderr: $(head -3 "$W/err")"
		fi
	done
	$TM bench --size 8M --passes 1 -t 1 >"$W/out" 2>/dev/null
	rc=$?
	if [ $rc -eq 0 ] && grep -q "^gpu   not measured: no GPU" "$W/out" && grep -q "^pcie  not measured: no GPU" "$W/out" &&
	   grep -q "anon-thp" "$W/out"; then
		ok "tiermem bench without --tier: the DDR tiers measured, gpu and pcie said not measured (no GPU)"
	else
		notok "tiermem bench without --tier: exit $rc, $(tail -3 "$W/out")"
	fi
	TIERMEM_CUDA_LIB=$W/none.so $TM run --gpu -m $m -n 2 >/dev/null 2>"$W/err"
	rc=$?
	if [ $rc -eq 2 ] && grep -q "no GPU support: cannot load" "$W/err"; then
		ok "without libtiermem-cuda.so: exit 2, the message names the missing object"
	else
		notok "without libtiermem-cuda.so: exit $rc, $(cat "$W/err")"
	fi
	out=$(make --no-print-directory check-gpu 2>&1)
	if echo "$out" | grep -q "SKIPPED, nothing passed" && ! echo "$out" | grep -qE '^ok [0-9]+ - [^#]*$'; then
		ok "make check-gpu without a GPU: skipped, nothing counted as passed"
	else
		notok "make check-gpu without a GPU: $(echo "$out" | tail -3)"
	fi
	$TM run -ngl 0 -m $m -n 2 --temp 0 >/dev/null 2>"$W/err" && ok "-ngl 0 runs on the CPU" ||
		notok "-ngl 0: $(cat "$W/err")"
	$TM run -ngl x -m $m -n 2 >/dev/null 2>"$W/err"
	[ $? -eq 2 ] && ok "-ngl x: exit 2, $(cat "$W/err")" || notok "-ngl x accepted"
	# -ot with --gpu (the hybrid, pcie): the rules are checked before the GPU is looked for
	for args in "run -m $m -n 2 -ot exps=CPU" "logits -m $m --tokens 1 -o $W/l.f32 -ot exps=CPU" \
		    "run --gpu -m $m -n 2 -ot exps=CUDA0" "run --gpu -m $m -n 2 -ot (=CPU" \
		    "run --gpu -m $m -n 2 -ot exps=CPU" "logits --gpu -m $m --tokens 1 -o $W/l.f32 --override-tensor exps=pcie"; do
		$TM $args >"$W/out" 2>"$W/err"
		rc=$?
		if [ $rc -eq 2 ] && [ "$(wc -l <"$W/err")" -eq 1 ] && ! [ -s "$W/out" ]; then
			ok "tiermem $args: exit 2, $(cat "$W/err")"
		else
			notok "tiermem $args: exit $rc, stderr: $(head -3 "$W/err")"
		fi
	done
fi
