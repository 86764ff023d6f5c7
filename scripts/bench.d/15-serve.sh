#!/usr/bin/env bash
# Retrieval server under Search-R1's load: `igsearch index serve` over a
# synthetic Zipf index (BENCH_SERVE_DOCS passages, default 200000), probed by
# tools/bench/serveprobe/serveprobe.py (python3, standard library): an empty
# turn, topk 0/null, a 2,560-query training turn (train_grpo.sh: 512 × 5),
# 1,024 queries × topk 100 alone and eight at once (time, answer size, peak
# RSS, RSS afterwards), and SIGTERM with a stalled upload open. Then the
# response cap (--max-response 16 MiB) on the 1,024 × 100 request. The
# output is kept in out/bench/serve.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
docs="${BENCH_SERVE_DOCS:-200000}"
out=out/bench
mkdir -p "$out"
command -v python3 >/dev/null || { echo "15-serve: python3 is required for the probe" >&2; exit 1; }
synth="$out/synth-$docs.jsonl"
if [[ ! -s "$synth" ]]; then
	bin/igsearch index synth --docs "$docs" --out "$synth"
fi
ix="$out/serve-index-$docs"
if [[ ! -f "$ix/meta.bin" ]]; then
	bin/igsearch index build --corpus "$synth" --out "$ix" --force
fi
{
	python3 tools/bench/serveprobe/serveprobe.py bin/igsearch "$ix" "$synth" "index serve, $docs passages"
	python3 tools/bench/serveprobe/serveprobe.py bin/igsearch "$ix" "$synth" "index serve --max-response 16777216" --max-response 16777216 |
		grep -E '^(==|1,024 x topk 100)'
} | tee "$out/serve.txt"
