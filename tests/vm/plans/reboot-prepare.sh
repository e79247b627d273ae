# First boot of the "reboot" scenario; reboot-check runs on the same NVDIMM
# files. It ends the way a crash does: the host kills QEMU (SIGKILL) in the
# middle of a fill, as soon as the marker line shows.
tm_setup_pmem
tm_ok $? "pmem0 and pmem1 are fsdax namespaces"
dd if=/dev/pmem1 of=/tmp/before bs=1M count=4 2>/dev/null
tm_check "modprobe tiermem" tm_load_tiermem

# persist: on pmem0, a sealed region, one left filling, a volatile DDR one.
tm_check "attach /dev/pmem0 with an empty table" tmvm attach /dev/pmem0 format
tm_check "persist: fill and seal p-sealed (8 MiB, seed 1)" tmvm fill p-sealed pmem 8 1 seal
tm_check "persist: fill p-open (4 MiB, seed 2), not sealed" tmvm fill p-open pmem 4 2
tm_check "persist: fill a DDR region (volatile)" tmvm fill p-ddr ddr 2 3
tm_check "persist: p-sealed is sealed, p-open filling" sh -c '[ "$(tmvm state p-sealed)" = sealed ] && [ "$(tmvm state p-open)" = filling ]'

# corrupt: on pmem1, a table with one sealed region, detached; then one
# byte flipped in every 4 KiB block the table occupies (found by diffing
# the namespace's head before and after), written through /dev/pmem1.
idx=$(tmvm attach /dev/pmem1 format | sed -n 's/.* as pmem \([0-9]*\),.*/\1/p')
tm_ok $([ -n "$idx" ]; echo $?) "corrupt: attach /dev/pmem1 with an empty table (pmem $idx)"
# No data goes into victim, so only the table differs afterwards.
tm_check "corrupt: create and seal victim" tmvm fill victim "pmem$idx" 2 none seal
tm_check "corrupt: detach pmem1" tmvm detach "$idx"
# The module wrote through DAX, past the block device's page cache.
blockdev --flushbufs /dev/pmem1
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/pmem1 of=/tmp/after bs=1M count=4 2>/dev/null
cmp -l /tmp/before /tmp/after | awk '{ b = int(($1 - 1) / 4096); last[b] = $0 } END { for (b in last) print last[b] }' >/tmp/diff
tm_check "corrupt: the table changed the namespace's first 4 MiB" test -s /tmp/diff
while read -r off old new; do
	flipped=$(printf '%03o' $(( 0$new ^ 255 )))
	printf "\\$flipped" | dd of=/dev/pmem1 bs=1 seek=$((off - 1)) conv=notrunc 2>/dev/null
	echo "# corrupt: flipped byte $((off - 1)) of /dev/pmem1 (0$new -> 0$flipped)"
done </tmp/diff
sync
blockdev --flushbufs /dev/pmem1
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/pmem1 of=/tmp/corrupt bs=1M count=4 2>/dev/null
tm_check "corrupt: the flips reached the media" sh -c '! cmp -s /tmp/after /tmp/corrupt'

# crash: a sealed region, then a fill that never ends.
tm_check "crash: fill and seal c-sealed (4 MiB, seed 4)" tmvm fill c-sealed pmem 4 4 seal
if [ "$tm_failed" -eq 0 ]; then
	# Not tm_check: its output is the marker, which must reach the host now.
	tmvm fill c-crashed pmem 32 5 forever TM-KILL-NOW
fi
tm_ok 1 "crash: the host should have killed QEMU during the fill"
