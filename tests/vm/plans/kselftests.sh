# The module's kselftests (tests/kmod): its guest runner /tests/run loads the
# module as it needs (pmem=/dev/pmem0, pintest, vgem, brd) and runs every
# binary, also as tmuser. The VM gives it fsdax pmem0 and pmem1.
tm_setup_pmem
tm_ok $? "pmem namespaces ready"
if [ -x /tests/run ]; then
	/tests/run 2>&1
	rc=$?
	[ $rc -eq 0 ] || { echo "# /tests/run exited $rc"; tm_failed=$((tm_failed + 1)); }
else
	tm_ok 1 "/tests/run (tests/kmod's guest runner) is missing from the initramfs"
fi
