#!/usr/bin/env bash
# Real-size Qwen2.5 on CPU. For each published shape in REALSIZE_PRESETS
# (default "qwen2.5-0.5b qwen2.5-1.5b qwen2.5-3b"): a random checkpoint as
# the Hub ships them (bf16, in 600 MB shards with model.safetensors.index.json; seed 1,
# made once under out/bench/realsize), then, each under /usr/bin/time -v:
#   - igsearch logprobs on 4 random sequences (5–128 tokens), checked
#     against the independent PyTorch forward (tools/bench/torchref, fp32)
#     on the same checkpoint: max |Δ log-prob|;
#   - igsearch generate: one prompt, 16 sampled tokens;
#   - igsearch score-ig: 4 logged two-search trajectories, 3 counterfactuals.
# Each prints its wall time and peak RSS against the fp32 weight bytes (the
# goal: ≤ 1.5×). The PyTorch peer is Debian's python3-torch (installed with
# apt-get when missing, as in 40-policy.sh); REALSIZE_SKIP_TORCH=1 skips it.
# The decode-throughput comparison at 0.5B is 40-policy.sh with
# POLICY_BENCH_PRESET=qwen2.5-0.5b.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$PWD/out/bench/realsize
mkdir -p "$out"
bin=$PWD/bin/igsearch
py=/usr/bin/python3
tok=${IGSEARCH_QWEN_TOKENIZER:?run through make bench (it sets IGSEARCH_QWEN_TOKENIZER)}
presets=${REALSIZE_PRESETS:-qwen2.5-0.5b qwen2.5-1.5b qwen2.5-3b}

if [[ -z "${REALSIZE_SKIP_TORCH:-}" ]] && ! "$py" -c 'import torch' 2>/dev/null; then
	sudo=""
	[[ $(id -u) == 0 ]] || sudo=sudo
	echo "installing python3-torch for the PyTorch reference" >&2
	$sudo apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q python3-torch libopenblas0-pthread >&2
fi

"$py" tools/bench/logged_trajectories.py "$out/traj.jsonl"
"$py" - "$out/seqs.jsonl" <<'PY'
import json, random, sys
r = random.Random(1)
with open(sys.argv[1], "w") as f:
    for n in (64, 37, 128, 5):
        f.write(json.dumps({"input_ids": [r.randrange(151643) for _ in range(n)]}) + "\n")
PY

# measure NAME CMD...: runs CMD under /usr/bin/time -v, prints seconds and peak RSS.
measure() {
	local name=$1
	shift
	/usr/bin/time -v "$@" 2>"$out/$name.time" >/dev/null || { tail -5 "$out/$name.time" >&2; return 1; }
	local rss wall
	rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$out/$name.time")
	wall=$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$out/$name.time")
	echo "$rss $wall"
}

for p in $presets; do
	dir=$out/$p
	if [[ ! -f $dir/config.json ]]; then
		rm -rf "$dir"
		"$bin" model init --preset "$p" --dtype bfloat16 --max-shard-mb 600 --seed 1 --out "$dir" >&2
	fi
	fp32=$(awk -v p="$p" 'BEGIN { n["qwen2.5-0.5b"]=494032768; n["qwen2.5-1.5b"]=1543714304; n["qwen2.5-3b"]=3085938688; n["qwen2.5-7b"]=7615616512; printf "%.0f", 4*n[p] }')
	for stage in logprobs generate score-ig; do
		case $stage in
		logprobs) cmd=("$bin" logprobs --model "$dir" --in "$out/seqs.jsonl" --out "$out/$p.lp.jsonl") ;;
		generate) cmd=("$bin" generate --model "$dir" --tokenizer "$tok" --prompt "Question: who founded the city of Arlen?" --max-new-tokens 16 --seed 1 --out "$out/$p.gen.jsonl") ;;
		score-ig) cmd=("$bin" score-ig --model "$dir" --tokenizer "$tok" --in "$out/traj.jsonl" --out "$out/$p.ig.jsonl") ;;
		esac
		read -r rss wall < <(measure "$p.$stage" "${cmd[@]}")
		awk -v p="$p" -v s="$stage" -v r="$rss" -v w="$wall" -v f="$fp32" 'BEGIN {
			printf "%-13s %-9s wall %8s  peak RSS %6.2f GB = %.2fx the fp32 weights (%.2f GB)\n", p, s, w, r*1024/1e9, r*1024/f, f/1e9 }'
	done
	if [[ -z "${REALSIZE_SKIP_TORCH:-}" ]]; then
		read -r trss twall < <(measure "$p.torch" "$py" tools/bench/torchref/logprobs.py "$dir" "$out/seqs.jsonl" "$out/$p.lp-torch.jsonl")
		"$py" - "$out/$p.lp.jsonl" "$out/$p.lp-torch.jsonl" "$p" "$trss" "$twall" <<'PY'
import json, sys
a = [json.loads(l)["logprobs"] for l in open(sys.argv[1])]
b = [json.loads(l)["logprobs"] for l in open(sys.argv[2])]
assert [len(x) for x in a] == [len(x) for x in b], "row lengths differ"
d = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
print(f"{sys.argv[3]:<13} logprobs  max |igsearch - PyTorch| = {d:.2e} over {sum(map(len, a))} tokens "
      f"(PyTorch: wall {sys.argv[5]}, peak RSS {int(sys.argv[4]) * 1024 / 1e9:.2f} GB)")
PY
	fi
done
