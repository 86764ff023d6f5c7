#!/usr/bin/env bash
# make demo (for now: the retrieval index): builds a BM25 index over the
# shipped WordNet corpus, serves it on loopback with the Search-R1 /retrieve
# API, runs a few queries through it and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/igsearch
out=out/demo
mkdir -p "$out"

echo "== build the index (testdata/corpus/wordnet-glosses.jsonl.zst, 8,020 passages)"
$bin index build --corpus testdata/corpus/wordnet-glosses.jsonl.zst --out "$out/index"
$bin index stats --index "$out/index"

echo "== start the server on a free loopback port"
log="$out/serve.log"
$bin index serve --index "$out/index" --addr 127.0.0.1:0 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 100); do
	url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" || true)"
	[[ -n "$url" ]] && break
	kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
	sleep 0.1
done
[[ -n "$url" ]] || { echo "server did not start" >&2; cat "$log" >&2; exit 1; }
echo "server at $url"
curl -sS "$url/health"

echo "== POST $url/retrieve (top 3 with scores)"
for q in "a large wild cat with a striped coat" "stringed musical instrument" "capital city of a country"; do
	echo "-- query: $q"
	curl -sS -H 'Content-Type: application/json' \
		-d "{\"queries\": [\"$q\"], \"topk\": 3, \"return_scores\": true}" "$url/retrieve"
done

echo "== a bad request gets a 4xx with a JSON error"
curl -sS -w 'HTTP %{http_code}\n' -d '{"queries": [], "topk": 3}' "$url/retrieve"

echo "== stop the server (SIGTERM, graceful)"
kill -TERM "$pid"
wait "$pid"
trap - EXIT
cat "$log"
