# Boot 3 of "kpersist": after the crash, the region being filled is reported
# filling, never sealed; the sealed one is intact.
tm_setup_pmem
tm_ok $? "pmem namespaces found again"
tm_check "modprobe tiermem pmem=/dev/pmem0" tm_load_tiermem pmem=/dev/pmem0
tm_kselftest /tests/persist_test check-after-crash
