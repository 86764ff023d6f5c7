#!/usr/bin/env bash
# Tokenizer: single-core encode throughput (MB/s of UTF-8 input) of igsearch's
# tokenize package, github.com/pkoukk/tiktoken-go given the same Qwen2.5
# vocabulary (tools/bench/tokbench), and the Hugging Face JavaScript tokenizer
# @huggingface/tokenizers@0.2.0 under Node, on the same 12 MB of English prose
# and Go code (built by `tokbench text` from /usr/share/common-licenses and the
# Go standard library's source). Go runs with GOMAXPROCS=1; Node runs its
# JavaScript on one thread. The output is kept in out/bench/tokenize.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

cache="${IGSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/igsearch}"
tok="${IGSEARCH_QWEN_TOKENIZER:-$cache/tokenizers/qwen2.5/tokenizer.json}"
if [[ ! -f "$tok" ]]; then
	echo "20-tokenize: $tok not found; run make setup" >&2
	exit 1
fi
out=out/bench
mkdir -p "$out"

# The JS peer lives in the cache, not in the repo.
nodedir="$cache/bench-node"
if [[ ! -f "$nodedir/node_modules/@huggingface/tokenizers/package.json" ]] ||
	! grep -q '"version": "0.2.0"' "$nodedir/node_modules/@huggingface/tokenizers/package.json"; then
	command -v npm >/dev/null || { echo "20-tokenize: npm is required for the JavaScript peer" >&2; exit 1; }
	mkdir -p "$nodedir"
	npm install --prefix "$nodedir" --no-audit --no-fund --silent @huggingface/tokenizers@0.2.0 >&2
fi

(cd tools/bench && go build -o "../../$out/tokbench" ./tokbench)
text="$out/tokenize-text.jsonl"
"$out/tokbench" text --out "$text"

log="$out/tokenize.txt"
{
	GOMAXPROCS=1 "$out/tokbench" run --tokenizer "$tok" --text "$text" --passes 3
	node tools/bench/tokbench/hfjs.mjs "$nodedir" "$tok" "$text" 2
} | tee "$log" | grep -v '^RESULT'

awk '$1 == "RESULT" { v[$2] = $3 }
END {
	printf "ratios: igsearch / @huggingface/tokenizers = %.1fx (target >= 5x), igsearch / tiktoken-go = %.1fx (target >= 2x), igsearch = %.1f MB/s per core (target >= 10)\n",
		v["igsearch"] / v["hfjs"], v["igsearch"] / v["tiktoken"], v["igsearch"]
}' "$log"
