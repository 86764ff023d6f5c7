#!/usr/bin/env bash
# Device residency on the CPU, before against after, in the same run: the
# host KV cache (--host-kv, Options.HostKV: the path before IoBinding) and
# the resident one (the default), at the ~100M benchmark shape and the
# published 0.5B shape (random bf16 weights, seed 1, made at run time):
#   - prefill, greedy decode and scoring tokens/s at B=1 and B=16, with the
#     bytes that crossed the Go/ORT boundary per token (policy's
#     TestPolicyBench, IGSEARCH_POLICY_BENCH_KV=both);
#   - igsearch score-ig on 4 logged two-search trajectories (45-realsize.sh's
#     fixture), wall time, peak RSS and --report-transfers.
# Knobs: RESIDENT_SHAPES (default "100m qwen2.5-0.5b"), RESIDENT_DECODE
# (decode steps, default 16).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$PWD/out/bench/resident
mkdir -p "$out"
bin=$PWD/bin/igsearch
tok=${IGSEARCH_QWEN_TOKENIZER:?run through make bench (it sets IGSEARCH_QWEN_TOKENIZER)}
shapes=${RESIDENT_SHAPES:-100m qwen2.5-0.5b}
decode=${RESIDENT_DECODE:-16}

python3 tools/bench/logged_trajectories.py "$out/traj.jsonl"

for shape in $shapes; do
	dir=$out/$shape
	preset=""
	[[ $shape == 100m ]] || preset=$shape
	echo "== $shape: policy throughput, host KV vs resident (same process)"
	IGSEARCH_POLICY_BENCH="$dir" IGSEARCH_POLICY_BENCH_PRESET="$preset" IGSEARCH_POLICY_BENCH_KV=both \
		IGSEARCH_POLICY_BENCH_DECODE="$decode" go test -count=1 -run TestPolicyBench -timeout 60m ./policy/ -v 2>&1 |
		grep '^BENCH' | sed 's/^BENCH //' >"$out/$shape.policy.jsonl"
	python3 - "$out/$shape.policy.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:  # the best of the alternated rounds
    k = (r["what"], r["batch"], r.get("kv"))
    if r["what"] != "membw" and (k not in by or r["tokens_per_s"] > by[k]["tokens_per_s"]):
        by[k] = r
print(f'{"phase":8} {"B":>3} {"host tok/s":>11} {"resident":>9} {"ratio":>6} {"host B/tok":>12} {"resident B/tok":>14}')
for (what, b, kv), r in sorted(by.items()):
    if kv != "resident" or (what, b, "host") not in by:
        continue
    h = by[(what, b, "host")]
    print(f'{what:8} {b:3d} {h["tokens_per_s"]:11.1f} {r["tokens_per_s"]:9.1f} {r["tokens_per_s"]/h["tokens_per_s"]:5.2f}x '
          f'{h["boundary_bytes_per_token"]:12.0f} {r["boundary_bytes_per_token"]:14.0f}')
PY
	echo "== $shape: score-ig, host KV vs resident"
	for kv in host resident; do
		flag=()
		[[ $kv == host ]] && flag=(--host-kv)
		/usr/bin/time -v "$bin" score-ig --model "$dir" --tokenizer "$tok" --in "$out/traj.jsonl" \
			--out "$out/$shape.$kv.ig.jsonl" --report-transfers "${flag[@]}" 2>"$out/$shape.$kv.ig.log" >/dev/null
		wall=$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$out/$shape.$kv.ig.log")
		rss=$(awk -F': ' '/Maximum resident/ {printf "%.2f GB", $2*1024/1e9}' "$out/$shape.$kv.ig.log")
		echo "score-ig $kv: wall $wall, peak RSS $rss"
		grep '^transfers' "$out/$shape.$kv.ig.log" | sed 's/^/    /' || true
	done
	cmp <(python3 -c 'import json,sys; [print(json.dumps(json.loads(l).get("steps", json.loads(l)))) for l in open(sys.argv[1])]' "$out/$shape.host.ig.jsonl") \
		<(python3 -c 'import json,sys; [print(json.dumps(json.loads(l).get("steps", json.loads(l)))) for l in open(sys.argv[1])]' "$out/$shape.resident.ig.jsonl") >/dev/null &&
		echo "score-ig outputs identical" || echo "score-ig outputs differ (see $out/$shape.*.ig.jsonl)"
done
