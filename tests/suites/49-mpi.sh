#!/usr/bin/env bash
# Decode over MPI (build/tiermem-mpi, Documentation/tiermem-scale.rst), one
# thread per rank, -np 2 and -np 3 (uneven splits of 16 experts and of 4 layers).
#
# --split experts, logits: each rank sums its experts, the partial sums are
# added over the ranks, so the experts' sum is added in another order than in
# one process. Measured per position as 40-peer-logits: max |a - b| / std(row).
# f32 weights: at most 1e-4 (measured 1.5e-6, the size of the single process's
# own batch-64 vs batch-1 difference). q8_0 weights quantize activations to 8
# bits, so a last-bit difference can cross a rounding step and grow through
# the layers (a single process's batch 64 vs batch 1 differ by up to 0.06 of a
# logit on an 8-layer q8_0 model): 40-peer-logits' rounding tier, 0.15.
# deepseek2 (a dense first layer, shared experts) is split like the others.
# Every rank must compute only a part of the experts.
#
# --split experts,dense also splits every dense matrix's rows over the ranks
# (16-row groups), gathering each output: a row is the same dot product on
# any rank, so the logits are bit-identical to --split experts' (MoE) and to
# one process's (a dense model), and every rank reads fewer bytes.
#
# --split layers, logits: each rank runs the same operations in the same order
# on its layers, so the logits are bit-identical to one process's (tolerance
# 0), for a dense model, an MoE one and deepseek2's MLA; the ranks' layer
# ranges cover every layer once and each rank reads fewer weight bytes than
# one process.
#
# run: greedy text (--temp 0) equals one process's in both splits; with
# layers, sampled text (--temp 0.8, a seed) too, since the logits are the
# same bits and rank 0 samples. An expert cache under either split: the
# same greedy text; under --split layers each rank's cache has slots for its
# own layers only; under --split experts each rank's cache holds and serves
# only its own experts (rank 0 reads its experts from the cache and the
# model, about 1/np of one process's), also on per-rank shares, where the
# cache copies experts from the packed share. Refused at start: another
# model, another split, more ranks than layers, a dense model split by
# experts. A rank killed with -9 mid-run (each split): the others
# exit within 10 s, each with one line; a rank that hangs (SIGSTOP): the
# others give up after --mpi-timeout with one line.
set -u
cd "$TOP"
TM=$BUILD/tiermem
. "$TOP/tests/lib/tap.sh"
. "$TOP/tests/lib/mpi.sh"
mpi_or_skip
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-mpi.XXXXXX")
trap 'rm -rf "$W"' EXIT

"$TM" synth --arch qwen3moe --type f32 --layers 4 --experts 16 --experts-used 4 -q -o "$W/moe.gguf" >/dev/null 2>&1
"$TM" synth --arch qwen3moe --type q8_0 --layers 4 --experts 16 --experts-used 4 -q -o "$W/moe-q8.gguf" >/dev/null 2>&1
"$TM" synth --arch qwen3moe --type f32 --layers 4 --experts 16 --experts-used 4 --seed 2 -q -o "$W/other.gguf" >/dev/null 2>&1
"$TM" synth --arch llama --type q8_0 -q -o "$W/dense.gguf" >/dev/null 2>&1
# deepseek2: a leading dense layer (no all-reduce) and shared experts (every rank computes them)
"$TM" synth --arch deepseek2 --type f32 -q -o "$W/ds.gguf" >/dev/null 2>&1
TOK=1,5,9,200,31,7,64,3,17,99,250,12,40,8,77,120

. "$TOP/tests/lib/logits.sh"	# compare A B TOL
# MiB of weights per token rank R reported in FILE
mib_of() { sed -n "s/^rank $2: .*, \([0-9.]*\) MiB of weights\/token.*/\1/p" "$1"; }
lt() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }

"$TM" synth --arch llama --type f32 --layers 4 -q -o "$W/dense32.gguf" >/dev/null 2>&1
# model:tolerance:batch (the suite's time: both paths on one model, one each for the others)
for mtb in moe:1e-4:64 moe:1e-4:1 moe-q8:0.15:1 ds:1e-4:64; do
	m=${mtb%:*} batch=${mtb##*:}
	model=$W/${m%%:*}.gguf tol=${m#*:}
	{
		"$TM" logits -m "$model" --tokens $TOK -o "$W/one.bin" --batch $batch
		run -np 1 "$MPI" logits -m "$model" --tokens $TOK -o "$W/r1.bin" --batch $batch --split experts 2>"$W/r1.err"
		all=$(mib_of "$W/r1.err" 0)
		for np in 2 3; do
			run -np $np "$MPI" logits -m "$model" --tokens $TOK -o "$W/n.bin" --batch $batch \
				--split experts 2>"$W/err"
			rc=$?
			msg=$(compare "$W/one.bin" "$W/n.bin" $tol)
			check "experts: ${m%%:*} -np $np, batch $batch: logits equal one process's within $tol ($msg)" \
				'[ $rc -eq 0 ] && compare "$W/one.bin" "$W/n.bin" $tol >/dev/null'
			fewer=1
			for ((r = 0; r < np; r++)); do
				b=$(mib_of "$W/err" $r)
				[ -n "$b" ] && [ -n "$all" ] && lt "$b" "$all" || fewer=0
			done
			check "experts: ${m%%:*} -np $np, batch $batch: every rank read fewer weight bytes than one rank computing every expert ($all MiB/token)" \
				'[ $fewer -eq 1 ]'
			# experts,dense: the dense matrices' rows split too; a row's bits do not depend on the rank
			run -np $np "$MPI" logits -m "$model" --tokens $TOK -o "$W/nd.bin" --batch $batch \
				--split experts,dense 2>"$W/errd"
			rc=$?
			check "experts,dense: ${m%%:*} -np $np, batch $batch: logits bit-identical to --split experts'; rank 0 reads less ($(mib_of "$W/errd" 0) against $(mib_of "$W/err" 0) MiB/token)" \
				'[ $rc -eq 0 ] && cmp -s "$W/n.bin" "$W/nd.bin" && lt "$(mib_of "$W/errd" 0)" "$(mib_of "$W/err" 0)"'
		done
	}
done

# experts,dense on dense models (no experts: the dense rows alone): the same operations on the
# same inputs, each row computed on one rank and gathered, so one process's bits
for mb in dense32:64 dense:1; do
	m=${mb%%:*} batch=${mb#*:}
	"$TM" logits -m "$W/$m.gguf" --tokens $TOK -o "$W/one.bin" --batch $batch
	run -np 1 "$MPI" logits -m "$W/$m.gguf" --tokens $TOK -o "$W/r1.bin" --batch $batch --split experts,dense 2>"$W/r1.err"
	all=$(mib_of "$W/r1.err" 0)
	for np in 2 3; do
		run -np $np "$MPI" logits -m "$W/$m.gguf" --tokens $TOK -o "$W/n.bin" --batch $batch \
			--split experts,dense 2>"$W/err"
		rc=$?
		fewer=1
		for ((r = 0; r < np; r++)); do
			b=$(mib_of "$W/err" $r)
			[ -n "$b" ] && [ -n "$all" ] && lt "$b" "$all" || fewer=0
		done
		check "experts,dense: $m -np $np, batch $batch: logits bit-identical to one process's, every rank reads less ($(mib_of "$W/err" 0) of $all MiB/token on rank 0)" \
			'[ $rc -eq 0 ] && cmp -s "$W/one.bin" "$W/n.bin" && [ $fewer -eq 1 ]'
	done
done

# ... and on the interleaved-row (r16) layout, whose 16-row groups the row ranges keep whole
"$TM" synth --arch llama --type q4_K_M --layers 4 --dim 512 --ff 1536 -q -o "$W/k4.gguf" >/dev/null 2>&1
"$TM" logits -m "$W/k4.gguf" --tokens $TOK -o "$W/one.bin" --weights ddr --repack on
run -np 3 "$MPI" logits -m "$W/k4.gguf" --tokens $TOK -o "$W/n.bin" --weights ddr --repack on --split experts,dense \
	2>"$W/err"
rc=$?
check "experts,dense: q4_K_M on the r16 layout -np 3, batch 64: logits bit-identical to one process's" \
	'[ $rc -eq 0 ] && cmp -s "$W/one.bin" "$W/n.bin"'

# layers: bit-identical logits, contiguous stages, fewer bytes per rank
# (the decode path, batch 1, only for one model: the suite's time)
for mb in dense32:64 moe:1 ds:64; do
	m=${mb%%:*} batch=${mb#*:}
	model=$W/$m.gguf
	{
		"$TM" logits -m "$model" --tokens $TOK -o "$W/one.bin" --batch $batch
		run -np 1 "$MPI" logits -m "$model" --tokens $TOK -o "$W/r1.bin" --batch $batch --split layers 2>"$W/r1.err"
		all=$(mib_of "$W/r1.err" 0)
		L=$(sed -n 's/^rank 0: layers 0-\([0-9]*\),.*/\1/p' "$W/r1.err")
		for np in 2 3; do
			run -np $np "$MPI" logits -m "$model" --tokens $TOK -o "$W/n.bin" --batch $batch \
				--split layers 2>"$W/err"
			rc=$?
			check "layers: $m -np $np, batch $batch: logits bit-identical to one process's" \
				'[ $rc -eq 0 ] && cmp -s "$W/one.bin" "$W/n.bin"'
			stages=$(sed -n 's/^rank [0-9]*: layers \([0-9]*-[0-9]*\),.*/\1/p' "$W/err" | tr '\n' ' ')
			fewer=1
			for ((r = 0; r < np; r++)); do
				b=$(mib_of "$W/err" $r)
				[ -n "$b" ] && [ -n "$all" ] && lt "$b" "$all" || fewer=0
			done
			check "layers: $m -np $np, batch $batch: stages [$stages] cover layers 0-$L in order, each rank reads less than one process ($all MiB/token)" \
				'[ $fewer -eq 1 ] && python3 -c "
import sys
r = [tuple(map(int, s.split(\"-\"))) for s in sys.argv[1].split()]
ok = len(r) == $np and r[0][0] == 0 and r[-1][1] == ${L:--1} and all(a[1] + 1 == b[0] and a[0] <= a[1] for a, b in zip(r, r[1:]))
sys.exit(0 if ok else 1)" "$stages"'
		done
	}
done
check "the cluster summary on rank 0 ($(grep -m1 '^cluster:' "$W/err"))" \
	'grep -q "^cluster: split=layers ranks=3 tokens=16 " "$W/err" && [ "$(grep -c "^cluster:" "$W/err")" -eq 1 ]'

# stages by cost: a large output head (16000 x 256 f32, 15.6 MiB, against 3 MiB a layer) leaves
# the last stage one layer where a cut by count would give it 3 (np 2) or 2 (np 3); deepseek2
# with a dense first layer over 7 layers. The run's stages are the ones plan --nodes predicts.
"$TM" synth --arch llama --type f32 --layers 6 --vocab 16000 -q -o "$W/head.gguf" >/dev/null 2>&1
"$TM" synth --arch deepseek2 --type f32 --layers 7 -q -o "$W/ds7.gguf" >/dev/null 2>&1
stages_of() { sed -n "s/^ *$1 [0-9]*: layers \([0-9]*-[0-9]*\),.*/\1/p" "$2" | tr '\n' ' '; }
for m in head ds7; do
	"$TM" logits -m "$W/$m.gguf" --tokens $TOK -o "$W/one.bin"
	for np in 2 3; do
		[ $m = ds7 ] && [ $np = 2 ] && continue
		run -np $np "$MPI" logits -m "$W/$m.gguf" --tokens $TOK -o "$W/n.bin" --split layers 2>"$W/err"
		rc=$?
		"$TM" plan -m "$W/$m.gguf" --tier ddr=ddr:1G@10 --nodes $np >"$W/plan" 2>&1
		stages=$(stages_of rank "$W/err") planned=$(stages_of node "$W/plan")
		last=${stages% }
		last=${last##* }
		uneven=1
		[ $m = head ] && { [ "$last" = 5-5 ] || uneven=0; }
		check "layers by cost: $m -np $np: stages [$stages] are plan --nodes's [$planned]; logits bit-identical to one process's" \
			'[ $rc -eq 0 ] && [ -n "$stages" ] && [ "$stages" = "$planned" ] && [ $uneven = 1 ] && cmp -s "$W/one.bin" "$W/n.bin"'
	done
done

# run: the same text as one process
PROMPT="the quick brown fox"
for m in dense32 moe; do
	"$TM" run -m "$W/$m.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 >"$W/one.txt" 2>/dev/null
	for split in layers experts,dense experts; do
		[ $m = dense32 ] && [ $split = experts ] && continue
		for np in 2 3; do
			run -np $np "$MPI" run -m "$W/$m.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 --split $split \
				>"$W/n.txt" 2>"$W/err"
			rc=$?
			check "run --split $split: $m -np $np: greedy text equals one process's ($(wc -c <"$W/n.txt") bytes)" \
				'[ $rc -eq 0 ] && [ -s "$W/one.txt" ] && cmp -s "$W/one.txt" "$W/n.txt"'
		done
	done
done
check "run prints a per-rank summary and one cluster line ($(grep -m1 '^cluster:' "$W/err"))" \
	'grep -q "^rank 2: experts" "$W/err" && grep -q "^cluster: split=experts ranks=3 tokens=23 " "$W/err"'
"$TM" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0.8 --seed 7 -t 1 >"$W/one.txt" 2>/dev/null
run -np 3 "$MPI" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0.8 --seed 7 -t 1 --split layers >"$W/n.txt" 2>"$W/err"
rc=$?
check "run --split layers -np 3 --temp 0.8 --seed 7: the same sampled text (rank 0 samples)" \
	'[ $rc -eq 0 ] && cmp -s "$W/one.txt" "$W/n.txt"'
"$TM" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 >"$W/one.txt" 2>/dev/null
# MiB per token of routed experts rank 0 read from the cache region and from the model, in FILE
xread() { sed -n 's/.*per token: \([0-9.]*\) MiB from the cache region.*(experts \([0-9.]*\)).*/\1 \2/p' "$1"; }
"$TM" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 --expert-cache 8M --expert-predict >/dev/null \
	2>"$W/err1"
read -r hit1 miss1 <<<"$(xread "$W/err1")"
for np in 2 3; do
	run -np $np "$MPI" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 --split experts \
		--expert-cache 8M --expert-predict >"$W/n.txt" 2>"$W/err"
	rc=$?
	read -r hit miss <<<"$(xread "$W/err")"
	# each rank caches and reads only its own experts: rank 0 reads about 1/np of one process's
	check "--split experts -np $np with an expert cache: the same greedy text; rank 0's cache serves its experts ($hit of ${hit}+${miss} MiB/token; one process ${hit1}+${miss1})" \
		'[ $rc -eq 0 ] && cmp -s "$W/one.txt" "$W/n.txt" && awk -v h="$hit" -v m="$miss" -v a="$hit1" -v b="$miss1" \
			"BEGIN { exit !(h > 0 && h + m < (a + b) * 0.8) }"'
done
run -np 2 "$MPI" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 --split layers --expert-cache 8M \
	>"$W/n.txt" 2>"$W/err"
rc=$?
check "--split layers with an expert cache: the same greedy text" \
	'[ $rc -eq 0 ] && cmp -s "$W/one.txt" "$W/n.txt" && grep -q "^experts: *cache of" "$W/err"'
# slots only for the rank's own layers: a quarter of each layer's experts, 4 MoE layers in one process
"$TM" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 --expert-cache 25% >/dev/null 2>"$W/err1"
for np in 2 3; do
	run -np $np "$MPI" run -m "$W/moe.gguf" -p "$PROMPT" -n 24 --temp 0 -t 1 --split layers --expert-cache 25% \
		--expert-predict >"$W/n.txt" 2>"$W/err"
	rc=$?
	slots1=$(sed -n 's/.*cache of \([0-9]*\) slots.*/\1/p' "$W/err1") slots=$(sed -n 's/.*cache of \([0-9]*\) slots.*/\1/p' "$W/err")
	check "--split layers -np $np --expert-cache 25%: the same greedy text; rank 0's cache has slots for its layers only ($slots of one process's $slots1)" \
		'[ $rc -eq 0 ] && cmp -s "$W/one.txt" "$W/n.txt" && [ -n "$slots" ] && [ "$slots" -lt "$slots1" ] && [ "$slots" -gt 0 ]'
done

# a rank that dies or hangs mid-run; prints rank 1's pid
rank1() {
	local p
	for p in $(pgrep -P "$1"); do
		tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && echo "$p"
	done
}
# start_long SPLIT NP EXTRA...: mpirun in the background, generating until the context is full
start_long() {
	local split=$1 np=$2
	shift 2
	mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$np" "$MPI" run -m "$W/moe.gguf" \
		-p "$PROMPT" -n 100000 --temp 0 -t 1 --split "$split" "$@" >"$W/out" 2>"$W/err" &
	MP=$!
	# until rank 0 prints generated text (the prompt is 19 bytes): every rank is past its start
	for _ in $(seq 300); do
		victim=$(rank1 $MP)
		[ -n "$victim" ] && [ "$(stat -c %s "$W/out")" -gt 40 ] && break
		sleep 0.1
	done
}
# finish LIMIT: wait for mpirun at most LIMIT seconds; sets rc and secs
finish() {
	local t0=$SECONDS
	for _ in $(seq $(($1 * 10))); do
		kill -0 $MP 2>/dev/null || break
		sleep 0.1
	done
	secs=$((SECONDS - t0))
	if kill -0 $MP 2>/dev/null; then
		kill -9 $MP; wait $MP 2>/dev/null; rc=hung
	else
		wait $MP; rc=$?
	fi
}
for split in layers experts experts,dense; do
	start_long $split 3
	kill -9 "$victim"
	finish 10
	# the runtime follows its SIGTERM with SIGKILL: on a loaded host a rank may not run its handler in between
	check "--split $split -np 3: rank 1 killed with -9 mid-run: the job ends within 10 s ($secs s, rc $rc), the other ranks say why ($(grep -m1 'stopped by' "$W/err"))" \
		'[ "$rc" != hung ] && [ "$rc" != 0 ] && grep -Eq "rank [02] of 3: stopped by the MPI runtime: another rank ended or died" "$W/err"'
done
start_long experts 2 --mpi-timeout 2
kill -STOP "$victim"
finish 10
kill -9 "$victim" 2>/dev/null
check "a rank that hangs (SIGSTOP): rank 0 gives up after --mpi-timeout 2 ($secs s, rc $rc: $(grep -m1 'rank 0.*no answer' "$W/err"))" \
	'[ "$rc" != hung ] && grep -q "rank 0 of 2: no answer in MPI_.* for [0-9]* s: another rank died or hangs" "$W/err"'
start_long experts,dense 2 --mpi-timeout 2
kill -STOP "$victim"
finish 10
kill -9 "$victim" 2>/dev/null
check "--split experts,dense: a rank that hangs: rank 0 gives up after --mpi-timeout 2 ($secs s, rc $rc: $(grep -m1 'rank 0.*no answer' "$W/err"))" \
	'[ "$rc" != hung ] && grep -q "rank 0 of 2: no answer in MPI_.* for [0-9]* s: another rank died or hangs" "$W/err"'

# per-rank import: each node's store (here TIERMEM_HOME per rank) holds the dense tensors and its experts
export TIERMEM_BACKEND=user
for r in 0 1; do
	TIERMEM_HOME=$W/h$r "$TM" import -m "$W/moe.gguf" --name m --split experts --rank $r --ranks 2 -q \
		--tier ddr=ddr:1G >"$W/imp$r" 2>&1
done
TIERMEM_HOME=$W/whole "$TM" import -m "$W/moe.gguf" --name m -q --tier ddr=ddr:1G >/dev/null 2>&1
share=$(du -sb "$W/h0" | cut -f1) whole=$(du -sb "$W/whole" | cut -f1)
check "import --split experts --rank 0 --ranks 2 stores less than the whole model ($share of $whole bytes)" \
	'[ -n "$share" ] && [ "$share" -lt $((whole * 3 / 4)) ]'
check "import --split experts says what the rank holds ($(grep -m1 holds "$W/imp1"))" \
	'grep -q "^  rank 1 of 2 holds every tensor but the routed experts, and experts e % 2 == 1 of each MoE layer: 8 of 16" "$W/imp1"'
# rank 0 on store S0, rank 1 on store S1
shares() {
	run -x TIERMEM_BACKEND=user -np 1 -x TIERMEM_HOME="$W/$1" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" "${@:3}" : \
		-np 1 -x TIERMEM_HOME="$W/$2" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" "${@:3}"
}
"$TM" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/one.bin"
shares h0 h1 --split experts >"$W/out" 2>"$W/err"
rc=$?
msg=$(compare "$W/one.bin" "$W/n.bin" 1e-4)
check "two ranks on their own shares: logits equal one process's within 1e-4 ($msg)" \
	'[ $rc -eq 0 ] && compare "$W/one.bin" "$W/n.bin" 1e-4 >/dev/null'
cp "$W/n.bin" "$W/share.bin"
shares h0 h1 --split experts,dense >"$W/out" 2>"$W/err"
rc=$?
check "two ranks on their own shares with --split experts,dense: logits bit-identical to --split experts' on them" \
	'[ $rc -eq 0 ] && cmp -s "$W/share.bin" "$W/n.bin"'
shares h1 h0 --split experts >"$W/out" 2>"$W/err"
rc=$?
check "a rank started on another rank's share is refused at start ($(grep -m1 'share imported' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "rank 0 of 2 opened the share imported for rank 1 of 2" "$W/err"'
# the cache copies an expert from where a share packs it (expert e at e / ranks)
run -x TIERMEM_BACKEND=user -np 1 -x TIERMEM_HOME="$W/h0" "$MPI" run --name m -p "$PROMPT" -n 24 --temp 0 -t 1 \
	--split experts --expert-cache 8M --expert-predict : -np 1 -x TIERMEM_HOME="$W/h1" "$MPI" run --name m \
	-p "$PROMPT" -n 24 --temp 0 -t 1 --split experts --expert-cache 8M --expert-predict >"$W/n.txt" 2>"$W/err"
rc=$?
read -r hit miss <<<"$(xread "$W/err")"
check "two ranks on their own shares with expert caches: the same greedy text ($hit MiB/token of hits on rank 0)" \
	'[ $rc -eq 0 ] && cmp -s "$W/one.txt" "$W/n.txt" && awk -v h="$hit" "BEGIN { exit !(h > 0) }"'
shares h0 h1 --split layers >"$W/out" 2>"$W/err"
rc=$?
check "a share under --split layers is refused ($(grep -m1 'holds only' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "holds only rank 0 of 2.s routed experts" "$W/err"'
shares h0 whole --split experts >"$W/out" 2>"$W/err"
rc=$?
check "a share and a whole store of the same model work together (same identity; rank 1 computes only its experts)" \
	'[ $rc -eq 0 ] && compare "$W/one.bin" "$W/n.bin" 1e-4 >/dev/null'
TIERMEM_HOME=$W/h0 "$TM" logits --name m --tokens $TOK -o "$W/x.bin" >"$W/out" 2>"$W/err"
rc=$?
check "a share run as one process is refused ($(cat "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "holds only rank 0 of 2.s routed experts" "$W/err"'
TIERMEM_HOME=$W/h0 "$TM" import -m "$W/moe.gguf" --name m -q --tier ddr=ddr:1G >"$W/out" 2>"$W/err"
rc=$?
check "importing the whole model over a share needs --replace ($(cat "$W/err"))" \
	'[ $rc -eq 2 ] && grep -q "another share" "$W/err"'
TIERMEM_HOME=$W/h0 "$TM" import -m "$W/dense.gguf" --name d -q --split experts --rank 0 --ranks 2 >"$W/out" 2>"$W/err"
rc=$?
check "a dense model has no experts to import per rank ($(cat "$W/err"))" \
	'[ $rc -eq 2 ] && grep -q "no routed experts" "$W/err"'
# per-rank import under --split experts,dense: each store holds its experts and, of every matrix
# tensor parallel splits, only its rows ("rows R/N"); np 2 and 3 on such stores give the bits the
# same split gives on the GGUF (a dense model: one process's bits), and a store is smaller than the
# experts-only share (the dense model: than the whole) by the rows it leaves to the other ranks
"$TM" logits -m "$W/dense.gguf" --tokens $TOK -o "$W/done.bin"
TIERMEM_HOME=$W/dwhole "$TM" import -m "$W/dense.gguf" --name m -q --tier ddr=ddr:1G >/dev/null 2>&1
for m in moe dense; do
	for np in 2 3; do
		args=() bad=0
		for r in $(seq 0 $((np - 1))); do
			TIERMEM_HOME=$W/x$m$np.$r "$TM" import -m "$W/$m.gguf" --name m --split experts,dense --rank $r \
				--ranks $np -q --tier ddr=ddr:1G >"$W/ximp$m$np.$r" 2>&1 || bad=1
			[ $r = 0 ] || args+=(:)
			args+=(-np 1 -x TIERMEM_HOME="$W/x$m$np.$r" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin"
			       --split experts,dense)
		done
		if [ $m = moe ]; then
			run -np $np "$MPI" logits -m "$W/$m.gguf" --tokens $TOK -o "$W/xref.bin" --split experts,dense 2>/dev/null
			ref=$W/xref.bin
		else
			ref=$W/done.bin
		fi
		rm -f "$W/n.bin"
		run -x TIERMEM_BACKEND=user "${args[@]}" >"$W/out" 2>"$W/err"
		rc=$?
		check "--split experts,dense -np $np on per-rank stores of the $m model: logits bit-identical to $([ $m = moe ] && echo "the same split's on the GGUF" || echo "one process's")" \
			'[ $bad = 0 ] && [ $rc -eq 0 ] && cmp -s "$ref" "$W/n.bin"'
	done
done
# what rank 0 of 2 leaves to rank 1: the import's own count, against the stores' bytes (tiermem list)
stored() { TIERMEM_HOME=$1 "$TM" list --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["bytes"])'; }
# saved WHOLE SHARE IMPORT-OUTPUT: WHOLE - SHARE within 5 % (and 64 KiB of alignment) of the rows left out
saved() {
	read -r mine all <<<"$(sed -n 's/.*(\([0-9.]*\) of \([0-9.]*\) MiB).*/\1 \2/p' "$3")"
	python3 -c "import sys; d = $1 - $2; x = (${all:-0} - ${mine:-0}) * 1048576
sys.exit(0 if x > 0 and abs(d - x) < 0.05 * x + 65536 else 1)"
}
share=$(stored "$W/h0") rows=$(stored "$W/xmoe2.0")
check "import --split experts,dense --rank 0 --ranks 2 ($(grep -m1 'rows of' "$W/ximpmoe2.0")): stores less than the experts-only share by the rows left out ($share - $rows bytes)" \
	'saved "$share" "$rows" "$W/ximpmoe2.0"'
whole=$(stored "$W/dwhole") rows=$(stored "$W/xdense2.0")
check "the same for the dense model against its whole store ($rows of $whole bytes: $(grep -m1 -o '([0-9.]* of [0-9.]* MiB)' "$W/ximpdense2.0"))" \
	'saved "$whole" "$rows" "$W/ximpdense2.0"'
xshares() {
	run -x TIERMEM_BACKEND=user -np 1 -x TIERMEM_HOME="$W/$1" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" "${@:3}" : \
		-np 1 -x TIERMEM_HOME="$W/$2" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" "${@:3}"
}
# q4_K_M rows in the interleaved-row layout ("r16 rows R/N"): the whole r16 store's bits
TIERMEM_HOME=$W/k4whole "$TM" import -m "$W/k4.gguf" --name m -q --tier ddr=ddr:1G --repack on >/dev/null 2>&1
TIERMEM_HOME=$W/k4whole "$TM" logits --name m --tokens $TOK -o "$W/k4one.bin"
for r in 0 1; do
	TIERMEM_HOME=$W/k4x$r "$TM" import -m "$W/k4.gguf" --name m -q --tier ddr=ddr:1G --repack on --split experts,dense \
		--rank $r --ranks 2 >/dev/null 2>&1
done
xshares k4x0 k4x1 --split experts,dense >"$W/out" 2>"$W/err"
rc=$?
r16=$(grep -o '"r16 rows 0/2"' "$W"/k4x0/models/m/manifest.json 2>/dev/null | wc -l)
check "q4_K_M: two ranks on stores of their rows in the r16 layout ($r16 matrices \"r16 rows 0/2\"): logits bit-identical to one process on the whole r16 store" \
	'[ $rc -eq 0 ] && [ "$r16" -gt 0 ] && cmp -s "$W/k4one.bin" "$W/n.bin"'
xshares xmoe2.1 xmoe2.0 --split experts,dense >"$W/out" 2>"$W/err"
rc=$?
check "a rank started on another rank's rows is refused at start ($(grep -m1 'share imported' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "rank 0 of 2 opened the share imported for rank 1 of 2 (tiermem import --split experts,dense" "$W/err"'
xshares xmoe2.0 xmoe2.1 --split experts >"$W/out" 2>"$W/err"
rc=$?
check "a share of the rows under --split experts is refused ($(grep -m1 'rows of the dense' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "holds only rank 0 of 2.s rows of the dense matrices" "$W/err"'
run -x TIERMEM_BACKEND=user -np 1 -x TIERMEM_HOME="$W/xmoe3.0" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" \
	--split experts,dense : -np 1 -x TIERMEM_HOME="$W/xmoe2.1" "$MPI" logits --name m --tokens $TOK \
	-o "$W/n.bin" --split experts,dense >"$W/out" 2>"$W/err"
rc=$?
check "a share imported for 3 ranks in a run of 2 is refused ($(grep -m1 'share imported' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "rank 0 of 2 opened the share imported for rank 0 of 3" "$W/err"'
TIERMEM_HOME=$W/xdense2.0 "$TM" logits --name m --tokens $TOK -o "$W/x.bin" >"$W/out" 2>"$W/err"
rc=$?
check "a share of the rows run as one process is refused ($(cat "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "rows of the dense matrices" "$W/err"'

# per-rank import of a pipeline's stages: rank R's store holds its layers (the embedding on rank 0,
# the output on the last); the logits are the same bits as one process's
for m in moe ds dense32; do
	for np in 2 3; do
		rm -rf "$W"/l?
		for r in $(seq 0 $((np - 1))); do
			TIERMEM_HOME=$W/l$r "$TM" import -m "$W/$m.gguf" --name m --split layers --rank $r --ranks $np \
				-q --tier ddr=ddr:1G >"$W/imp$r" 2>&1
		done
		[ -s "$W/w$m.out" ] || TIERMEM_HOME=$W/w$m "$TM" import -m "$W/$m.gguf" --name m -q --tier ddr=ddr:1G \
			>"$W/w$m.out" 2>&1
		"$TM" logits -m "$W/$m.gguf" --tokens $TOK -o "$W/one.bin"
		args=()
		for r in $(seq 0 $((np - 1))); do
			[ $r = 0 ] || args+=(:)
			args+=(-np 1 -x TIERMEM_HOME="$W/l$r" "$MPI" logits --name m --tokens $TOK -o "$W/n.bin" --split layers)
		done
		run -x TIERMEM_BACKEND=user "${args[@]}" >"$W/out" 2>"$W/err"
		rc=$?
		sizes=$(for r in $(seq 0 $((np - 1))); do du -sb "$W/l$r" | cut -f1; done | tr '\n' ' ')
		whole=$(du -sb "$W/w$m" | cut -f1)
		check "layers: $m -np $np on per-rank imports: logits bit-identical to one process's; each store smaller than the whole ($sizes of $whole bytes)" \
			'[ $rc -eq 0 ] && cmp -s "$W/one.bin" "$W/n.bin" && for b in $sizes; do [ "$b" -lt "$whole" ] || exit 1; done'
		# each import says which layers it holds (the run's stage) and plans only those
		said=$(for r in $(seq 0 $((np - 1))); do sed -n "s/^  rank $r of $np holds layers \([0-9]*-[0-9]*\).*/\1/p" "$W/imp$r"; done | tr '\n' ' ')
		mib=$(for r in $(seq 0 $((np - 1))); do awk '/ MiB in /{s += $3} END {print s}' "$W/imp$r"; done | tr '\n' ' ')
		allmib=$(awk '/ MiB in /{s += $3} END {print s}' "$W/w$m.out")
		less=1
		for b in $mib; do lt "$b" "${allmib:-0}" || less=0; done
		check "layers: $m -np $np: each rank's import names its stage [$said] (the run's [$(stages_of rank "$W/err")]) and places only it ($mib of $allmib MiB)" \
			'[ -n "$said" ] && [ "$said" = "$(stages_of rank "$W/err")" ] && [ $less = 1 ]'
	done
done
# the refusals, on moe's two stages
rm -rf "$W"/l?
for r in 0 1; do
	TIERMEM_HOME=$W/l$r "$TM" import -m "$W/moe.gguf" --name m --split layers --rank $r --ranks 2 -q \
		--tier ddr=ddr:1G >/dev/null 2>&1
done
"$TM" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/one.bin"
shares l1 l0 --split layers >"$W/out" 2>"$W/err"
rc=$?
check "a rank started on another rank's layers is refused at start ($(grep -m1 'share imported' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "rank 0 of 2 opened the share imported for rank 1 of 2 (tiermem import --split layers" "$W/err"'
shares l0 l1 --split experts >"$W/out" 2>"$W/err"
rc=$?
check "a share of the layers under --split experts is refused ($(grep -m1 'holds only' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "holds only rank 0 of 2.s layers" "$W/err"'
shares l0 whole --split layers >"$W/out" 2>"$W/err"
rc=$?
check "a share of the layers and a whole store of the same model work together" \
	'[ $rc -eq 0 ] && cmp -s "$W/one.bin" "$W/n.bin"'
TIERMEM_HOME=$W/l1 "$TM" logits --name m --tokens $TOK -o "$W/x.bin" >"$W/out" 2>"$W/err"
rc=$?
check "a share of the layers run as one process is refused ($(cat "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "holds only rank 1 of 2.s layers" "$W/err"'
TIERMEM_HOME=$W/l0 "$TM" import -m "$W/moe.gguf" --name m -q --split layers --rank 1 --ranks 2 --tier ddr=ddr:1G \
	>"$W/out" 2>"$W/err"
rc=$?
check "importing another rank's layers over a share needs --replace ($(cat "$W/err"))" \
	'[ $rc -eq 2 ] && grep -q "another share (layers 0/2)" "$W/err"'
TIERMEM_HOME=$W/l0 "$TM" import -m "$W/moe.gguf" --name m -q --split layers --rank 0 --ranks 9 >"$W/out" 2>"$W/err"
rc=$?
check "more ranks than layers are refused at import ($(cat "$W/err"))" \
	'[ $rc -eq 2 ] && grep -q "split layers" "$W/err"'
unset TIERMEM_BACKEND

# refused LABEL REGEX MPIRUN-ARGS...: the job fails at start and stderr says REGEX
refused() {
	local label=$1 pat=$2 rc
	shift 2
	run "$@" >"$W/out" 2>"$W/err"
	rc=$?
	check "$label ($(grep -m1 -E "$pat" "$W/err"))" '[ $rc -ne 0 ] && grep -qE "$pat" "$W/err"'
}
refused "a rank started with another split is refused at start" "rank 1 runs --split layers, rank 0 --split experts" \
	-np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts : \
	-np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split layers
refused "experts,dense and experts are different splits: refused at start" "rank 1 runs --split experts,dense, rank 0 --split experts" \
	-np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts : \
	-np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts,dense
refused "more ranks than layers is refused" "cannot split 4 layers over 5 nodes" \
	-np 5 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split layers
refused "a rank that opened another model is refused at start" "rank 1 opened another model" \
	-np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts : \
	-np 1 "$MPI" logits -m "$W/other.gguf" --tokens $TOK -o "$W/x.bin" --split experts
refused "a dense model has nothing to split: refused" "no routed experts" \
	-np 2 "$MPI" logits -m "$W/dense.gguf" --tokens $TOK -o "$W/x.bin" --split experts
"$TM" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts 2>"$W/err"
rc=$?
check "the build without MPI says where --split lives ($(cat "$W/err"))" \
	'[ $rc -eq 2 ] && grep -q "tiermem-mpi" "$W/err"'

echo "1..$n"
exit $failed
