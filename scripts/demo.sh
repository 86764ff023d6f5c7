#!/usr/bin/env bash
# make demo: the embedded default. `igsearch demo` generates a synthetic
# knowledge world, builds its BM25 index, warm-starts a tiny Qwen2 policy by
# SFT, trains it with IG-GRPO and with plain GRPO, and prints the EM table
# and IG statistics. Then the world's index is served on loopback with the
# Search-R1 /retrieve API, as the standalone retrieval tool, and queried.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/igsearch
out=out/demo
mkdir -p "$out"

$bin demo --out "$out" "$@"

echo
echo "== the retrieval server over the world's index"
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

echo "== POST $url/retrieve (top 3 with scores), for the first test questions"
head -n 2 "$out/world/test.jsonl" | sed -E 's/.*"question":"([^"]*)".*/\1/' | while read -r q; do
	echo "-- query: $q"
	curl -sS -H 'Content-Type: application/json' \
		-d "{\"queries\": [\"$q\"], \"topk\": 3, \"return_scores\": true}" "$url/retrieve"
	echo
done

echo "== a bad request gets a 4xx with a JSON error"
curl -sS -w ' HTTP %{http_code}\n' -d '{"queries": [1, 2], "topk": 3}' "$url/retrieve"

echo "== stop the server (SIGTERM, graceful)"
kill -TERM "$pid"
wait "$pid"
trap - EXIT
cat "$log"
