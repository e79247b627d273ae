# The VM itself: NVDIMMs become DAX-capable pmem, device-dax works, vgem
# imports. Everything the module's tests take for granted, checked first.
tm_check "nfit, nd_pmem, dax_pmem load" sh -c 'modprobe nfit && modprobe nd_pmem && modprobe dax_pmem'
tm_check "two NVDIMM regions appear" tm_wait_for /sys/bus/nd/devices/region1 10
tm_setup_pmem
tm_ok $? "ndctl makes every region an fsdax namespace"
tm_check "/dev/pmem0 and /dev/pmem1 exist" test -b /dev/pmem0 -a -b /dev/pmem1
tm_check "/sys/block/pmem0/queue/dax is 1" grep -qx 1 /sys/block/pmem0/queue/dax
tm_check "/sys/block/pmem1/queue/dax is 1" grep -qx 1 /sys/block/pmem1/queue/dax
# Bytes written through the block device read back (the emulated media works).
tm_check "pmem0 keeps what is written to it" sh -c '
	dd if=/dev/urandom of=/tmp/pat bs=4096 count=16 2>/dev/null &&
	dd if=/tmp/pat of=/dev/pmem0 bs=4096 seek=1000 conv=fsync 2>/dev/null &&
	dd if=/dev/pmem0 of=/tmp/back bs=4096 skip=1000 count=16 2>/dev/null &&
	cmp /tmp/pat /tmp/back'
tm_check "vgem loads and creates a DRM device" sh -c 'modprobe vgem && ls /dev/dri/card* >/dev/null'
tm_check "device_dax loads" modprobe device_dax
tm_check "/sbin/modprobe is what the kernel runs" grep -qx /sbin/modprobe /proc/sys/kernel/modprobe
ndctl list -N 2>&1 | sed 's/^/# /'
