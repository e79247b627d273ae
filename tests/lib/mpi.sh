# shellcheck shell=bash
# For the MPI suites (source after tap.sh, with BUILD set): MPI, the MPI
# build; mpi_or_skip, one SKIP and the end of the suite where this build or
# machine has no MPI; MPIRUN_FLAGS and run, mpirun as every suite starts it.
MPI=$BUILD/tiermem-mpi
# yield_when_idle: a rank waiting in MPI gives its CPU to the one computing (2 shared vCPUs here)
MPIRUN_FLAGS="--allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1"

mpi_or_skip() {
	if [ ! -x "$MPI" ] || ! command -v mpirun >/dev/null; then
		ok "# SKIP no build/tiermem-mpi or mpirun (scripts/deps installs Open MPI; make builds it when mpicc exists)"
		echo "1..$n"
		exit 0
	fi
}

# shellcheck disable=SC2086
run() { timeout 120 mpirun $MPIRUN_FLAGS "$@"; }
