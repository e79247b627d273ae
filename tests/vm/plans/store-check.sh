# Second boot of "store", after QEMU was killed in the middle of an import:
# the finished model is intact and runs; the killed one is reported
# incomplete and refused; a new import of it succeeds.
tm_setup_pmem
tm_ok $? "pmem namespaces found again"
tm_check "modprobe tiermem" tm_load_tiermem
tm_check "attach /dev/pmem0 (no format: the table must be there)" tmvm attach /dev/pmem0
export TIERMEM_HOME=/tmp/store
tiermem list >/tmp/list 2>&1
sed 's/^/# /' /tmp/list
tm_check "list: m1 survived the crash, sealed" grep -qE "^m1 +sealed .* module " /tmp/list
tm_check "list: the killed import is reported incomplete" grep -qE "^crash +incomplete" /tmp/list
tiermem run --name crash -n 2 >/dev/null 2>/tmp/err
rc=$?
sed 's/^/# /' /tmp/err
tm_check "run --name crash refuses: exit 2, one line saying to import again" sh -c '
	[ '$rc' -eq 2 ] && [ "$(wc -l </tmp/err)" -eq 1 ] && grep -q "incomplete.*import it again" /tmp/err'
tm_check "synth the same model again (seed 5)" tiermem synth --arch llama --type q8_0 --seed 5 -q -o /tmp/m.gguf
tm_check "m1 from its regions (the DDR one reloaded after the reboot) equals the GGUF" sh -c '
	tiermem logits -m /tmp/m.gguf --tokens 1,5,9,200,7 -o /tmp/a.bin &&
	tiermem logits --name m1 --tokens 1,5,9,200,7 -o /tmp/b.bin && cmp /tmp/a.bin /tmp/b.bin'
tm_check "a new import of crash succeeds" tiermem import -m /tmp/m.gguf --name crash --tier d=ddr:512K@20 --tier p=pmem:64M@5
tm_check "and runs, equal to the GGUF" sh -c '
	tiermem logits --name crash --tokens 1,5,9,200,7 -o /tmp/c.bin && cmp /tmp/a.bin /tmp/c.bin'
tm_check "rm both frees every region" sh -c '
	tiermem rm m1 crash >/dev/null && tiermem list | grep -q "^no models" &&
	! tiermem info | grep -qE "^ *(m1|crash)\."'
tiermem info 2>&1 | sed 's/^/# /'

# Without the module's store: a pmem tier on a file of an ext4 -o dax
# filesystem (pmem1), filled through libpmem2, run zero copy (fsdax).
# (/bin/mke2fs by its path: busybox sh prefers its own mke2fs applet.)
export TIERMEM_BACKEND=user
modprobe crc32c_generic 2>/dev/null
modprobe ext4 2>/dev/null
tm_check "ext4 -o dax on /dev/pmem1" sh -c '
	/bin/mke2fs -q -F -t ext4 -b 4096 /dev/pmem1 && mkdir -p /mnt/dax && mount -o dax /dev/pmem1 /mnt/dax'
tm_check "userspace import: ddr + pmem on the DAX filesystem" sh -c '
	tiermem import -m /tmp/m.gguf --name dax1 --tier d=ddr:512K@20 --tier p=pmem:64M@5,path=/mnt/dax >/tmp/imp 2>&1 &&
	grep -q "userspace store" /tmp/imp && ls /mnt/dax | grep -q "^dax1-p-.*\.tiermem$"'
sed 's/^/# /' /tmp/imp
tm_check "its logits equal the GGUF's, the pmem tier mapped fsdax" sh -c '
	tiermem logits --name dax1 --tokens 1,5,9,200,7 -o /tmp/d.bin && cmp /tmp/a.bin /tmp/d.bin &&
	tiermem run --name dax1 -n 2 -t 1 2>&1 >/dev/null | grep -q "^tier p .*fsdax"'
tm_check "pmem on a directory that is not DAX is refused (exit 2)" sh -c '
	tiermem import -m /tmp/m.gguf --name nodax --tier p=pmem:64M@5,path=/tmp 2>/tmp/err; [ $? -eq 2 ] &&
	grep -q "not on a DAX filesystem" /tmp/err'
tm_check "rm dax1 empties the DAX directory" sh -c '
	tiermem rm dax1 >/dev/null && [ -z "$(ls /mnt/dax | grep -v lost+found)" ]'
umount /mnt/dax 2>/dev/null
