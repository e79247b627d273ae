# shellcheck shell=bash
# Logits files (raw float32, rows of V = 1024, the synth models' vocabulary) for the MPI suites.

# compare A B TOL: per position max |a - b| / std(a's row) <= TOL, same length; prints the worst and the median
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
