# shellcheck shell=bash
# A tiermem serve for the shell suites and benchmarks: source it after setting
# TM and W. It sets an empty `pids` (every server started goes there) and an
# EXIT trap that kills them and removes W.

pids=()
serve_cleanup() {
	# a server that already ended must not stop the rest being killed (callers may run under set -e)
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
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

# need_npm PACKAGE: end the suite with a "not ok" unless scripts/deps installed PACKAGE in NODE_DIR
need_npm() {
	[ -f "$NODE_DIR/node_modules/$1/package.json" ] && return
	notok "the $1 npm package is not installed in $NODE_DIR (run scripts/deps)"
	exit 1
}

# node_tap NAME SCRIPT [ARGS...]: run tests/serve/SCRIPT (ARGS, and the
# caller's environment) numbering its TAP lines on from n (START) and print
# them; n goes on from its "# last N", failed is set on a "not ok" or a
# failure without one. Needs tests/lib/tap.sh and NODE_DIR.
node_tap() {
	local name=$1 script=$2 rc last
	shift 2
	START=$((n + 1)) NODE_DIR=$NODE_DIR timeout 300 node "tests/serve/$script" "$@" >"$W/$name.tap" 2>"$W/$name.node"
	rc=$?
	grep -E '^(not )?ok ' "$W/$name.tap"
	last=$(sed -n 's/^# last \([0-9]*\)/\1/p' "$W/$name.tap")
	n=${last:-$n}
	grep -q '^not ok' "$W/$name.tap" && failed=1
	[ $rc -eq 0 ] || grep -q '^not ok' "$W/$name.tap" || notok "$name: $script exited $rc: $(tail -3 "$W/$name.node" | tr '\n' ' ')"
}

# stop_server NAME: SIGTERM to the server `start NAME` started; a check that it exits 0 (under ASan: no leak)
stop_server() {
	local pid_var=PID_$1 rc
	kill -TERM "${!pid_var}"
	wait "${!pid_var}"
	rc=$?
	check "$1: the server exits 0 on SIGTERM (under ASan: no leak) ($rc)" '[ $rc -eq 0 ]'
}

# dashboard URL SCREENSHOT: tests/serve/dashboard.mjs on the server in headless
# Chromium (its options by environment: KEY, CLUSTER, MODEL, MAX_TOKENS), its
# TAP lines numbered on from the suite's n (tests/lib/tap.sh)
dashboard() {
	local rc last

	if ! command -v chromium >/dev/null; then
		notok "chromium is not installed (scripts/deps installs it for make check)"
		return
	fi
	mkdir -p "$(dirname "$2")"
	timeout 120 node --experimental-websocket --no-warnings tests/serve/dashboard.mjs "$1" "$2" $((n + 1)) \
		>"$W/dash.tap" 2>"$W/dash.err"
	rc=$?
	grep -E '^(not )?ok ' "$W/dash.tap"
	last=$(sed -n 's/^# last \([0-9]*\)/\1/p' "$W/dash.tap")
	n=${last:-$n}
	grep -q '^not ok' "$W/dash.tap" && failed=1
	[ $rc -eq 0 ] || grep -q '^not ok' "$W/dash.tap" ||
		notok "dashboard.mjs exited $rc: $(grep -m3 -i "error" "$W/dash.err" | tr "\n" " ")"
}
