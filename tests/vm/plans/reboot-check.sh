# Second boot of "reboot", on the NVDIMM files that QEMU was killed on.
tm_setup_pmem
tm_ok $? "pmem namespaces found again"
tm_check "modprobe tiermem" tm_load_tiermem
tm_check "attach /dev/pmem0 (no format: the table must be there)" tmvm attach /dev/pmem0

# persist: sealed data intact and read-only; a filling region still filling;
# volatile DDR gone.
tm_check "persist: p-sealed survived, sealed, with its data" tmvm verify p-sealed 1 sealed
tm_check "persist: p-sealed refuses a writable mapping" tmvm expect-errno 13 write p-sealed
tm_check "persist: p-open survived as filling (never sealed), with its data" tmvm verify p-open 2 filling
tm_check "persist: the DDR region did not survive" tmvm expect-errno 2 state p-ddr

# crash: the region being filled when QEMU died is reported filling
# (incomplete), never sealed; it can be deleted and its space reused.
tm_check "crash: c-crashed is reported filling, not sealed" sh -c '[ "$(tmvm state c-crashed)" = filling ]'
tm_check "crash: c-sealed is sealed with its data" tmvm verify c-sealed 4 sealed
tiermem info >/tmp/info 2>&1
sed 's/^/# /' /tmp/info
tm_check "crash: tiermem info shows c-crashed as filling" grep -qE "^ *c-crashed +pmem +filling" /tmp/info
tm_check "crash: the incomplete region can be deleted" tmvm delete c-crashed
tm_check "crash: a new region fits where it was" sh -c 'tmvm fill c-again pmem 32 6 seal && tmvm verify c-again 6 sealed'
tm_check "persist: p-open can be deleted, its space reused" sh -c 'tmvm delete p-open && tmvm fill p-new pmem 4 9 seal && tmvm verify p-new 9 sealed'

# corrupt: the damaged table on pmem1 is refused at attach, with a kernel
# log message, even with format; nothing of it is listed.
tmvm attach /dev/pmem1 >/tmp/attach 2>&1
tm_ok $(( $? == 0 )) "corrupt: attach of the corrupted table is refused"
sed 's/^/# /' /tmp/attach
tm_check "corrupt: the kernel log says why" sh -c 'dmesg | grep -E "tiermem: /dev/pmem1: .*refusing"'
tmvm attach /dev/pmem1 format >/tmp/attach 2>&1
tm_ok $(( $? == 0 )) "corrupt: format does not write over a corrupted table"
tm_check "corrupt: the victim region is not listed" tmvm expect-errno 2 state victim
tm_klog | sed 's/^/# /'
