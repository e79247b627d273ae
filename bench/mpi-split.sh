#!/usr/bin/env bash
# Decode tok/s of one stream on this one machine: one process with -t 2
# against mpirun -np 2 with -t 1 per rank, --split experts (MoE models) and
# --split experts,dense (dense matrices split by rows too, tensor parallel),
# rounds alternating, medians; also each rank's MPI calls per token and MPI
# share (the "cluster:" line).
#
# What it can show here: the ranks share one memory and 2 vCPUs, so a split
# saves no bandwidth; the figure is what the messages cost against one
# process of the same threads in all. plan --nodes predicts a cluster.
# usage: bench/mpi-split.sh [--rounds N] [--tokens N] MODEL...
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rounds=3 tokens=32 models=()
usage="usage: bench/mpi-split.sh [--rounds N] [--tokens N] MODEL..."
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--tokens) tokens=$2; shift 2 ;;
	-*) echo "$usage" >&2; exit 2 ;;
	*) models+=("$1"); shift ;;
	esac
done
[ ${#models[@]} -gt 0 ] || { echo "$usage" >&2; exit 2; }
for m in "${models[@]}"; do
	[ -r "$m" ] || { echo "bench/mpi-split.sh: cannot read $m" >&2; exit 2; }
done
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
PROMPT="the quick brown fox jumps over the lazy dog"
mpi() { mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np 2 "$@"; }
# tok/s of the generation line, then the cluster line's MPI calls and share (- for one process)
one_run() {
	local m=$1 split=$2
	if [ "$split" = one ]; then
		"$BUILD/tiermem" run -m "$m" -p "$PROMPT" -n "$tokens" --temp 0 -t 2 >/dev/null 2>"$W/err"
	else
		mpi "$BUILD/tiermem-mpi" run -m "$m" -p "$PROMPT" -n "$tokens" --temp 0 -t 1 --split "$split" \
			>/dev/null 2>"$W/err"
	fi
	local tps calls share
	tps=$(sed -n 's/^generation: .* = *\([0-9.]*\) tok\/s.*/\1/p' "$W/err" | head -1)
	calls=$(sed -n 's/^rank 0: .* in \([0-9.]*\) MPI calls.*/\1/p' "$W/err")
	share=$(sed -n 's/^cluster: .*mpi_share=\([0-9.]*\).*/\1/p' "$W/err")
	echo "${tps:-0} ${calls:--} ${share:--}"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${models[@]}"; do
	splits=(one experts experts,dense)
	# a dense model has no experts to split
	mpi "$BUILD/tiermem-mpi" run -m "$m" -p x -n 1 -t 1 --split experts >/dev/null 2>&1 || splits=(one experts,dense)
	for ((i = 1; i <= rounds; i++)); do
		for s in "${splits[@]}"; do
			read -r tps calls share <<<"$(one_run "$m" "$s")"
			echo "$s $tps $calls $share" >>"$W/$(basename "$m").r"
			echo "round $i $(basename "$m") $s: $tps tok/s, rank 0 $calls MPI calls/token, MPI share $share"
		done
	done
	for s in "${splits[@]}"; do
		med=$(awk -v s="$s" '$1 == s { print $2 }' "$W/$(basename "$m").r" | median)
		echo "median $(basename "$m") $s: $med tok/s"
	done
done
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
