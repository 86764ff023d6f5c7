#!/usr/bin/env bash
# make bench-demo: the demo at SEEDS seeds (default 3): IG-GRPO and GRPO from
# the same warm start with the same budget; prints test EM by hop type as
# mean ± std over seeds. ITERATIONS is the RL iterations per run (default 48,
# twice the demo's).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${SEEDS:-1 2 3}"
out=out/bench-demo
mkdir -p "$out"
reports=()
for s in $seeds; do
	echo "=== seed $s" >&2
	args=(--out "$out/seed-$s" --seed "$s")
	args+=(--iterations "${ITERATIONS:-48}")
	bin/igsearch demo "${args[@]}" > "$out/seed-$s.txt"
	reports+=("$out/seed-$s/report.json")
done
go run ./tools/benchdemo "${reports[@]}" | tee "$out/summary.md"
