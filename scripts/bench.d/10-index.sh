#!/usr/bin/env bash
# Index benchmark: igsearch vs bleve (github.com/blevesearch/bleve/v2) in the
# same run, on a synthetic Zipf corpus (BENCH_DOCS passages, default 1M) and on
# the shipped WordNet corpus. Builds run in child processes for peak RSS.
# bleve lives in the separate tools/bench module, never in the main module.
# BENCH_QUERIES sets the number of top-3 queries (default 300);
# BENCH_INDEX_RAM_MB igsearch's --ram-buffer (default 256).
# BENCH_INDEX_BIG=N also builds N synthetic passages (21000000: wiki-18's
# size) with bin/igsearch under /usr/bin/time -v and reports wall time, peak
# RSS and index size (long: about an hour on 2 busy cores; the corpus takes
# 11 GB, the index 9 GB, both under out/bench).
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
ram="${BENCH_INDEX_RAM_MB:-256}"
out/bench/indexbench --corpus "$synth" --work out/bench/index-work --queries "$queries" --ram-buffer "$ram" \
	--label "synthetic Zipf ($docs passages)" --json "out/bench/index-synth-$docs.json"
out/bench/indexbench --corpus testdata/corpus/wordnet-glosses.jsonl.zst --work out/bench/index-work \
	--queries "$queries" --label "WordNet glosses" --json out/bench/index-wordnet.json
rm -rf out/bench/index-work

if [[ -n "${BENCH_INDEX_BIG:-}" ]]; then
	big="out/bench/synth-$BENCH_INDEX_BIG.jsonl"
	if [[ ! -s "$big" ]]; then
		echo "generating $big ($BENCH_INDEX_BIG passages)" >&2
		bin/igsearch index synth --docs "$BENCH_INDEX_BIG" --out "$big"
	fi
	rm -rf out/bench/index-big
	/usr/bin/time -v bin/igsearch index build --corpus "$big" --out out/bench/index-big --ram-buffer "$ram" 2> out/bench/index-big.time
	wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' out/bench/index-big.time)
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' out/bench/index-big.time)
	size=$(du -sb out/bench/index-big | cut -f1)
	grep '^indexed' out/bench/index-big.time >&2
	printf '| bounded-memory build, %s passages, --ram-buffer %s | wall %s, peak RSS %.2f GiB, index %.2f GB |\n' \
		"$BENCH_INDEX_BIG" "$ram" "$wall" "$(echo "$rss / 1048576" | bc -l)" "$(echo "$size / 1000000000" | bc -l)"
	rm -rf out/bench/index-big
fi
