"""Checks that retrieval_standin.py answers byte for byte as Search-R1's
own FastAPI endpoint does. It lifts QueryRequest and retrieve_endpoint out
of retrieval_server.py (path in argv[1]; its module imports faiss and
torch, so it is not imported whole), gives them a retriever whose
batch_search is the stand-in's ranking, serves both with uvicorn and the
stand-in's own server, posts the same requests to each and prints one JSON
line per request: {"body", "fastapi": [status, text], "standin": [...]}.
Needs fastapi and uvicorn (Debian: python3-fastapi python3-uvicorn).
Usage: python3 compare_fastapi.py retrieval_server.py corpus.jsonl
"""
import ast, http.client, json, os, socket, sys, threading, time
from typing import Dict, List, Optional

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import retrieval_standin as standin_mod

server_py, corpus = sys.argv[1], sys.argv[2]
tree = ast.parse(open(server_py).read())
keep = []
for node in tree.body:
    if isinstance(node, ast.ClassDef) and node.name == "QueryRequest":
        keep.append(node)
    elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "app" for t in node.targets):
        keep.append(node)
    elif isinstance(node, ast.FunctionDef) and node.name == "retrieve_endpoint":
        keep.append(node)
assert len(keep) == 3, [type(n).__name__ for n in keep]

si = standin_mod.StandIn(corpus, 3, "dense")


class Config:
    retrieval_topk = 3


class Retriever:
    # retrieval_server.py unpacks (results, scores) whatever return_score
    # is, so the stand-in retriever always returns both.
    def batch_search(self, query_list, num=None, return_score=False):
        res = [si.search(q, num) for q in query_list]
        return [r[0] for r in res], [r[1] for r in res]


ns = {"FastAPI": FastAPI, "BaseModel": BaseModel, "List": List, "Optional": Optional, "Dict": Dict,
      "config": Config(), "retriever": Retriever()}
exec(compile(ast.Module(body=keep, type_ignores=[]), "retrieval_server.py", "exec"), ns)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


fport = free_port()
threading.Thread(target=lambda: uvicorn.run(ns["app"], host="127.0.0.1", port=fport, log_level="error"), daemon=True).start()
sserver = standin_mod.ThreadingHTTPServer(("127.0.0.1", 0), standin_mod.make_handler(si))
threading.Thread(target=sserver.serve_forever, daemon=True).start()
sport = sserver.server_address[1]


def post(port, body):
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/retrieve", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            return [r.status, r.read().decode("utf-8")]
        except ConnectionRefusedError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


for body in sys.stdin:
    body = body.strip()
    if body:
        print(json.dumps({"body": body, "fastapi": post(fport, body.encode()), "standin": post(sport, body.encode())}, ensure_ascii=False), flush=True)
