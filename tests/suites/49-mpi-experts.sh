#!/usr/bin/env bash
# Expert-parallel logits over MPI (build/tiermem-mpi, Documentation/tiermem-scale.rst):
# under mpirun -np 2 and -np 3 (an uneven split of 8 experts), one thread per
# rank, the logits equal the single process's within float reordering: each
# rank sums its experts, the partial sums are added over the ranks, so the
# experts' sum is added in another order. Tolerance: 1e-4 of the largest
# logit (a reordered sum of 4 float terms differs in the last bits of the
# sum; the residual stream carries it through 2 layers). Every rank must
# compute only a part of the experts (fewer weight bytes than one rank doing
# them all), and a rank that opened another model is refused at start.
set -u
cd "$TOP"
TM=$BUILD/tiermem MPI=$BUILD/tiermem-mpi
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; failed=1; }
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }
if [ ! -x "$MPI" ] || ! command -v mpirun >/dev/null; then
	ok "# SKIP no build/tiermem-mpi or mpirun (scripts/deps installs Open MPI; make builds it when mpicc exists)"
	echo "1..$n"
	exit 0
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-mpi.XXXXXX")
trap 'rm -rf "$W"' EXIT
run() { timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none "$@"; }

"$TM" synth --arch qwen3moe --type q8_0 --experts 8 --experts-used 4 -q -o "$W/moe.gguf" >/dev/null 2>&1
"$TM" synth --arch qwen3moe --type q8_0 --experts 8 --experts-used 4 --seed 2 -q -o "$W/other.gguf" >/dev/null 2>&1
"$TM" synth --arch llama --type q8_0 -q -o "$W/dense.gguf" >/dev/null 2>&1
TOK=1,5,9,200,31,7,64,3,17,99

# compare A B: max |a - b| <= 1e-4 max |a|, same length
compare() {
	python3 - "$1" "$2" <<'PY'
import struct, sys
def rd(f):
    b = open(f, 'rb').read()
    return struct.unpack('%df' % (len(b) // 4), b)
a, b = rd(sys.argv[1]), rd(sys.argv[2])
m = max(abs(x) for x in a)
d = max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) and a else float('inf')
print('max|diff| %.3g of max|logit| %.3g' % (d, m))
sys.exit(0 if d <= 1e-4 * m else 1)
PY
}
# bytes of weights rank R reported in FILE
bytes_of() { sed -n "s/.*rank $2 of [0-9]*: \([0-9]*\) bytes.*/\1/p" "$1"; }

for batch in 64 1; do
	"$TM" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/one.bin" --batch $batch
	run -np 1 "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/r1.bin" --batch $batch --split experts 2>"$W/r1.err"
	all=$(bytes_of "$W/r1.err" 0)
	for np in 2 3; do
		run -np $np "$MPI" logits -m "$W/moe.gguf" --tokens $TOK -o "$W/n.bin" --batch $batch \
			--split experts 2>"$W/err"
		rc=$?
		msg=$(compare "$W/one.bin" "$W/n.bin")
		check "-np $np, batch $batch: logits equal one process's within 1e-4 of the largest ($msg)" \
			'[ $rc -eq 0 ] && compare "$W/one.bin" "$W/n.bin" >/dev/null'
		fewer=1
		for ((r = 0; r < np; r++)); do
			b=$(bytes_of "$W/err" $r)
			[ -n "$b" ] && [ -n "$all" ] && [ "$b" -lt "$all" ] || fewer=0
		done
		check "-np $np, batch $batch: every rank read fewer weight bytes than one rank computing every expert ($all)" \
			'[ $fewer -eq 1 ]'
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
