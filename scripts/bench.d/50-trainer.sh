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

# --- Real sizes (issue 12): peak RSS (/usr/bin/time -v) of one `igsearch
# trainer step` on random checkpoints of the published Qwen2.5 shapes, made
# here at run time (seed 1, F32, `igsearch model init --preset`):
#   - 0.5B full fine-tuning, B=TRAIN_REAL_BATCH (4) × T=TRAIN_REAL_SEQ (64), against
#     PyTorch eager's peak for the same step in the same run (torchtrain,
#     which also holds fp32 weights, grads and both AdamW moments); goal ≤ 1.0×;
#   - 3B LoRA (rank 16, q,k,v,o), B=2 × T=64, against 1.5× the fp32 weight
#     bytes. It needs ~14 GB free: skipped when MemAvailable is below 18 GiB
#     (or with TRAIN_REAL_SKIP_3B=1). The step's output (the base model again
#     plus the adapters) goes to out/bench and is removed afterwards.
# TRAIN_REAL=0 skips this part.
if [[ "${TRAIN_REAL:-1}" == 0 ]]; then
	exit 0
fi
go build -o "$out/igsearch" ./tools/igsearch
real="$out/train-real"
mkdir -p "$real"
rb="${TRAIN_REAL_BATCH:-4}" rt="${TRAIN_REAL_SEQ:-64}"
# A GRPO batch for vocab V: every other row left padded by up to 8, the
# first quarter of the columns a prompt (not trained), logprobs near -ln V.
mkbatch() { # VOCAB B T FILE
	"$py" - "$@" <<'PY'
import json, math, random, sys
V, B, T, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = random.Random(1)
f = {k: [] for k in ("input_ids", "attention_mask", "loss_mask", "advantages", "old_logprobs", "ref_logprobs")}
base = -math.log(V)
for r in range(B):
    pad = rng.randrange(8) if r % 2 else 0
    a = rng.gauss(0, 1)
    f["input_ids"].append([0] * pad + [rng.randrange(V) for _ in range(T - pad)])
    f["attention_mask"].append([0] * pad + [1] * (T - pad))
    f["loss_mask"].append([1.0 if i >= T // 4 else 0.0 for i in range(T - 1)])
    f["advantages"].append([a if i >= T // 4 else 0.0 for i in range(T - 1)])
    f["old_logprobs"].append([base + 0.05 * rng.gauss(0, 1) for _ in range(T - 1)])
    f["ref_logprobs"].append([base + 0.05 * rng.gauss(0, 1) for _ in range(T - 1)])
f.update(loss_type="grpo", clip_eps=0.2, kl_beta=0.001, lr=1e-6, weight_decay=0.01, adam_betas=[0.9, 0.999], adam_eps=1e-8, max_grad_norm=1.0)
json.dump(f, open(path, "w"))
PY
}
maxrss() { sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p' "$1"; }

q05="$real/qwen2.5-0.5b"
[[ -f "$q05/model.safetensors" ]] || "$out/igsearch" model init --preset qwen2.5-0.5b --seed 1 --out "$q05" >&2
mkbatch 151936 "$rb" "$rt" "$real/batch-0.5b.json"
wbytes05=$(stat -c %s "$q05/model.safetensors")
for variant in plain recompute; do
	flags=()
	[[ $variant == recompute ]] && flags=(--recompute)
	rm -rf "$real/step-0.5b"
	/usr/bin/time -v "$out/igsearch" trainer step --model "$q05" --batch "$real/batch-0.5b.json" --out "$real/step-0.5b" "${flags[@]}" \
		>"$real/ig-0.5b-$variant.json" 2>"$real/ig-0.5b-$variant.time"
done
rm -rf "$real/step-0.5b"
/usr/bin/time -v "$py" tools/bench/torchtrain/train.py "$q05" "$real/batch-0.5b.json" --steps 1 \
	>"$real/torch-0.5b.txt" 2>"$real/torch-0.5b.time"
"$py" - "$real" "$wbytes05" "$rb" "$rt" "$(maxrss "$real/ig-0.5b-plain.time")" "$(maxrss "$real/ig-0.5b-recompute.time")" "$(maxrss "$real/torch-0.5b.time")" <<'PY' | tee "$real/summary-0.5b.txt"
import json, sys
d, wb, B, T, ig, igr, th = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
m = json.loads(open(f"{d}/ig-0.5b-plain.json").read().strip().splitlines()[-1])
mr = json.loads(open(f"{d}/ig-0.5b-recompute.json").read().strip().splitlines()[-1])
t = [json.loads(l.split(" ", 2)[2]) for l in open(f"{d}/torch-0.5b.txt") if l.startswith("RESULT ")][0]
G = 1024 ** 2  # kB → GiB
print(f"trainer real size: 0.5B full fine-tuning B={B} T={T}: peak RSS igsearch {ig / G:.2f} GiB "
      f"(--recompute {igr / G:.2f} GiB), torch eager {th / G:.2f} GiB, ratio {ig / th:.2f} (goal <= 1.0); "
      f"fp32 weights {wb / 2**30:.2f} GiB; igsearch step grad {m['grad_s']:.1f} s + optim {m['optim_s']:.1f} s "
      f"(--recompute grad {mr['grad_s']:.1f} s), torch step {t['step_s']:.1f} s; "
      f"loss {m['loss']:.6g} vs {t['loss']:.6g}, grad norm {m['grad_norm']:.6g} vs {t['grad_norm']:.6g}")
PY

# Activation memory: a LoRA step on a rollout-sized batch (B=8, T=384, three
# quarters trained) at the 0.5B shape, as it comes (one gradient run over
# the batch) and with --recompute --micro-batch-tokens 1024.
mkbatch 151936 8 384 "$real/batch-8x384.json"
for variant in whole lean; do
	flags=()
	[[ $variant == lean ]] && flags=(--recompute --micro-batch-tokens 1024)
	rm -rf "$real/step-act"
	/usr/bin/time -v "$out/igsearch" trainer step --model "$q05" --batch "$real/batch-8x384.json" --out "$real/step-act" \
		--lora-rank 16 --lora-alpha 32 "${flags[@]}" >"$real/ig-act-$variant.json" 2>"$real/ig-act-$variant.time"
done
rm -rf "$real/step-act"
echo "trainer real size: 0.5B LoRA step B=8 T=384: peak RSS $(($(maxrss "$real/ig-act-whole.time") / 1024)) MiB in one gradient run," \
	"$(($(maxrss "$real/ig-act-lean.time") / 1024)) MiB with --recompute --micro-batch-tokens 1024" | tee "$real/summary-act.txt"

avail=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)
if [[ "${TRAIN_REAL_SKIP_3B:-}" == 1 || $avail -lt 18 ]]; then
	echo "trainer real size: 3B LoRA skipped (MemAvailable ${avail} GiB, needs 18; or TRAIN_REAL_SKIP_3B=1)"
	exit 0
fi
q3="$real/qwen2.5-3b"
[[ -f "$q3/model.safetensors" ]] || "$out/igsearch" model init --preset qwen2.5-3b --seed 1 --out "$q3" >&2
mkbatch 151936 2 64 "$real/batch-3b.json"
rm -rf "$real/step-3b"
/usr/bin/time -v "$out/igsearch" trainer step --model "$q3" --batch "$real/batch-3b.json" --out "$real/step-3b" \
	--lora-rank 16 --lora-alpha 32 >"$real/ig-3b-lora.json" 2>"$real/ig-3b-lora.time"
rm -rf "$real/step-3b"
"$py" - "$real" "$(stat -c %s "$q3/model.safetensors")" "$(maxrss "$real/ig-3b-lora.time")" <<'PY' | tee "$real/summary-3b.txt"
import json, re, sys
d, wb, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) * 1024
m = json.loads(open(f"{d}/ig-3b-lora.json").read().strip().splitlines()[-1])
wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", open(f"{d}/ig-3b-lora.time").read()).group(1)
print(f"trainer real size: 3B LoRA r=16 (q,k,v,o) B=2 T=64: peak RSS {rss / 2**30:.2f} GiB = {rss / wb:.2f}x the fp32 weights "
      f"({wb / 2**30:.2f} GiB; goal <= 1.5x); step grad {m['grad_s']:.1f} s + optim {m['optim_s']:.2f} s, whole command {wall} "
      f"(load, build, step, save)")
PY
