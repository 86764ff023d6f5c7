"""A stand-in for Search-R1's search_r1/search/retrieval_server.py that
answers in exactly its format, with Python's standard library only (no
FastAPI, FAISS or e5 encoder), for igsearch's tests of --retriever URL.

What is the same as retrieval_server.py (PeterGriffinJin/Search-R1 at
a14dc3a4ffc6fe88c1e95038d9738e21ba3f7a06):
  - POST /retrieve with {"queries": [str], "topk": int|null, "return_scores":
    bool}; `if not request.topk` → the server's default --topk (so 0 and null
    both mean it); queries must be a list of strings, else 422 with
    {"detail": [...]} as FastAPI/pydantic answer;
  - the answer {"result": [list per query]}, each entry
    {"document": ROW, "score": float} with return_scores, else ROW;
  - --mode dense: ROW is the whole corpus row as loaded (every field, e.g.
    {"id", "contents"}), exactly topk of them (a flat FAISS index always
    returns k), scores as Python floats (batch_scores.tolist());
  - --mode bm25 (its pyserini variant with stored docs): ROW is
    {"title", "text", "contents"} built from contents as BM25Retriever does,
    no "id"; fewer than topk when fewer passages match, [] for none;
  - the bytes: FastAPI's JSONResponse, json.dumps(ensure_ascii=False,
    allow_nan=False, indent=None, separators=(",", ":")).
What differs: the ranking. A bag-of-words cosine stands in for e5 + FAISS
(and for BM25); ties go to the lower row number.

Usage: python3 retrieval_standin.py --corpus FILE.jsonl [--topk 3]
       [--mode dense|bm25] [--port 0] [--log FILE]
--log appends one JSON line per query answered: {"query", "ids"} (the
corpus rows' ids, in rank order), for tests to check what was served.
Prints "listening on http://127.0.0.1:PORT" on stdout when ready.
"""
import argparse
import json
import math
import re
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORD = re.compile(r"\w+")


def bag(text):
    return Counter(w.lower() for w in WORD.findall(text))


def cosine(q, d):
    dot = sum(v * d.get(w, 0) for w, v in q.items())
    if dot == 0:
        return 0.0
    return dot / math.sqrt(sum(v * v for v in q.values()) * sum(v * v for v in d.values()))


class StandIn:
    def __init__(self, corpus_path, topk, mode, log=None):
        self.log = open(log, "a", encoding="utf-8") if log else None
        self.lock = threading.Lock()
        with open(corpus_path, encoding="utf-8") as f:
            self.rows = [json.loads(line) for line in f if line.strip()]
        self.bags = [bag(r["contents"]) for r in self.rows]
        self.topk, self.mode = topk, mode

    def search(self, query, num):
        q = bag(query)
        scored = sorted(((cosine(q, b), i) for i, b in enumerate(self.bags)), key=lambda x: (-x[0], x[1]))
        if self.mode == "bm25":
            scored = [s for s in scored if s[0] > 0]
        scored = scored[:num]
        docs = []
        for _, i in scored:
            if self.mode == "bm25":
                content = self.rows[i]["contents"]
                docs.append({
                    "title": content.split("\n")[0].strip("\""),
                    "text": "\n".join(content.split("\n")[1:]),
                    "contents": content,
                })
            else:
                docs.append(self.rows[i])
        return docs, [s for s, _ in scored]


def validation_error(body):
    """Roughly pydantic's 422 for QueryRequest (only its shape matters)."""
    if not isinstance(body, dict) or "queries" not in body:
        return [{"loc": ["body", "queries"], "msg": "field required", "type": "value_error.missing"}]
    qs = body["queries"]
    if not isinstance(qs, list) or not all(isinstance(q, str) for q in qs):
        return [{"loc": ["body", "queries"], "msg": "value is not a valid list of str", "type": "type_error"}]
    tk = body.get("topk")
    if tk is not None and (isinstance(tk, bool) or not isinstance(tk, int)):
        return [{"loc": ["body", "topk"], "msg": "value is not a valid integer", "type": "type_error.integer"}]
    return None


def make_handler(standin):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, obj):
            data = json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            if self.path != "/retrieve":
                return self.answer(404, {"detail": "Not Found"})
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                body = json.loads(raw)
            except ValueError:
                return self.answer(422, {"detail": [{"loc": ["body"], "msg": "JSON decode error", "type": "value_error.jsondecode"}]})
            err = validation_error(body)
            if err:
                return self.answer(422, {"detail": err})
            topk = body.get("topk")
            if not topk:
                topk = standin.topk  # fallback to default, as retrieval_server.py
            return_scores = bool(body.get("return_scores", False))
            resp = []
            for q in body["queries"]:
                docs, scores = standin.search(q, topk)
                if standin.log:
                    with standin.lock:
                        standin.log.write(json.dumps({"query": q, "ids": [d.get("id") for d in docs]}) + "\n")
                        standin.log.flush()
                if return_scores:
                    resp.append([{"document": d, "score": s} for d, s in zip(docs, scores)])
                else:
                    resp.append(docs)
            self.answer(200, {"result": resp})

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--topk", type=int, default=3)
    ap.add_argument("--mode", choices=["dense", "bm25"], default="dense")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(StandIn(a.corpus, a.topk, a.mode, a.log)))
    print(f"listening on http://127.0.0.1:{srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
