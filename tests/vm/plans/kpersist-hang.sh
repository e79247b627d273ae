# Boot 2 of "kpersist": both regions are back; then a fill that the host
# interrupts by killing QEMU at the line TIERMEM-FILLING.
tm_setup_pmem
tm_ok $? "pmem namespaces found again"
tm_check "modprobe tiermem pmem=/dev/pmem0" tm_load_tiermem pmem=/dev/pmem0
tm_kselftest /tests/persist_test check-persisted
if [ "$tm_failed" -eq 0 ]; then
	tm_kselftest /tests/persist_test fill-and-hang
fi
tm_ok 1 "the host should have killed QEMU during fill-and-hang"
