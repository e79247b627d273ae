# Issue 14: tiermem.ko under hostile and failing conditions. The kselftest
# tests/kmod/hardening_test (dma-buf directions, seals against mprotect and
# pins, poison, namespace unbind; pmem1 is its scratch namespace), then the
# format rules of the pmem= parameter. Every check is named hardening_*.
# tm.honly=NAME on the kernel command line runs only the checks whose names
# contain NAME (the other hardening_test cases skip): for development, and
# to show a single test failing on an older module.
honly=$(sed -n 's/.*tm\.honly=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -n "$honly" ] && export TM_HARDENING_ONLY=$honly
# selected NAME: with tm.honly, only checks whose names contain it run.
selected() {
	case $1 in *"$honly"*) return 0 ;; esac
	return 1
}
tm_setup_pmem
tm_ok $? "pmem namespaces ready"
tm_check "modprobe tiermem pmem=/dev/pmem0 pmem_format=1" modprobe tiermem pmem=/dev/pmem0 pmem_format=1
tm_wait_for /dev/tiermem 5
tm_check "hardening_device_node_private: /dev/tiermem is 0600 until udev's rule" \
	test "$(stat -c %a /dev/tiermem)" = 600
chgrp tiermem /dev/tiermem && chmod 0660 /dev/tiermem
tm_check "insmod tiermem_pintest.ko" insmod /tests/tiermem_pintest.ko
# Tracepoints watch the whole run; checked after it.
T=/sys/kernel/tracing
mount -t tracefs nodev $T 2>/dev/null
echo 1 >$T/events/tiermem/enable && echo >$T/trace
tm_ok $? "tracefs: events/tiermem enabled"
tm_kselftest /tests/hardening_test
echo 0 >$T/events/tiermem/enable
cp $T/trace /tmp/trace
if [ -z "$honly" ]; then
	for ev in region_create region_seal region_delete copy; do
		tm_check "hardening_tracepoints: tiermem_$ev recorded" grep -q "tiermem_$ev: id=\|tiermem_$ev: src=" /tmp/trace
	done
	tm_check "hardening_tracepoints: tiermem_fault by size (2 MiB and 4 KiB)" sh -c '
		grep -q "tiermem_fault: .*size=2097152" /tmp/trace && grep -q "tiermem_fault: .*size=4096" /tmp/trace'
	grep -m3 tiermem_ /tmp/trace | sed 's/^/# /'
fi

# Also expected: DDR regions on a chosen NUMA node (the guest has node 0).
if selected hardening_create_node; then
	tm_check "hardening_create_node: a DDR region on node 0" tmvm fill on-node0 ddr0 4 3
	tm_check "hardening_create_node: info shows its node" sh -c 'tiermem info | grep -E "^ *on-node0 .* node 0"'
	tm_check "hardening_create_node: node 1 is not online: EINVAL" tmvm expect-errno 22 fill on-node1 ddr1 2 3
	tm_check "hardening_create_node: delete" tmvm delete on-node0
fi
tm_check "rmmod tiermem_pintest" rmmod tiermem_pintest
tm_check "rmmod tiermem after the tests" rmmod tiermem
if selected hardening_format; then

# pmem= formats nothing unless pmem_format=1, and only a 2 MiB chunk of
# zeros: a first 4 KiB of zeros is what btrfs, bcache and ZFS leave too.
nr_pmem() {
	tiermem info 2>/dev/null | sed -n 's/^pmem namespaces: //p'
}
dd if=/dev/zero of=/dev/pmem1 bs=1M count=4 conv=fsync 2>/dev/null
tm_load_tiermem pmem=/dev/pmem1
tm_check "hardening_format_needs_param: blank media, no pmem_format: not attached" test "$(nr_pmem)" = 0
tm_check "hardening_format_needs_param: the log says why" sh -c 'dmesg | grep -q "pmem1: no region table (blank media)"'
rmmod tiermem
dd if=/dev/zero of=/dev/pmem1 bs=1M count=4 conv=fsync 2>/dev/null
printf 'FOREIGN!' | dd of=/dev/pmem1 bs=1 seek=65536 conv=notrunc,fsync 2>/dev/null
tm_load_tiermem pmem=/dev/pmem1 pmem_format=1
tm_check "hardening_format_whole_chunk: data after 4 KiB of zeros: not attached" test "$(nr_pmem)" = 0
tm_check "hardening_format_whole_chunk: nothing written over it" sh -c '
	test "$(dd if=/dev/pmem1 bs=1 skip=65536 count=8 2>/dev/null)" = FOREIGN! &&
	test "$(dd if=/dev/pmem1 bs=4096 count=1 2>/dev/null | tr -d "\000" | wc -c)" = 0'
rmmod tiermem
dd if=/dev/zero of=/dev/pmem1 bs=1M count=4 conv=fsync 2>/dev/null
tm_load_tiermem pmem=/dev/pmem1 pmem_format=1
tm_check "hardening_format_whole_chunk: all-zero chunk with pmem_format=1: attached" test "$(nr_pmem)" = 1
tm_check "rmmod tiermem" rmmod tiermem
fi

# Medium item 7: an asynchronous DAX device (virtio-pmem) would need a flush
# request for durability that the module does not send: it is refused.
selected hardening_async_dax || return 0
tm_load_tiermem
modprobe virtio_pci && modprobe virtio_pmem
# The virtio device's own nvdimm bus and region (probing is slow under TCG).
vreg=
for i in $(seq 300); do
	for r in /sys/bus/nd/devices/region*; do
		case $(readlink -f "$r") in *virtio*) vreg=${r##*/} ;; esac
	done
	[ -n "$vreg" ] && break
	sleep 0.1
done
vns=$(ndctl list -r "${vreg:-none}" -N 2>/dev/null | sed -n 's/.*"dev":"\(namespace[0-9.]*\)".*/\1/p' | head -n1)
vdev=none
if [ -n "$vns" ] && ndctl create-namespace -f -e "$vns" -m fsdax >/tmp/vp.ns 2>&1; then
	vdev=/dev/$(sed -n 's/.*"blockdev":"\(pmem[0-9]*\)".*/\1/p' /tmp/vp.ns)
fi
tm_check "virtio-pmem: an fsdax namespace on the virtio region ($vreg: $vdev)" sh -c "
	test -b $vdev && readlink -f /sys/block/${vdev#/dev/}/device | grep -q virtio"
tm_check "hardening_async_dax_refused: attach $vdev: EOPNOTSUPP" tmvm expect-errno 95 attach "$vdev" format
tm_check "hardening_async_dax_refused: the log says why" sh -c 'dmesg | grep -q "asynchronous DAX device"'
tm_check "rmmod tiermem" rmmod tiermem
