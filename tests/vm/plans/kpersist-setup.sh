# Boot 1 of "kpersist": the kselftest persist_test writes a sealed and a
# filling region on pmem0 (attached at load), then the boot ends.
tm_setup_pmem
tm_ok $? "pmem namespaces ready"
tm_check "modprobe tiermem pmem=/dev/pmem0 pmem_format=1" tm_load_tiermem pmem=/dev/pmem0 pmem_format=1
tm_kselftest /tests/persist_test setup
