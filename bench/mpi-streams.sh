#!/usr/bin/env bash
# serve --split layers on this one machine: aggregate decode tok/s for 1, 2
# and 4 concurrent streams (bench/serve-streams.mjs), one process against
# mpirun -np 2, rounds alternating between the servers, medians. With --base
# DIR (a build of tiermem before the pipeline, e.g. a worktree at 5270b1d),
# also that build's np 2, whose ranks take turns on every step.
#
# What it can show here: the ranks share one memory and 2 vCPUs, so np 2 has
# no more bandwidth than one process; the figure is what the pipeline costs
# or saves against one process of the same threads in all (np 1 runs -t 2,
# each rank -t 1), and against ranks that take turns. It cannot show nodes
# adding their bandwidth: that needs a second machine (plan --nodes predicts it).
# Then np 2's report at its stop: the time its ranks computed at once.
# With --groups: np 2 with its decode groups chosen by cost (the default)
# against --pipeline-groups equal (a group per rank), 4 and 8 streams, and
# each server's fitted stage costs and the groups it chose.
# usage: bench/mpi-streams.sh [--rounds N] [--tokens N] [--base BUILD | --groups] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rounds=3 tokens=32 base= model= groups=
usage="usage: bench/mpi-streams.sh [--rounds N] [--tokens N] [--base BUILD | --groups] [MODEL]"
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--tokens) tokens=$2; shift 2 ;;
	--base) base=$2; shift 2 ;;
	--groups) groups=1; shift ;;
	-*) echo "$usage" >&2; exit 2 ;;
	*) model=$1; shift ;;
	esac
done
if [ -z "$model" ]; then
	model=$BUILD/bench-models/dense-1g-q8.gguf
	mkdir -p "$BUILD/bench-models"
	[ -f "$model" ] || "$BUILD/tiermem" synth --arch llama --type q8_0 --size 1G -o "$model"
fi
[ -f "$model" ] || { echo "bench/mpi-streams.sh: $model: no such file" >&2; exit 2; }
[ -x "$BUILD/tiermem-mpi" ] && command -v mpirun >/dev/null ||
	{ echo "bench/mpi-streams.sh: needs $BUILD/tiermem-mpi and mpirun" >&2; exit 2; }
[ -z "$base" ] || [ -x "$base/tiermem-mpi" ] || { echo "bench/mpi-streams.sh: no $base/tiermem-mpi" >&2; exit 2; }
W=$(mktemp -d) TM=$BUILD/tiermem SERVE_START_S=120
. tests/lib/serve.sh
cat >"$W/np2" <<SH
#!/bin/sh
exec mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np 2 "\$MPI" "\$@"
SH
chmod +x "$W/np2"
ctx=$((tokens + 64)) counts="1 2 4" slots=4
[ -z "$groups" ] || counts="4 8" slots=8
[ -n "$groups" ] || start np1 -m "$model" -np 4 -c $ctx -t 2 || { cat "$W/np1.err" >&2; exit 1; }
TM=$W/np2 MPI=$BUILD/tiermem-mpi start np2 -m "$model" -np $slots -c $ctx --split layers ||
	{ cat "$W/np2.err" >&2; exit 1; }
servers="np1 np2"
if [ -n "$groups" ]; then
	TM=$W/np2 MPI=$BUILD/tiermem-mpi start eq2 -m "$model" -np $slots -c $ctx --split layers \
		--pipeline-groups equal || { cat "$W/eq2.err" >&2; exit 1; }
	servers="np2 eq2"
elif [ -n "$base" ]; then
	TM=$W/np2 MPI=$base/tiermem-mpi start turns -m "$model" -np 4 -c $ctx --split layers ||
		{ cat "$W/turns.err" >&2; exit 1; }
	servers="np1 np2 turns"
fi
head -1 "$W/np2.err"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
	for s in $servers; do
		port=PORT_$s
		# shellcheck disable=SC2086
		node bench/serve-streams.mjs "http://127.0.0.1:${!port}" 1 "$tokens" $counts 2>&1 >/dev/null |
			sed -n "s/^round 1, \([0-9]*\) streams: \([0-9.]*\) tok\/s/$s \1 \2/p" >>"$W/figures"
	done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# stop_mpi PID: SIGTERM to the job's rank 0, which stops the others (and reports); mpirun if it hangs on
stop_mpi() {
	for c in $(pgrep -P "$1"); do
		tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0 && kill -TERM "$c"
	done
	for _ in $(seq 1 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
# the pipeline's own account at its stop: how much the ranks computed at once over the whole run
stop_mpi "$PID_np2"
grep -m1 '^cluster:' "$W/np2.err" | grep -o 'pipeline_sec.*' || echo "np 2: no report (rank 0 did not stop)"
[ -z "$base" ] || stop_mpi "$PID_turns"
if [ -n "$groups" ]; then
	stop_mpi "$PID_eq2"
	grep -h -m1 '^pipeline groups' "$W/np2.err" "$W/eq2.err"
fi
declare -A name=([np1]="one process, -t 2" [np2]="mpirun -np 2 --split layers, -t 1 each (pipeline)"
		 [turns]="mpirun -np 2 --split layers, -t 1 each ($base: ranks take turns)"
		 [eq2]="the same, --pipeline-groups equal")
echo "$rounds rounds, $tokens tokens per stream; aggregate decode tok/s, median of rounds"
printf '| server |'
for c in $counts; do printf ' %s streams |' "$c"; done
printf '\n|---|'
for c in $counts; do printf -- '---|'; done
echo
for s in $servers; do
	printf '| %s |' "${name[$s]}"
	for c in $counts; do
		printf ' %s |' "$(awk -v s="$s" -v c="$c" '$1 == s && $2 == c { print $3 }' "$W/figures" | sort -g |
			awk '{ a[NR] = $1 } END { if (!NR) print "-"; else printf "%.2f", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')"
	done
	echo
done
