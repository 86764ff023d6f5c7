#!/bin/bash
# Runs the array jobs' logic on this machine, without Slurm: each array task
# is a separate process with SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT
# set, then merge.sbatch; the results are compared byte for byte with the
# unsharded commands. Exits non-zero on any difference.
#
#   IGSEARCH=bin/igsearch examples/slurm/run-locally.sh [N]
#
# With MODEL (a policy directory) and TRAJ (trajectories JSONL) set it also
# runs score-ig.sbatch on the CPU.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
n="${1:-3}"
IGSEARCH="$(realpath "${IGSEARCH:-bin/igsearch}")"
export IGSEARCH
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

array() { # array SCRIPT: runs the N tasks of an array job at once
	local pids=() i
	for ((i = 0; i < n; i++)); do
		SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=$n SLURM_CPUS_PER_TASK=1 bash "$here/$1" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
}
same() { # same A B WHAT
	if cmp -s "$1" "$2"; then echo "ok: $3 ($(wc -l < "$1") lines, identical)"; else echo "FAIL: $3: $1 and $2 differ" >&2; exit 1; fi
}

# Index shards: search them together and compare with the unsharded index.
"$IGSEARCH" index synth --docs 5000 --out "$work/corpus.jsonl" --seed 3
"$IGSEARCH" index build --corpus "$work/corpus.jsonl" --out "$work/whole" --workers 1 2>/dev/null
CORPUS="$work/corpus.jsonl" OUT="$work/shards" RAM_BUFFER_MB=1 array index.sbatch 2>/dev/null
# Queries: words of the corpus's first passages.
head -n 20 "$work/corpus.jsonl" | sed 's/.*\\n//; s/[".}]//g' | cut -d' ' -f1-3 |
	awk '{printf "{\"id\":\"q%d\",\"query\":\"%s\"}\n", NR, $0}' > "$work/q.jsonl"
shards=$(ls -d "$work"/shards/index-* | paste -sd,)
"$IGSEARCH" index search --index "$work/whole" --k 10 --queries "$work/q.jsonl" > "$work/whole.hits"
"$IGSEARCH" index search --index "$shards" --k 10 --queries "$work/q.jsonl" > "$work/shards.hits"
[[ $(grep -o '"doc"' "$work/whole.hits" | wc -l) -ge 100 ]] || { echo "FAIL: too few hits" >&2; exit 1; }
same "$work/whole.hits" "$work/shards.hits" "index: $n shards searched as one = the unsharded index"

# Rewards: array + merge vs one process.
for ((r = 0; r < 50; r++)); do
	printf '{"id":%d,"response":"<answer> city %d </answer>","golden_answers":["City 1","city 4"]}\n' "$r" "$((r % 7))"
done > "$work/rows.jsonl"
"$IGSEARCH" reward --in "$work/rows.jsonl" --out "$work/reward-whole.jsonl" 2>/dev/null
IN="$work/rows.jsonl" OUT="$work/reward" array reward.sbatch 2>/dev/null
OUT="$work/reward" N=$n BLOCK=1 ROWS=50 bash "$here/merge.sbatch"
same "$work/reward-whole.jsonl" "$work/reward/merged.jsonl" "reward: $n array tasks + merge = one process"

if [[ -n "${MODEL:-}" && -n "${TRAJ:-}" ]]; then
	"$IGSEARCH" score-ig --model "$MODEL" --in "$TRAJ" --out "$work/ig-whole.jsonl" --batch-size 4 --device cpu 2>/dev/null
	MODEL="$MODEL" IN="$TRAJ" OUT="$work/ig" BATCH=4 DEVICE=cpu array score-ig.sbatch 2>/dev/null
	OUT="$work/ig" N=$n BLOCK=4 bash "$here/merge.sbatch"
	same "$work/ig-whole.jsonl" "$work/ig/merged.jsonl" "score-ig: $n array tasks + merge = one process"
fi
