#!/usr/bin/env bash
# Decode and prefill speed of tiermem against llama.cpp (node-llama-cpp), same
# GGUF, same thread count, CPU only, side by side: every round runs the read
# ceiling (tiermem bench), tiermem (build/bench/decode) and llama.cpp
# (tests/peer/llama.mjs bench), alternating which engine goes first, and the
# figures are medians over rounds.
#
#   bench/vs-llama.sh [--rounds R] [--threads T] [--prompt-tokens N] [--gen G]
#                     [--peer-noamx] [--deepseek2] MODEL...
#
# llama.cpp runs the CPU variant ggml picks for this host (on AMX hosts
# libggml-cpu-sapphirerapids.so); --peer-noamx runs it without that variant
# (tests/peer/copy-noamx.sh), as suite 40 does for the files the AMX one
# cannot run. The summary names the variant that ran.
#
# Without MODEL or --deepseek2 it synthesizes the two benchmark models into
# build/bench-models: a dense llama of ~2 GB and a qwen3moe of ~4 GB (64
# experts, top 8), Q4_K_M mix.
# --deepseek2 adds two deepseek2 MoE models of ~4 GB (64 experts top-6 + 2
# shared, split MLA with the latent cache, sigmoid routing), a Q4_K_M and a
# Q2_K mix (the Kimi-K2 GGUFs are Q2_K mixes), with attn_k_b/attn_v_b in f32
# so that llama.cpp's AMX variant loads them.
# Share of the ceiling: tiermem's is `tiermem bench --decode` (in-process, token
# by token: a decode step, then a read of the same bytes; median over tokens),
# at --prompt-tokens positions of context. llama.cpp's cannot be taken per token
# from outside its process: it is its whole-run decode tok/s x the bytes a token
# reads (the same weights, its f16 KV cache) / the read rate that tiermem's
# in-process loop measured in the same round, just before.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 threads=$(nproc) np=512 ng=64 noamx=0 ds2=0
models=()
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--prompt-tokens) np=$2; shift 2 ;;
	--gen) ng=$2; shift 2 ;;
	--peer-noamx) noamx=1; shift ;;
	--deepseek2) ds2=1; shift ;;
	-h|--help) sed -n '2,27p' "$0"; exit 0 ;;
	*) models+=("$1"); shift ;;
	esac
done
BUILD=${BUILD:-$PWD/build}
export BUILD
[ -x "$BUILD/bench/decode" ] && [ -x "$BUILD/tiermem" ] || { echo "vs-llama: run make first" >&2; exit 2; }
if [ ${#models[@]} -eq 0 ] && [ $ds2 = 0 ]; then
	mkdir -p "$BUILD/bench-models"
	d=$BUILD/bench-models/dense-2g-q4km.gguf m=$BUILD/bench-models/moe-4g-q4km.gguf
	[ -f "$d" ] || "$BUILD/tiermem" synth --arch llama --type q4_K_M --size 2G -o "$d"
	[ -f "$m" ] || "$BUILD/tiermem" synth --arch qwen3moe --type q4_K_M --size 4G -o "$m"
	models=("$d" "$m")
fi
if [ $ds2 = 1 ]; then
	mkdir -p "$BUILD/bench-models"
	for t in q4_K_M q2_K; do
		f=$BUILD/bench-models/ds2-4g-$t.gguf
		[ -f "$f" ] || "$BUILD/tiermem" synth --arch deepseek2 --type $t --size 4G --gating sigmoid \
			--tensor-type attn_k_b=f32 --tensor-type attn_v_b=f32 -o "$f"
		models+=("$f")
	done
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PEER_BUILD=$BUILD
if [ $noamx = 1 ]; then
	tests/peer/copy-noamx.sh "$out/noamx"
	PEER_BUILD=$out/noamx
fi
for r in $(seq 1 "$rounds"); do
	for i in "${!models[@]}"; do
		mdl=${models[$i]}
		# the file is read once so both engines start from the page cache
		cat "$mdl" >/dev/null
		"$BUILD/tiermem" bench --decode "$mdl" --ctx "$np" --gen "$ng" -t "$threads" --json >"$out/share.$i.$r"
		if [ $((r % 2)) -eq 1 ]; then order="tm peer"; else order="peer tm"; fi
		for who in $order; do
			if [ $who = tm ]; then
				"$BUILD/bench/decode" "$mdl" --prompt-tokens "$np" --gen "$ng" --threads "$threads" >"$out/tm.$i.$r"
			else
				BUILD=$PEER_BUILD node tests/peer/llama.mjs bench "$mdl" --prompt-tokens "$np" --gen "$ng" --threads "$threads" >"$out/peer.$i.$r"
			fi
		done
		echo "round $r/$rounds: $(basename "$mdl") done" >&2
	done
done

python3 - "$out" "$rounds" "$threads" "${models[@]}" <<'PY'
import json, statistics as st, sys, os
d, rounds, threads, models = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
med = st.median
print(f"tiermem vs llama.cpp, {threads} threads, medians of {rounds} alternating rounds; "
      f"load average {open('/proc/loadavg').read().split()[0]}")
for i, mdl in enumerate(models):
    tm = [json.load(open(f"{d}/tm.{i}.{r}")) for r in range(1, rounds + 1)]
    pe = [json.load(open(f"{d}/peer.{i}.{r}")) for r in range(1, rounds + 1)]
    sh = [json.load(open(f"{d}/share.{i}.{r}"))["runs"][0] for r in range(1, rounds + 1)]
    bpt = med([t["bytes_per_token"] for t in tm])
    # per-round ratios, then their medians: both engines saw the same host state
    dec_ratio = med([t["decode_tok_s"] / p["decode_tok_s"] for t, p in zip(tm, pe)])
    pre_ratio = med([t["prefill_tok_s"] / p["prefill_tok_s"] for t, p in zip(tm, pe)])
    bw_tm = med([s["share"] for s in sh])
    # llama.cpp's f16 KV cache reads 2 bytes per element where ours reads kv_elem
    peer_bytes = [s["weight_bytes"] + s["kv_bytes"] * 2 / s.get("kv_elem_bytes", 4) for s in sh]
    bw_pe = med([p["decode_tok_s"] * b / 1e9 / s["read_gbs"] for p, b, s in zip(pe, peer_bytes, sh)])
    ce = [s["read_gbs"] for s in sh]
    print(f"\n{os.path.basename(mdl)}: {bpt / 1e9:.3f} GB of weights per token, "
          f"read ceiling {med(ce):.1f} GB/s (median of rounds)")
    print(f"  {'':10} {'decode tok/s':>13} {'prefill tok/s':>14} {'ceiling share':>14}")
    print(f"  {'tiermem':10} {med([t['decode_tok_s'] for t in tm]):>13.2f} "
          f"{med([t['prefill_tok_s'] for t in tm]):>14.1f} {bw_tm * 100:>13.0f}%")
    print(f"  {'llama.cpp':10} {med([p['decode_tok_s'] for p in pe]):>13.2f} "
          f"{med([p['prefill_tok_s'] for p in pe]):>14.1f} {bw_pe * 100:>13.0f}%")
    print(f"  ratio tiermem/llama.cpp: decode {dec_ratio:.2f}x, prefill {pre_ratio:.2f}x")
    print(f"  llama.cpp's CPU variant: {', '.join(sorted({str(p.get('cpu_variant')) for p in pe}))}")
PY
