# The module's kselftests (tests/kmod), with the VM prepared as their README
# asks: fsdax pmem0 and pmem1, vgem. Each binary loads and unloads the module
# as it needs, so tests/kmod-tests/run (if present) decides the order.
tm_setup_pmem
tm_ok $? "pmem namespaces ready"
tm_check "vgem loads" modprobe vgem
if [ -x /tests/run ]; then
	/tests/run
	[ $? -eq 0 ] || tm_failed=$((tm_failed + 1))
else
	found=0
	for t in /tests/*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		found=1
		tm_kselftest "$t"
	done
	[ $found -eq 1 ] || tm_ok 1 "no kselftest binary in /tests"
fi
