# Faults to map and touch 1 GiB (tests/kmod/fault_figures), checked: through
# /dev/tiermem every 2 MiB is one PMD fault, by the module's own counters
# (smaps under-reports PMEM's devmap entries), against 262,144 faults for
# 4 KiB anonymous memory. Needs a 3 GiB guest and a 2 GiB pmem0.
tm_setup_pmem
tm_ok $? "pmem namespaces ready"
tm_check "modprobe tiermem ddr_max_mb=1100 pmem=/dev/pmem0 pmem_format=1" tm_load_tiermem ddr_max_mb=1100 pmem=/dev/pmem0 pmem_format=1
/tests/fault_figures 1024 >/tmp/ff 2>&1
tm_ok $? "fault_figures 1024 ran"
sed 's/^/# /' /tmp/ff
tm_check "anonymous 4 KiB: at least 262,144 faults for 1 GiB" \
	awk '/^anon 4KiB/ { if ($5 + 0 >= 262144) ok = 1 } END { exit !ok }' /tmp/ff
tm_check "tiermem ddr: 512 PMD faults, no PTE or PUD, 1024 MiB mapped" \
	grep -q "^tiermem ddr .*(module: 512 PMD, 0 PTE, 0 PUD; 1024 MiB mapped)" /tmp/ff
tm_check "tiermem pmem: 512 PMD faults, no PTE or PUD, 1024 MiB mapped" \
	grep -q "^tiermem pmem .*(module: 512 PMD, 0 PTE, 0 PUD; 1024 MiB mapped)" /tmp/ff
tm_check "the process saw at most 1,024 faults per tiermem region" \
	awk '/^tiermem/ { n++; if ($5 + 0 > 1024) bad = 1 } END { exit bad || n != 2 }' /tmp/ff
