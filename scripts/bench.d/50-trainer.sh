#!/usr/bin/env bash
# Trainer: seconds per GRPO train step (B=8, T=256: forward, backward, global
# grad-norm clipping, AdamW) on CPU for qwen2.TrainBenchConfig (hidden 256,
# 4 layers, 4 heads, 2 KV heads, intermediate 688, vocab 151936, tied), igsearch
# (tools/bench/trainbench: the trainer's grad.onnx + optim.onnx on ONNX
# Runtime) against PyTorch eager (tools/bench/torchtrain/train.py: autograd,
# clip_grad_norm_, torch.optim.AdamW) on the same checkpoint and batch, in the
# same run, one after the other. Debian's python3-torch 1.13 with
# libopenblas0-pthread, torch.set_num_threads(cores). Peak RSS from
# getrusage, as /usr/bin/time -v reports it. Target: igsearch ≤ 0.8× torch.
# TRAIN_STEPS (default 5) timed steps follow one warm-up step on each side.
set -euo pipefail
cd "$(dirname "$0")/../.."

steps="${TRAIN_STEPS:-5}"
py=/usr/bin/python3 # Debian's, not a pyenv python3 on PATH
if ! "$py" -c 'import torch' 2>/dev/null || ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "50-trainer: needs python3-torch and libopenblas0-pthread (apt-get install -y python3-torch libopenblas0-pthread as root)" >&2
		exit 1
	fi
	apt-get install -y python3-torch libopenblas0-pthread >&2
fi

out=out/bench
mkdir -p "$out"
# tools/bench's go.sum may predate onnxruntime_go (pulled in by the replaced
# main module): build against a scratch copy of go.mod/go.sum completed from
# the main module's go.sum, offline, leaving the checked-in files untouched.
modtmp=$(mktemp -d)
trap 'rm -rf "$modtmp"' EXIT
cp tools/bench/go.mod tools/bench/go.sum "$modtmp/"
cat go.sum >>"$modtmp/go.sum"
(cd tools/bench && GOFLAGS=-mod=mod GOPROXY=off go build -modfile="$modtmp/go.mod" -o "../../$out/trainbench" ./trainbench)

data="$out/train"
if [[ ! -f "$data/batch.json" || ! -f "$data/model/model.safetensors" ]]; then
	"$out/trainbench" prepare --out "$data"
fi

log="$out/trainer.txt"
{
	"$out/trainbench" run --model "$data/model" --batch "$data/batch.json" --steps "$steps"
	"$py" tools/bench/torchtrain/train.py "$data/model" "$data/batch.json" --steps "$steps"
} | tee "$log"

"$py" - "$log" <<'PY'
import json, sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        _, impl, js = line.split(" ", 2)
        r[impl] = json.loads(js)
ig, th = r["igsearch"], r["torch"]
print(f"trainer: GRPO step B={ig['batch']} T={ig['seq']}: igsearch {ig['step_s']:.2f} s (min {ig['step_min_s']:.2f}), "
      f"torch {th['step_s']:.2f} s (min {th['step_min_s']:.2f}), ratio igsearch/torch = {ig['step_s'] / th['step_s']:.2f} (target <= 0.8); "
      f"peak RSS igsearch {ig['peak_rss_mb'] / 1024:.2f} GiB, torch {th['peak_rss_mb'] / 1024:.2f} GiB; "
      f"first-step loss {ig['loss']:.6g} vs {th['loss']:.6g}, grad norm {ig['grad_norm']:.6g} vs {th['grad_norm']:.6g}")
PY
