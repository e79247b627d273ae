# First boot of the "store" scenario (tiermem import with the module; the
# second boot, store-check, runs on the same NVDIMM files). A model is
# imported into /dev/tiermem regions (its manifest in a PMEM region of its
# own) and run from them; then a second import is stopped in the middle of
# its copy (TIERMEM_TEST_STALL) and the host kills QEMU there: a crash.
tm_setup_pmem
tm_ok $? "pmem0 and pmem1 are fsdax namespaces"
tm_check "modprobe tiermem" tm_load_tiermem
tm_check "attach /dev/pmem0 with an empty table" tmvm attach /dev/pmem0 format
export TIERMEM_HOME=/tmp/store
tm_check "synth a small llama q8_0 (seed 5)" tiermem synth --arch llama --type q8_0 --seed 5 -q -o /tmp/m.gguf
tm_check "import it: ddr (a DDR region at run) + pmem (a PMEM region, zero copy)" sh -c '
	tiermem import -m /tmp/m.gguf --name m1 --tier d=ddr:512K@20 --tier p=pmem:64M@5 >/tmp/imp 2>&1 &&
	grep -q "tiermem module" /tmp/imp'
sed 's/^/# /' /tmp/imp
tiermem info >/tmp/info 2>&1
sed 's/^/# /' /tmp/info
tm_check "its regions and manifest are sealed PMEM regions" sh -c '
	grep -qE "^ *m1\.m[0-9a-f]{8} +pmem +sealed" /tmp/info && grep -qE "^ *m1\.[0-9a-f]{8}\.r1 +pmem +sealed" /tmp/info'
tm_check "list: m1 sealed, module backend" sh -c 'tiermem list | grep -qE "^m1 +sealed .* module "'
tm_check "logits --name equal the GGUF's (bit for bit)" sh -c '
	tiermem logits -m /tmp/m.gguf --tokens 1,5,9,200,7 -o /tmp/a.bin &&
	tiermem logits --name m1 --tokens 1,5,9,200,7 -o /tmp/b.bin && cmp /tmp/a.bin /tmp/b.bin'
tm_check "run --name: the ddr tier from a /dev/tiermem DDR region, pmem zero copy" sh -c '
	tiermem run --name m1 -n 4 -t 1 >/dev/null 2>/tmp/run && grep -q "^tier d .*tiermem" /tmp/run &&
	grep -q "^tier p .*tiermem" /tmp/run'
sed 's/^/# /' /tmp/run

TIERMEM_TEST_STALL=300000 tiermem import -m /tmp/m.gguf --name crash --tier d=ddr:512K@20 \
	--tier p=pmem:64M@5 >/dev/null 2>/tmp/stall &
tm_wait_for_line() { n=100; while ! grep -q "$1" "$2" && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done; grep -q "$1" "$2"; }
tm_wait_for_line TIERMEM-IMPORT-STALLED /tmp/stall
tm_ok $? "the second import stalled in the middle of its copy"
tiermem list | sed 's/^/# /'
tm_check "list: crash is importing" sh -c 'tiermem list | grep -qE "^crash +importing"'
echo "TM-STORE-KILL-NOW"
sleep 30
tm_ok 1 "the host should have killed QEMU during the import"
