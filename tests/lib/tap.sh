# shellcheck shell=bash
# TAP for the shell suites: source it after setting W (the suite's scratch
# folder). A suite ends with `exit $failed`.
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; failed=1; }
# check LABEL EXPR: ok when EXPR (a shell expression, evaluated) is true
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }

# expect2 LABEL CMD...: exit code 2 and exactly one line on stderr (bad input, said once)
expect2() {
	local label=$1 rc lines
	shift
	"$@" >"$W/out" 2>"$W/err"
	rc=$?
	lines=$(wc -l <"$W/err")
	if [ $rc -eq 2 ] && [ "$lines" -eq 1 ]; then
		ok "$label: exit 2, '$(cat "$W/err")'"
	else
		notok "$label: exit $rc, $lines lines on stderr: $(head -3 "$W/err")"
	fi
}

# expect2_re LABEL REGEX CMD...: the same, and the line matches REGEX (grep -E)
expect2_re() {
	local label=$1 pat=$2 rc
	shift 2
	"$@" >"$W/out" 2>"$W/err"
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l <"$W/err")" -eq 1 ] && grep -qE -- "$pat" "$W/err"; then
		ok "$label: $(cat "$W/err")"
	else
		notok "$label: exit $rc, stderr: $(head -c 400 "$W/err")"
	fi
}

# synth_or_notok OUT ARGS...: `$TM synth ARGS -q -o OUT`; on failure a "not ok"
# naming ARGS and synth's last line, and status 1 (the caller exits or skips on)
synth_or_notok() {
	local out=$1
	shift
	"$TM" synth "$@" -q -o "$out" >/dev/null 2>"$W/err" && return 0
	notok "synth $*: $(tail -1 "$W/err")"
	return 1
}
