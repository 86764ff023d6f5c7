#!/usr/bin/env bash
# make bench: runs every benchmark script in scripts/bench.d in name order.
# Each compares igsearch with its named peer in the same run and prints ratios.
# BENCH_ONLY=NAME runs just scripts/bench.d/*NAME*.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out/bench
for s in scripts/bench.d/*.sh; do
	[[ -e "$s" ]] || continue
	if [[ -n "${BENCH_ONLY:-}" && "$s" != *"$BENCH_ONLY"* ]]; then continue; fi
	echo "=== $s"
	bash "$s"
done
