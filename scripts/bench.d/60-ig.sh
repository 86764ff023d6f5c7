#!/usr/bin/env bash
# IG cost: the share of a training iteration that IG scoring takes, on the
# demo's warm-started policy with the demo's RL settings (tools/benchig): an
# unmeasured warm-up, IG-GRPO with prefix sharing, IG-GRPO scoring every
# context whole, and plain GRPO, IG_ITERATIONS (default 4) iterations each,
# one after the other in one process; then IG's floor on this machine (the
# tokens IG ran at ONNX Runtime's best rate for their context). The warm
# start (igsearch demo, about 2.5 minutes) is made once and kept in
# out/bench/ig-demo. Target: IG ≤ 3% of an iteration.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=out/bench
dir="$out/ig-demo"
mkdir -p "$out"
if [[ ! -f "$dir/model-sft/model.safetensors" ]]; then
	bin/igsearch demo --out "$dir" --iterations 1 --no-grpo >&2
fi
go run ./tools/benchig --demo "$dir" --iterations "${IG_ITERATIONS:-4}" | tee "$out/ig.txt"
