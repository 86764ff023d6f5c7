#!/usr/bin/env bash
# Index benchmark: igsearch vs bleve (github.com/blevesearch/bleve/v2) in the
# same run, on a synthetic Zipf corpus (BENCH_DOCS passages, default 1M) and on
# the shipped WordNet corpus. Builds run in child processes for peak RSS.
# bleve lives in the separate tools/bench module, never in the main module.
# BENCH_QUERIES sets the number of top-3 queries (default 300).
set -euo pipefail
cd "$(dirname "$0")/../.."
docs="${BENCH_DOCS:-1000000}"
queries="${BENCH_QUERIES:-300}"
mkdir -p out/bench
(cd tools/bench && go build -o ../../out/bench/indexbench ./indexbench)

synth="out/bench/synth-$docs.jsonl"
if [[ ! -s "$synth" ]]; then
	echo "generating $synth ($docs passages)" >&2
	bin/igsearch index synth --docs "$docs" --out "$synth"
fi
out/bench/indexbench --corpus "$synth" --work out/bench/index-work --queries "$queries" \
	--label "synthetic Zipf ($docs passages)" --json "out/bench/index-synth-$docs.json"
out/bench/indexbench --corpus testdata/corpus/wordnet-glosses.jsonl.zst --work out/bench/index-work \
	--queries "$queries" --label "WordNet glosses" --json out/bench/index-wordnet.json
rm -rf out/bench/index-work
