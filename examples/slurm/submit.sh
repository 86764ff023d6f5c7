#!/bin/bash
# Submit score-ig as an N-task array and the merge as a job that runs when
# every task has succeeded (afterok).
#
#   MODEL=/shared/model IN=/shared/rollouts.jsonl OUT=/shared/ig N=8 ./submit.sh
set -euo pipefail
cd "$(dirname "$0")"
: "${N:?set N, the number of shards}"
export BATCH="${BATCH:-256}"
jid=$(sbatch --parsable --array="0-$((N - 1))" --export=ALL score-ig.sbatch)
sbatch --dependency="afterok:${jid%%;*}" --export="ALL,N=$N,BLOCK=$BATCH" merge.sbatch
