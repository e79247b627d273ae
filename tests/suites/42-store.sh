#!/usr/bin/env bash
# The store without the module (TIERMEM_BACKEND=user): tiermem import, list,
# rm, and run/logits --name, as a user meets them.
#  - logits of an imported model are bit-identical to those of the GGUF
#    loaded into DDR, for every synth architecture x type, with the tensors
#    split over two tiers (ddr: copied into 2 MiB pages at start; file:
#    mapped, zero copy): both hold the same bytes (import and the DDR load
#    share --repack's default: q4_K/q6_K matrices in the interleaved-row
#    layout or not, the rest the GGUF's own) and the forward pass is the same code,
#    so any difference is a wrong offset, region, layout or binding
#    (suite 43-layout compares the layouts with each other);
#  - the GGUF is not needed after the import;
#  - identity: the same contents again is a no-op; other contents under the
#    name are refused without --replace;
#  - crash safety: kill -9 in the middle of the copy (TIERMEM_TEST_STALL
#    stops it there) leaves a model that list reports incomplete and run
#    refuses; a new import succeeds;
#  - bad input, each one line on stderr and exit 2: node:N that does not
#    exist, pmem without a DAX path or on a non-DAX filesystem, a tier that
#    is full (a 1 MiB tmpfs, as root), a checksum mismatch, a deleted
#    region, an unreadable manifest, a model still being imported.
# The sanitized binary (ASan with leak checks, UBSan) runs everything but the
# per-type logits.
set -u
cd "$TOP"
TM=$BUILD/tiermem
SAN=$BUILD/san/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-store.XXXXXX")
export TIERMEM_HOME=$W/home TIERMEM_BACKEND=user ASAN_OPTIONS=detect_leaks=1
cleanup() {
	[ -n "${stall_pid:-}" ] && kill -9 "$stall_pid" 2>/dev/null
	mountpoint -q "$W/small" 2>/dev/null && umount "$W/small"
	rm -rf "$W"
}
trap cleanup EXIT
. "$TOP/tests/lib/tap.sh"

for b in "$TM" "$SAN"; do
	if [ ! -x "$b" ]; then
		notok "$b is missing (make all san)"
		exit 1
	fi
done
TOKS=1,17,300,45,9,880,2,31,600,5,77,12

# ---- every architecture x type, over two tiers, bit-identical to the GGUF ----
for arch in llama llama-moe qwen3 qwen3moe; do
	for type in f32 f16 bf16 q8_0 q4_0 q4_K q5_K q6_K q4_K_M; do
		m=$W/$arch-$type.gguf name=$arch-$type
		synth_or_notok "$m" --arch $arch --type $type || continue
		# about half the model on each tier
		half=$(($(stat -c %s "$m") / 2048))K
		if ! "$TM" import -m "$m" --name "$name" --tier fast=ddr:$half@20 --tier slow=file:1G@5 \
				>"$W/imp" 2>"$W/err"; then
			notok "$arch $type: import failed: $(tail -1 "$W/err")"
			continue
		fi
		if ! grep -q '^  fast ' "$W/imp" || ! grep -q '^  slow ' "$W/imp"; then
			notok "$arch $type: the import did not use both tiers: $(tr '\n' ' ' <"$W/imp")"
			continue
		fi
		okb=1
		for batch in 1 16; do
			"$TM" logits -m "$m" --weights ddr --tokens $TOKS -o "$W/a.bin" --batch $batch 2>"$W/err" &&
				"$TM" logits --name "$name" --tokens $TOKS -o "$W/b.bin" --batch $batch 2>>"$W/err" &&
				cmp -s "$W/a.bin" "$W/b.bin" || okb=0
		done
		if [ $okb = 1 ]; then
			ok "$arch $type over ddr + file: logits (batch 1 and 16) bit-identical to the GGUF's in DDR"
		else
			notok "$arch $type over ddr + file: logits differ or failed: $(tail -1 "$W/err")"
		fi
		"$TM" rm "$name" >/dev/null 2>&1
	done
done

# ---- a model's life with the sanitized binary ----
# (the default tiers' bandwidths are measured, and here both are DRAM: which
# of ddr and file the planner fills first is the noisy host's choice)
M=$W/llama-q4_K.gguf
"$TM" synth --arch llama --type q4_K -q -o "$M" >/dev/null
"$TM" synth --arch llama --type q8_0 -q -o "$W/other.gguf" >/dev/null
"$TM" synth --arch llama --type q4_K_M --size 48M -q -o "$W/big.gguf" >/dev/null
"$TM" logits -m "$M" --weights ddr --tokens $TOKS -o "$W/ref.bin"

check "import with the default tiers (ddr, the rest file): exit 0, a one-line summary" \
	'"$SAN" import -m "$M" --name m1 >"$W/out" 2>"$W/err" && grep -q "^m1: imported .* MB/s), hash [0-9a-f]\{12\}, userspace store" "$W/out" && [ ! -s "$W/err" ]'
check "list: m1 sealed, with size, tiers, backend, hash and source" \
	'"$SAN" list >"$W/out" && grep -qE "^m1 +sealed +[0-9.]+ MiB +user +[0-9a-f]{12} (ddr|file) [0-9.]+ MiB / $M" "$W/out"'
check "info (no module): the store, its userspace backends and its models" \
	'"$SAN" info >"$W/out" 2>/dev/null; grep -q "^store: $TIERMEM_HOME; userspace backends" "$W/out" && grep -q "^models: 1 (1 usable" "$W/out"'
check "list --json: m1 usable" '"$SAN" list --json | grep -q "\"usable\": true"'
check "the same contents again: a no-op that says so" \
	'"$SAN" import -m "$M" --name m1 >"$W/out" && grep -q "already imported with the same contents" "$W/out"'
expect2_re "other contents under the name, no --replace" "already holds other contents.*--replace" \
	"$SAN" import -m "$W/other.gguf" --name m1
mv "$M" "$M.away"
check "run --name without the GGUF: text, and the summary names tier and backend" \
	'"$SAN" run --name m1 -n 6 --seed 3 -t 2 >"$W/out" 2>"$W/err" && grep -qE "^tier (ddr +ddr .* anon-|file +file .*not persistent)" "$W/err"'
check "logits --name without the GGUF: bit-identical" \
	'"$SAN" logits --name m1 --tokens $TOKS -o "$W/b.bin" && cmp -s "$W/ref.bin" "$W/b.bin"'
mv "$M.away" "$M"
check "--replace with other contents: imported, and the logits are the new model's" \
	'"$SAN" import -m "$W/other.gguf" --name m1 --replace >/dev/null &&
	 "$TM" logits -m "$W/other.gguf" --weights ddr --tokens $TOKS -o "$W/a.bin" &&
	 "$SAN" logits --name m1 --tokens $TOKS -o "$W/b.bin" && cmp -s "$W/a.bin" "$W/b.bin"'
check "--replace left no file of the old contents" \
	'[ "$(ls "$TIERMEM_HOME/models/m1" | grep -c region)" -eq 1 ] && [ "$(ls "$TIERMEM_HOME/models/m1" | grep -c header)" -eq 1 ]'
check "a file tier is labelled 'file (not persistent memory)' in the run summary" \
	'"$SAN" import -m "$M" --name m2 --tier slow=file:1G@5 >/dev/null &&
	 "$SAN" run --name m2 -n 2 -t 1 2>&1 >/dev/null | grep -q "^tier slow .*file (not persistent memory)"'

check "-ot overrides the plan: ffn tensors on slow although fast has room" \
	'"$SAN" import -m "$M" --name m3 --tier fast=ddr:1G@20 --tier slow=file:1G@5 -ot "ffn_=slow" >"$W/out" &&
	 grep -qE "^  slow .* in +8 tensors" "$W/out" &&
	 "$SAN" logits --name m3 --tokens $TOKS -o "$W/b.bin" && cmp -s "$W/ref.bin" "$W/b.bin"'
check "--plan from tiermem plan --json: imported as planned, logits bit-identical" \
	'"$TM" plan -m "$M" --tier fast=ddr:300K@20 --tier slow=file:1G@5 --json >"$W/plan.json" &&
	 "$SAN" import -m "$M" --name m4 --plan "$W/plan.json" >"$W/out" && grep -q "^  fast " "$W/out" &&
	 "$SAN" logits --name m4 --tokens $TOKS -o "$W/b.bin" && cmp -s "$W/ref.bin" "$W/b.bin"'
expect2_re "--plan made for another model" "not a plan for this model" \
	"$SAN" import -m "$W/other.gguf" --name m5 --plan "$W/plan.json"
"$SAN" rm m3 m4 >/dev/null

# ---- bad input: one line, exit 2, nothing kept ----
nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
if [ "$nodes" -le 1 ]; then
	expect2_re "node:7 on a one-node machine" "node:7: this machine has one NUMA node" \
		"$SAN" import -m "$M" --name bad --tier far=node:7:1G
else
	expect2_re "node:999" "node:999: this machine has NUMA nodes" "$SAN" import -m "$M" --name bad --tier far=node:999:1G
fi
expect2_re "pmem with no DAX path and no module" "no DAX path" "$SAN" import -m "$M" --name bad --tier p=pmem:1G
expect2_re "pmem on a directory that is not DAX" "not on a DAX filesystem" \
	"$SAN" import -m "$M" --name bad --tier p=pmem:1G,path="$W"
check "neither left a model or a file behind" \
	'! "$SAN" list | grep -q "^bad " && [ -z "$(ls "$W" | grep tiermem)" ]'
if [ "$(id -u)" -eq 0 ] && mkdir -p "$W/small" && mount -t tmpfs -o size=1m tmpfs "$W/small" 2>/dev/null; then
	expect2_re "a tier that is full (1 MiB tmpfs)" "tier 'slow' is full: .*bytes missing" \
		"$SAN" import -m "$M" --name bad --tier fast=ddr:64K --tier slow=file:1G@5,path="$W/small"
	check "the full tier kept nothing: no model, no file" \
		'! "$SAN" list | grep -q "^bad " && [ -z "$(ls -A "$W/small")" ]'
	umount "$W/small"
else
	ok "# SKIP a full tier needs root to mount a small tmpfs"
fi
expect2_re "a model that fits no tier" "." "$SAN" import -m "$M" --name bad --tier fast=ddr:64K
expect2_re "run --name of no such model" "no model named 'nosuch'" "$SAN" run --name nosuch
expect2_re "-m and --name together" "not both" "$SAN" run -m "$M" --name m1
expect2_re "a bad model name" "model name" "$SAN" import -m "$M" --name "../x"

# ---- kill -9 in the middle of the copy ----
TIERMEM_TEST_STALL=8000000 "$TM" import -m "$W/big.gguf" --name crash --tier fast=ddr:16M@20 \
	--tier slow=file:1G@5 2>"$W/stall" >/dev/null &
stall_pid=$!
for _ in $(seq 100); do grep -q TIERMEM-IMPORT-STALLED "$W/stall" && break; sleep 0.1; done
check "the import stalled mid-copy: $(head -c 80 "$W/stall")" 'grep -q TIERMEM-IMPORT-STALLED "$W/stall"'
check "while it runs, list says importing (pid)" '"$SAN" list | grep -qE "^crash +importing \(pid $stall_pid\)"'
expect2_re "while it runs, run --name refuses" "still being imported" "$SAN" run --name crash
expect2_re "while it runs, a second import refuses" "being imported by process" \
	"$SAN" import -m "$W/big.gguf" --name crash
kill -9 $stall_pid
wait $stall_pid 2>/dev/null
stall_pid=
check "after kill -9, list says incomplete" '"$SAN" list | grep -qE "^crash +incomplete"'
expect2_re "after kill -9, run --name refuses" "incomplete.*import it again" "$SAN" run --name crash
check "a new import succeeds and its logits equal the GGUF's" \
	'"$SAN" import -m "$W/big.gguf" --name crash --tier fast=ddr:16M@20 --tier slow=file:1G@5 >/dev/null &&
	 "$TM" logits -m "$W/big.gguf" --weights ddr --tokens 1,2,3 -o "$W/a.bin" &&
	 "$TM" logits --name crash --tokens 1,2,3 -o "$W/b.bin" && cmp -s "$W/a.bin" "$W/b.bin"'
check "nothing of the killed import is left" \
	'[ ! -e "$TIERMEM_HOME/models/crash/importing.json" ] && ! ls "$TIERMEM_HOME/models/crash" | grep -q filling'

# ---- damage after the import ----
slow=$(ls "$TIERMEM_HOME"/models/crash/slow-*.region)
chmod u+w "$slow"
printf '\xa5' | dd of="$slow" bs=1 seek=4096 conv=notrunc 2>/dev/null
expect2_re "a flipped byte: checksum mismatch at map time" "fails its checksum.*--replace" "$SAN" run --name crash
check "--no-verify skips the zero-copy tiers' checksums (and runs)" '"$SAN" run --name crash --no-verify -n 2 >/dev/null 2>&1'
check "import --replace of the same contents repairs it" \
	'"$SAN" import -m "$W/big.gguf" --name crash --replace --tier fast=ddr:16M@20 --tier slow=file:1G@5 >/dev/null &&
	 "$TM" logits --name crash --tokens 1,2,3 -o "$W/b.bin" && cmp -s "$W/a.bin" "$W/b.bin"'
rm -f "$TIERMEM_HOME"/models/crash/fast-*.region
expect2_re "a deleted region" "region .* is missing .*tier 'fast'" "$SAN" run --name crash
check "list: regions missing" '"$SAN" list | grep -qE "^crash +regions missing \(fast\)"'
echo garbage >"$TIERMEM_HOME/models/m2/manifest.json"
expect2_re "an unreadable manifest" "not JSON.*tiermem rm m2" "$SAN" run --name m2
check "list: manifest unreadable" '"$SAN" list | grep -qE "^m2 +manifest unreadable"'

# ---- rm ----
check "rm frees everything" '"$SAN" rm crash m1 m2 >/dev/null && [ -z "$(ls -A "$TIERMEM_HOME/models")" ]'
expect2_re "rm of no such model" "no model named" "$SAN" rm crash
check "list of an empty store" '"$SAN" list | grep -q "^no models"'

echo "1..$n"
exit $failed
