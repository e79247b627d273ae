#!/usr/bin/env bash
# tiermem plan with a GPU (vram and pcie tiers): the CPU/GPU hybrid that huge
# MoE models run, on a header of Kimi-K2's shape (deepseek2: MLA, a dense first
# layer, 384 routed experts top-8 and one shared expert, ~590 GiB at q4_K_M).
# The bandwidths are given (no GPU, PMEM or second socket here); what is
# checked is the planner's arithmetic, recomputed here from the JSON by an
# independent implementation of the model in Documentation/tiermem-plan.rst,
# and that the choices it makes are the ones the model says pay.
set -u
cd "$TOP"
TM=$BUILD/tiermem
W=$(mktemp -d "${TMPDIR:-/tmp}/tm-plan-gpu.XXXXXX")
trap 'rm -rf "$W"' EXIT
. "$TOP/tests/lib/tap.sh"
py() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }

# The hybrid model, written again from the documentation: exit 0 when the
# JSON's prediction is what the tensors, tiers and processors give.
cat >"$W/model.py" <<'EOF'
import json, re, sys
j = json.load(open(sys.argv[1]))
T = {t["name"]: t for t in j["tiers"]}
vram = [t for t in j["tiers"] if t["kind"] == "vram"][0]
pcie = [t for t in j["tiers"] if t["kind"] == "pcie"]
H = j["hybrid"]["handoff_fixed_sec"]
assert not j["overlap"]
def gpu_sec(t):
    bw = T[t["tier"]]["gbps"]
    if t["tier"] != vram["name"]:
        bw = min(bw, pcie[0]["gbps"])
    return t["read_per_token"] / (bw * 1e9)
gpu = cpu = 0.0
L = {}
for t in j["tensors"]:
    if t["read_per_token"] <= 0:
        continue
    m = re.match(r"blk\.(\d+)\.", t["name"])
    on_gpu = t["compute"] == "gpu"
    ph = {"routed experts": "r", "shared expert": "s"}.get(t["class"])
    if m:
        a = L.setdefault(int(m.group(1)), {"rc": 0.0, "rg": 0.0, "sc": 0.0, "sg": 0.0, "host": {}, "c": False, "g": False})
        a["g" if on_gpu else "c"] = True
    if m and ph:
        if on_gpu:
            a[ph + "g"] += gpu_sec(t)
        else:
            a[ph + "c"] += t["read_per_token"] / (T[t["tier"]]["gbps"] * 1e9)
        if t["tier"] != vram["name"]:
            a["host"][t["tier"]] = a["host"].get(t["tier"], 0) + t["read_per_token"]
    elif on_gpu:
        gpu += gpu_sec(t)
    else:
        cpu += t["read_per_token"] / (T[t["tier"]]["gbps"] * 1e9)
moe = 0.0
handoffs = 0
for a in L.values():
    r, s = a["rc"] + a["rg"], a["sc"] + a["sg"]
    apart = (a["rc"] > 0 and a["rg"] == 0 and a["sg"] > 0 and a["sc"] == 0) or \
            (a["rg"] > 0 and a["rc"] == 0 and a["sc"] > 0 and a["sg"] == 0)
    if apart:
        bound = max([v / (T[k]["gbps"] * 1e9) for k, v in a["host"].items()] + [0])
        moe += max(r, s, bound)
    else:
        moe += r + s
    handoffs += a["c"] and a["g"]
copy = H + (2 * 4 * j["n_embd"] / (pcie[0]["gbps"] * 1e9) if pcie else 0)
want = gpu + cpu + moe + handoffs * copy
ok = abs(want - j["sec_per_token"]) <= 1e-9 * want and handoffs == j["hybrid"]["handoffs"]
print("# recomputed %.6f s/token (%d hand-offs), JSON says %.6f" % (want, handoffs, j["sec_per_token"]))
sys.exit(0 if ok else 1)
EOF

KIMI=(--arch deepseek2 --type q4_K_M --layers 61 --dim 7168 --heads 64 --kv-heads 64 --q-lora-rank 1536
      --kv-lora-rank 512 --qk-nope 128 --qk-rope 64 --v-head 128 --experts 384 --experts-used 8
      --expert-ff 2048 --ff 18432 --dense-layers 1 --shared-experts 1 --vocab 163840 --gating sigmoid)
"$TM" synth "${KIMI[@]}" --header-only -o "$W/kimi.gguf" >"$W/synth.out" 2>"$W/err"
check "synth --header-only: Kimi-K2's shape (deepseek2, MLA, 1 dense + 60 MoE layers, 384 experts top-8, 1 shared): $(cat "$W/synth.out")" \
	'grep -q "deepseek2, 61 layers.*384 experts (top 8" "$W/synth.out"'

HOST=(--tier pmem=pmem:768G@39 --tier ddr=ddr:192G@100)
"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --json >"$W/cpu.json" 2>"$W/err"
prev=$(jq .tok_per_s "$W/cpu.json" 2>/dev/null)
check "no GPU: PMEM 768G@39 + DDR 192G@100 predicts ${prev:-none} tok/s (about 3)" \
	'py "$W/cpu.json" "2.5 <= j[\"tok_per_s\"] <= 3.5 and \"hybrid\" not in j"'
cpu_tps=$prev
for v in 24 48 80; do
	"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:${v}G@3350 --tier pcie=pcie:@55 --json \
		>"$W/g$v.json" 2>"$W/err"
	tps=$(jq .tok_per_s "$W/g$v.json" 2>/dev/null)
	check "${v} GB VRAM at 3350 GB/s + PCIe 55 GB/s: ${tps:-none} tok/s, more than $prev" \
		'py "$W/g$v.json" "j[\"tok_per_s\"] > $prev and j[\"tiers\"][2][\"bytes\"] <= j[\"tiers\"][2][\"capacity\"]"'
	check "${v} GB: every always-read tensor (attention, norms, output, routers, shared and dense FFN) in VRAM, on the GPU" \
		'py "$W/g$v.json" "all(t[\"tier\"] == \"gpu\" and t[\"compute\"] == \"gpu\" for t in j[\"tensors\"] if t[\"class\"] not in (\"routed experts\", \"embedding\"))"'
	check "${v} GB: the prediction is the hybrid model over the JSON's tensors $(python3 "$W/model.py" "$W/g$v.json" | tr '\n' ' ')" \
		'python3 "$W/model.py" "$W/g$v.json" >/dev/null'
	prev=$tps
done
check "80 GB VRAM: routed experts fill the VRAM left over, most stay on the host" \
	'py "$W/g80.json" "any(t[\"tier\"] == \"gpu\" and t[\"class\"] == \"routed experts\" for t in j[\"tensors\"]) and sum(t[\"tier\"] != \"gpu\" for t in j[\"tensors\"] if t[\"class\"] == \"routed experts\") > 100"'
echo "# Kimi-K2 shape, PMEM 768G@39 + DDR 192G@100: CPU only $cpu_tps tok/s; + GPU 24/48/80 GB: $(jq .tok_per_s "$W"/g{24,48,80}.json | tr '\n' ' ')"

# llama.cpp's hybrid rule, -ot exps=CPU: routed experts on the host and the CPU, the rest on the GPU
"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G@3350 -ot exps=CPU --json >"$W/ot.json" 2>"$W/err"
check "-ot exps=CPU: every routed expert on a host tier, computed by the CPU; everything else on the GPU" \
	'py "$W/ot.json" "all((t[\"tier\"] != \"gpu\" and t[\"compute\"] == \"cpu\") if t[\"class\"] == \"routed experts\" else t[\"compute\"] == \"gpu\" for t in j[\"tensors\"])"'
check "-ot exps=CPU: one hand-off per MoE layer (60), shared experts overlapped with the CPU's routed ones $(python3 "$W/model.py" "$W/ot.json" | tr '\n' ' ')" \
	'python3 "$W/model.py" "$W/ot.json" >/dev/null && py "$W/ot.json" "j[\"hybrid\"][\"handoffs\"] == 60 and j[\"hybrid\"][\"moe_sec\"] < j[\"hybrid\"][\"moe_serial_sec\"]"'
"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G@3350 --json >"$W/nopcie.json" 2>"$W/err"
check "without a pcie tier nothing on the host is computed by the GPU" \
	'py "$W/nopcie.json" "all(t[\"compute\"] == \"cpu\" for t in j[\"tensors\"] if t[\"tier\"] != \"gpu\")"'
"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G@3350 --tier pcie=pcie:@55 >"$W/g24.txt" 2>"$W/err"
check "the printed plan: the pcie row, the hybrid breakdown, where each class is computed" \
	'grep -q "^pcie  *pcie  *- .*GB" "$W/g24.txt" && grep -q "^  MoE phase .* ms" "$W/g24.txt" &&
	 grep -q "^hybrid: gpu_ms=" "$W/g24.txt" && grep -q "^attention  *gpu  *gpu " "$W/g24.txt" &&
	 grep -q "^routed experts  *ddr  *cpu " "$W/g24.txt"'
"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G@3350 --tier pcie=pcie:@55 --json >"$W/rt.json" 2>"$W/err"
check "the processor search is deterministic: the same plan twice, byte for byte" \
	'"$BUILD/tiermem" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G@3350 --tier pcie=pcie:@55 --json | cmp -s - "$W/rt.json"'

# bad input: one line, exit 2
expect2 "pcie with a size" "$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G@3350 --tier p=pcie:8G@55
# without @GBPS the GPU tiers are measured on this machine's GPU (tiermem bench --tier gpu / pcie):
# where there is none, one line naming it (a GPU machine runs the measurement: bench/gpu-run.sh)
if nvidia-smi -L >/dev/null 2>&1; then
	"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G --tier p=pcie: --json >"$W/meas.json" 2>"$W/err"
	check "vram and pcie without @GBPS: measured on this machine's GPU" \
		'py "$W/meas.json" "all(t[\"gbps\"] > 0 and not t[\"gbps_given\"] for t in j[\"tiers\"] if t[\"kind\"] in (\"vram\", \"pcie\"))"'
else
	expect2_re "pcie without a bandwidth is measured on the GPU; none here" "tier p: pcie bandwidth is measured on a GPU: no GPU" \
		"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G@3350 --tier p=pcie:
	expect2_re "vram without a bandwidth is measured on the GPU; none here" "tier gpu: vram bandwidth is measured on a GPU: no GPU" \
		"$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier gpu=vram:24G
fi
expect2 "pcie without vram" "$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier p=pcie:@55
expect2 "two vram tiers" "$TM" plan -m "$W/kimi.gguf" "${HOST[@]}" --tier a=vram:24G@3350 --tier b=vram:24G@3350
expect2 "-ot to CPU with nothing but VRAM" "$TM" plan -m "$W/kimi.gguf" --tier gpu=vram:1T@3350 -ot exps=CPU

echo "1..$n"
exit $failed
