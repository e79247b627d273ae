# shellcheck shell=bash
# A tiermem serve for the shell suites and benchmarks: source it after setting
# TM and W. It sets an empty `pids` (every server started goes there) and an
# EXIT trap that kills them and removes W.

pids=()
serve_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$W"
}
trap serve_cleanup EXIT

# start NAME ARGS...: a server on a free loopback port (stderr in W/NAME.err);
# sets PORT_NAME and PID_NAME; false if it did not come up within
# SERVE_START_S seconds (default 30; the benchmarks load GBs)
start() {
	local name=$1 port
	shift
	: >"$W/$name.err"
	"$TM" serve --port 0 -t 1 "$@" 2>"$W/$name.err" &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 1 $((${SERVE_START_S:-30} * 10))); do
		port=$(sed -n 's/.*:\([0-9]*\)\/ with .*/\1/p' "$W/$name.err")
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	printf -v "PORT_$name" '%s' "$port"
	printf -v "PID_$name" '%s' "$pid"
	[ -n "$port" ]
}
