#!/usr/bin/env bash
# Policy throughput on CPU: prefill, greedy decode and scoring tokens/s of
# igsearch (policy on ONNX Runtime) and of PyTorch eager
# (tools/bench/torchref) on the same ~100M Qwen2-shaped checkpoint (hidden 512,
# 8 layers, 8 heads, 2 KV heads, intermediate 1408, vocab 151936, tied), at
# batch 1 and 16, in the same run; prints the ratios. Target: igsearch ≥ 2×
# PyTorch for decode and scoring.
#
# The peer is Debian's python3-torch with libopenblas0-pthread (without it,
# torch falls back to the reference BLAS, ~15× slower) and
# torch.set_num_threads(os.cpu_count()); the script installs both with
# apt-get when missing. Knobs: POLICY_BENCH_PROMPT (prompt tokens, default
# 128), POLICY_BENCH_DECODE (decode steps, default 32), POLICY_BENCH_ATTENTION
# (contrib|standard, default contrib), POLICY_BENCH_SKIP_TORCH=1,
# POLICY_BENCH_PRESET (a published shape, e.g. qwen2.5-0.5b, written in
# bf16, instead of the 100M one). It also prints decode's weight-read rate
# as a share of this machine's memory read bandwidth, measured in the same
# run: a B=1 decode step reads every fp32 weight once.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=out/bench
mkdir -p "$out"
preset=${POLICY_BENCH_PRESET:-}
model="$PWD/$out/policy-${preset:-100m}"
prompt=${POLICY_BENCH_PROMPT:-128}
decode=${POLICY_BENCH_DECODE:-32}
py=/usr/bin/python3 # Debian's interpreter, where python3-torch lives

if [[ -z "${POLICY_BENCH_SKIP_TORCH:-}" ]]; then
	need=()
	"$py" -c 'import torch' 2>/dev/null || need+=(python3-torch)
	dpkg -s libopenblas0-pthread >/dev/null 2>&1 || need+=(libopenblas0-pthread)
	if ((${#need[@]})); then
		sudo=""
		[[ $(id -u) == 0 ]] || sudo=sudo
		echo "installing ${need[*]} for the PyTorch peer" >&2
		$sudo apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >&2
	fi
fi

echo "igsearch: prompt $prompt tokens, $decode decode steps, $(nproc) threads" >&2
# The benchmark test writes the checkpoint (seed 1) on its first run.
IGSEARCH_POLICY_BENCH="$model" IGSEARCH_POLICY_BENCH_PROMPT="$prompt" IGSEARCH_POLICY_BENCH_DECODE="$decode" \
	IGSEARCH_POLICY_BENCH_ATTENTION="${POLICY_BENCH_ATTENTION:-contrib}" IGSEARCH_POLICY_BENCH_PRESET="$preset" \
	go test -count=1 -timeout 30m -run '^TestPolicyBench$' -v ./policy | tee "$out/policy.log" | grep '^BENCH ' | sed 's/^BENCH //' >"$out/policy-igsearch.jsonl"
if [[ -z "${POLICY_BENCH_SKIP_TORCH:-}" ]]; then
	echo "PyTorch eager: same checkpoint and workloads" >&2
	"$py" tools/bench/torchref/bench.py "$model" --prompt "$prompt" --decode "$decode" | grep '^BENCH ' | sed 's/^BENCH //' >"$out/policy-torch.jsonl"
else
	: >"$out/policy-torch.jsonl"
fi

"$py" - "$out/policy-igsearch.jsonl" "$out/policy-torch.jsonl" <<'PY'
import json, sys
rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        rows[(r["what"], r["batch"], r["impl"])] = r
print(f"{'phase':8} {'batch':>5} {'igsearch tok/s':>15} {'torch tok/s':>12} {'ratio':>7}")
for what in ("prefill", "decode", "score"):
    for b in (1, 16):
        g, t = rows.get((what, b, "igsearch")), rows.get((what, b, "torch"))
        if not g:
            continue
        gt = g["tokens_per_s"]
        tt = t["tokens_per_s"] if t else float("nan")
        ratio = gt / tt if t else float("nan")
        flag = "" if what == "prefill" or not t else ("  ok (≥2×)" if ratio >= 2 else "  below 2×")
        print(f"{what:8} {b:5d} {gt:15.1f} {tt:12.1f} {ratio:6.2f}×{flag}")
bw = next((r for k, r in rows.items() if k[0] == "membw"), None)
for b in (1, 16):
    g = rows.get(("decode", b, "igsearch"))
    if bw and g and g.get("weight_bytes"):
        rate = g["weight_bytes"] * g["tokens_per_s"] / b
        print(f"decode B={b}: {rate / 1e9:.2f} GB/s of weights read against {bw['bytes_per_s'] / 1e9:.2f} GB/s measured = {rate / bw['bytes_per_s']:.0%} of the bandwidth ceiling")
t = next((r for k, r in rows.items() if k[2] == "torch"), None)
if t:
    print(f"torch {t['torch']}, {t['threads']} threads, BLAS {t['blas']}")
PY
