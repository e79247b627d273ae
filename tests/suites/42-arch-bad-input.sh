#!/usr/bin/env bash
# deepseek2 files with a required key or tensor missing, inconsistent MLA
# dimensions, a bad expert grouping or an unknown gating function: tiermem
# refuses each with one line naming the key or tensor, and exit 2.
set -u
cd "$TOP"
TM=$BUILD/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-arch-bad.XXXXXX")
trap 'rm -rf "$W"' EXIT
. "$TOP/tests/lib/tap.sh"

LIBS="-lm -lpthread $(pkg-config --libs libpmem2 2>/dev/null) -lnuma -ljansson"
if ! cc -O2 -D_GNU_SOURCE -Iinclude -I. -o "$W/patch" tests/peer/gguf-patch.c "$BUILD/libtiermem.a" $LIBS 2>"$W/err" ||
   ! "$TM" synth --arch deepseek2 --gating sigmoid --expert-groups 4 --expert-groups-used 2 -q -o "$W/good.gguf" >/dev/null 2>>"$W/err"; then
	notok "setup: $(tail -1 "$W/err")"
	exit 1
fi
if "$TM" logits -m "$W/good.gguf" --tokens 1,2 -o "$W/o.bin" 2>"$W/err"; then
	ok "the unpatched deepseek2 file runs"
else
	notok "the unpatched deepseek2 file fails: $(tail -1 "$W/err")"
fi
# NAME OP [VALUE] | words the one-line message must contain
while IFS='|' read -r patch want; do
	# shellcheck disable=SC2086
	if ! "$W/patch" "$W/good.gguf" "$W/bad.gguf" $patch 2>"$W/err"; then
		notok "$patch: patch failed: $(tail -1 "$W/err")"
		continue
	fi
	"$TM" logits -m "$W/bad.gguf" --tokens 1,2 -o "$W/o.bin" 2>"$W/err" >/dev/null
	rc=$?
	lines=$(wc -l <"$W/err")
	if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$want" "$W/err"; then
		ok "$patch: exit 2, $(cat "$W/err")"
	else
		notok "$patch: exit $rc, $lines lines, wanted '$want': $(head -3 "$W/err")"
	fi
done <<'CASES'
deepseek2.attention.kv_lora_rank drop-key|deepseek2.attention.kv_lora_rank
deepseek2.expert_shared_count drop-key|deepseek2.expert_shared_count
deepseek2.expert_feed_forward_length drop-key|deepseek2.expert_feed_forward_length
deepseek2.attention.value_length_mla drop-key|value_length_mla
blk.1.attn_kv_a_mqa.weight drop-key|blk.1.attn_kv_a_mqa.weight
blk.2.attn_k_b.weight drop-key|blk.2.attn_k_b.weight
deepseek2.attention.key_length set-u32 100|deepseek2.attention.key_length
deepseek2.attention.kv_lora_rank set-u32 128|key_length
deepseek2.rope.dimension_count set-u32 200|rope dims
deepseek2.expert_group_count set-u32 8|deepseek2.expert_group_count
deepseek2.expert_group_count set-u32 3|deepseek2.expert_group_count
deepseek2.expert_group_used_count set-u32 4|deepseek2.expert_group_used_count
deepseek2.expert_gating_func set-u32 7|deepseek2.expert_gating_func
CASES
exit $failed
