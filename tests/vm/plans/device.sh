# libtiermem against the real module: every call of lib/tier/device.c (tmvm
# selftest), the tiermem mapping backend, permissions as another user, and
# the CLI's info and stats.
tm_setup_pmem
tm_ok $? "pmem0 and pmem1 are fsdax namespaces"
tm_check "modprobe tiermem" tm_load_tiermem
tm_check "attach /dev/pmem0, writing an empty table" tmvm attach /dev/pmem0 format
tmvm selftest 2>&1
[ $? -eq 0 ] || tm_failed=$((tm_failed + 1))

tm_check "tmuser is refused attach: EPERM" tm_as_user tmvm expect-errno 1 attach /dev/pmem1 format
tm_check "root creates a private (0600) DDR region" tmvm fill private-ddr ddr 2 5 private
tm_check "root creates a shared (0644) PMEM region and seals it" tmvm fill shared-pmem pmem 4 6 seal
tm_check "tmuser cannot open a 0600 region: EACCES" tm_as_user tmvm expect-errno 13 verify private-ddr 5 volatile
tm_check "tmuser cannot delete a region it does not own: EACCES" tm_as_user tmvm expect-errno 13 delete shared-pmem
tm_check "tmuser reads a 0644 sealed region" tm_as_user tmvm verify shared-pmem 6 sealed
tm_check "tmuser creates and deletes its own region" tm_as_user "tmvm fill mine ddr 2 7 && tmvm delete mine"

# The CLI, as an operator uses it.
tiermem info >/tmp/info 2>&1
tm_ok $? "tiermem info exits 0"
sed 's/^/# /' /tmp/info
tm_check "info: module loaded, ABI version, one PMEM namespace" sh -c 'grep -q "^module: loaded" /tmp/info && grep -q "abi: 1" /tmp/info && grep -q "pmem namespaces: 1" /tmp/info'
tm_check "info lists both regions with tier, state, size and owner" sh -c '
	grep -E "^ *private-ddr +ddr +volatile +2 MiB +0 +0600" /tmp/info &&
	grep -E "^ *shared-pmem +pmem +sealed +4 MiB +0 +0644" /tmp/info'
tiermem stats --json >/tmp/stats 2>&1
tm_ok $? "tiermem stats --json exits 0"
sed 's/^/# /' /tmp/stats
tm_check "stats --json has both tiers and both regions" sh -c '
	grep -q "\"tier\": \"ddr\"" /tmp/stats && grep -q "\"tier\": \"pmem\"" /tmp/stats &&
	grep -q "\"name\": \"private-ddr\"" /tmp/stats && grep -q "\"name\": \"shared-pmem\"" /tmp/stats'
tm_check "stats counts the faults of the fills" sh -c 'grep -q "\"faults_pmd\": [1-9]" /tmp/stats'
tm_check "stats: unknown option is a usage error (exit 2)" sh -c 'tiermem stats --bogus; [ $? -eq 2 ]'
# A reader streams a region and reports its bytes; stats --watch must turn
# them into a non-zero read bandwidth on that region and its tier.
tmvm stream private-ddr 4 &
sleep 0.5
tiermem stats --watch 1 --count 3 >/tmp/watch 2>&1
tm_ok $? "stats --watch 1 --count 3 exits 0"
wait
sed 's/^/# /' /tmp/watch
tm_check "stats --watch shows the reader's GB/s on the region and the tier" sh -c '
	grep -E "^ddr +private-ddr .* [0-9]+\.[0-9]+ GB/s" /tmp/watch | grep -vq " 0\.000 GB/s" &&
	grep -E "^ddr +\(total\) .* [0-9]+\.[0-9]+ GB/s" /tmp/watch | grep -vq " 0\.000 GB/s"'
# tiermem bench over a region: the same read loop as for DDR and PMEM paths,
# a different mapping; its reads land in the region's bytes-read counter.
tiermem bench --region shared-pmem --tier anon-thp --size 4M --passes 2 -t 1 --json >/tmp/bench 2>&1
tm_ok $? "tiermem bench --region shared-pmem exits 0"
sed 's/^/# /' /tmp/bench
tm_check "bench measured the region through the tiermem backend, PMEM tier, <= 1024 faults per GiB (4 KiB pages: 262,144)" sh -c '
	grep -q "\"tier\":\"pmem\",\"backend\":\"tiermem\"" /tmp/bench &&
	grep -q "\"path\":\"/dev/tiermem:shared-pmem\"" /tmp/bench &&
	f=$(grep -o "\"backend\":\"tiermem\".*" /tmp/bench | grep -o "\"faults_per_gib\":[0-9]*" | head -n 1 | cut -d: -f2) &&
	echo "region faults per GiB: $f" && [ -n "$f" ] && [ "$f" -le 1024 ]'
tiermem stats --json >/tmp/stats2 2>&1
tm_check "the region's bytes-read counter holds the bench's reads" sh -c '
	tr -d "\n" </tmp/stats2 | grep -Eq "\"name\": \"shared-pmem\"[^}]*\"bytes_read\": [1-9][0-9]{6,}"'
tm_check "rmmod with no mapping left succeeds" sh -c 'tmvm delete private-ddr && rmmod tiermem'
tm_check "info without the module: says so, exits 1" sh -c 'tiermem info >/tmp/info2 2>&1; rc=$?; cat /tmp/info2; [ $rc -eq 1 ] && grep -q "not loaded" /tmp/info2'
tm_klog | tail -n 20 | sed 's/^/# /'
