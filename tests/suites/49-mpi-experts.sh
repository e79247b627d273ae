#!/usr/bin/env bash
# Expert-parallel logits over MPI (build/tiermem-mpi, Documentation/tiermem-scale.rst):
# under mpirun -np 2 and -np 3 (an uneven split of 16 experts), one thread per
# rank, decode and prefill paths, the logits equal the single process's within
# float reordering: each rank sums its experts, the partial sums are added over
# the ranks, so the experts' sum is added in another order. Measure, per
# position, as 40-peer-logits: max |a - b| / std(row). f32 weights: at most
# 1e-4 (measured 1.5e-6, the size of the single process's own batch-64 vs
# batch-1 difference). q8_0 weights quantize activations to 8 bits, so a
# last-bit difference can cross a rounding step and grow through the layers
# (a single process's batch 64 vs batch 1 differ by up to 0.06 of a logit on
# an 8-layer q8_0 model): 40-peer-logits' rounding tier, 0.15. deepseek2 (a
# dense first layer, shared experts) is split like the others. Every rank must
# compute only a part of the experts (fewer weight bytes than one rank doing
# them all), and a rank that opened another model is refused at start.
set -u
cd "$TOP"
TM=$BUILD/tiermem MPI=$BUILD/tiermem-mpi
. "$TOP/tests/lib/tap.sh"
if [ ! -x "$MPI" ] || ! command -v mpirun >/dev/null; then
	ok "# SKIP no build/tiermem-mpi or mpirun (scripts/deps installs Open MPI; make builds it when mpicc exists)"
	echo "1..$n"
	exit 0
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-mpi.XXXXXX")
trap 'rm -rf "$W"' EXIT
run() { timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none "$@"; }

"$TM" synth --arch qwen3moe --type f32 --layers 4 --experts 16 --experts-used 4 -q -o "$W/moe.gguf" >/dev/null 2>&1
"$TM" synth --arch qwen3moe --type q8_0 --layers 4 --experts 16 --experts-used 4 -q -o "$W/moe-q8.gguf" >/dev/null 2>&1
"$TM" synth --arch qwen3moe --type f32 --layers 4 --experts 16 --experts-used 4 --seed 2 -q -o "$W/other.gguf" >/dev/null 2>&1
"$TM" synth --arch llama --type q8_0 -q -o "$W/dense.gguf" >/dev/null 2>&1
# deepseek2: a leading dense layer (no all-reduce) and shared experts (every rank computes them)
"$TM" synth --arch deepseek2 --type f32 -q -o "$W/ds.gguf" >/dev/null 2>&1
TOK=1,5,9,200,31,7,64,3,17,99,250,12,40,8,77,120

# compare A B TOL: per position max |a - b| / std(a's row) <= TOL, same length
compare() {
	python3 - "$1" "$2" "$3" <<'PY'
import statistics, struct, sys
def rd(f):
    b = open(f, 'rb').read()
    return struct.unpack('%df' % (len(b) // 4), b)
a, b, tol = rd(sys.argv[1]), rd(sys.argv[2]), float(sys.argv[3])
V = 1024
if len(a) != len(b) or not a:
    print('lengths differ'); sys.exit(1)
e = [max(abs(x - y) for x, y in zip(a[i:i + V], b[i:i + V])) / statistics.pstdev(a[i:i + V])
     for i in range(0, len(a), V)]
print('worst position %.2g, median %.2g' % (max(e), statistics.median(e)))
sys.exit(0 if max(e) <= tol else 1)
PY
}
# bytes of weights rank R reported in FILE
bytes_of() { sed -n "s/.*rank $2 of [0-9]*: \([0-9]*\) bytes.*/\1/p" "$1"; }

for m in moe:1e-4 moe-q8:0.15 ds:1e-4; do
	model=$W/${m%%:*}.gguf tol=${m#*:}
	for batch in 64 1; do
		"$TM" logits -m "$model" --tokens $TOK -o "$W/one.bin" --batch $batch
		run -np 1 "$MPI" logits -m "$model" --tokens $TOK -o "$W/r1.bin" --batch $batch --split experts 2>"$W/r1.err"
		all=$(bytes_of "$W/r1.err" 0)
		for np in 2 3; do
			run -np $np "$MPI" logits -m "$model" --tokens $TOK -o "$W/n.bin" --batch $batch \
				--split experts 2>"$W/err"
			rc=$?
			msg=$(compare "$W/one.bin" "$W/n.bin" $tol)
			check "${m%%:*} -np $np, batch $batch: logits equal one process's within $tol ($msg)" \
				'[ $rc -eq 0 ] && compare "$W/one.bin" "$W/n.bin" $tol >/dev/null'
			fewer=1
			for ((r = 0; r < np; r++)); do
				b=$(bytes_of "$W/err" $r)
				[ -n "$b" ] && [ -n "$all" ] && [ "$b" -lt "$all" ] || fewer=0
			done
			check "${m%%:*} -np $np, batch $batch: every rank read fewer weight bytes than one rank computing every expert ($all)" \
				'[ $fewer -eq 1 ]'
		done
	done
done

run -np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts : \
	-np 1 "$MPI" logits -m "$W/other.gguf" --tokens $TOK -o "$W/x.bin" --split experts >"$W/out" 2>"$W/err"
rc=$?
check "a rank that opened another model is refused at start ($(grep -m1 'another model' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "rank 1 opened another model" "$W/err"'
run -np 2 "$MPI" logits -m "$W/dense.gguf" --tokens $TOK -o "$W/x.bin" --split experts >"$W/out" 2>"$W/err"
rc=$?
check "a dense model has nothing to split: refused ($(grep -m1 'routed experts' "$W/err"))" \
	'[ $rc -ne 0 ] && grep -q "no routed experts" "$W/err"'
"$TM" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/x.bin" --split experts 2>"$W/err"
rc=$?
check "the build without MPI says where --split lives ($(cat "$W/err"))" \
	'[ $rc -eq 2 ] && grep -q "tiermem-mpi" "$W/err"'

echo "1..$n"
exit $failed
