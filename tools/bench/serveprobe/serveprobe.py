"""Load probe of `igsearch index serve` (scripts/bench.d/15-serve.sh).

Starts BIN index serve over INDEX, sends what Search-R1 sends (an empty
turn, topk 0 and null, a 2,560-query training turn twice), one request of
1,024 queries × topk 100 and then eight of them at once, and reports
status, answer size, time and the server's RSS (VmRSS, VmHWM from /proc),
then SIGTERM with a stalled upload open (exit code, time, what the upload
got). Query words come from the first rows of CORPUS.

Usage: python3 serveprobe.py BIN INDEX CORPUS LABEL [serve flags...]
"""
import http.client, json, os, random, signal, socket, subprocess, sys, threading, time

BIN, IX, CORPUS, LABEL = sys.argv[1:5]
EXTRA = sys.argv[5:]
words = []
with open(CORPUS) as f:
    for i, line in enumerate(f):
        if i >= 200: break
        words += json.loads(line)["contents"].split("\n", 1)[1].split()[:20]
random.seed(1)
def queries(n): return [" ".join(random.choice(words) for _ in range(5)) for _ in range(n)]

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
p = subprocess.Popen([BIN, "index", "serve", "--index", IX, "--addr", f"127.0.0.1:{port}"] + EXTRA, stderr=subprocess.PIPE, text=True)
while "listening" not in p.stderr.readline(): pass
threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()

def rss():
    st = open(f"/proc/{p.pid}/status").read()
    g = lambda k: int(next(l for l in st.splitlines() if l.startswith(k)).split()[1]) // 1024
    return g("VmRSS:"), g("VmHWM:")

def post(body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    data = json.dumps(body).encode()
    t = time.time()
    c.request("POST", "/retrieve", data, {"Content-Type": "application/json"})
    r = c.getresponse(); b = r.read(); c.close()
    return r.status, len(b), time.time() - t, b[:160]

print(f"== {LABEL}: RSS at start {rss()} MB (now, peak)")
for name, body in [
    ("empty turn", {"queries": [], "topk": 3, "return_scores": True}),
    ("topk 0", {"queries": ["bax dax"], "topk": 0, "return_scores": True}),
    ("topk null", {"queries": ["bax dax"], "topk": None, "return_scores": True}),
]:
    s, n, dt, head = post(body)
    print(f"{name}: status {s}, {n} bytes, {head[:100]!r}")
turn = {"queries": queries(2560), "topk": 3, "return_scores": True}
print(f"2,560-query turn body: {len(json.dumps(turn))} bytes")
for i in range(2):
    s, n, dt, head = post(turn)
    print(f"2,560 queries x topk 3: status {s}, {n} bytes, {dt:.2f} s {head[:80] if s != 200 else ''!r}; RSS {rss()}")
big = {"queries": queries(1024), "topk": 100, "return_scores": True}
s, n, dt, head = post(big)
print(f"1,024 x topk 100: status {s}, {n/1e6:.1f} MB, {dt:.2f} s {head if s != 200 else ''!r}; RSS {rss()}")
res = []
def one(): res.append(post(big))
ts = [threading.Thread(target=one) for _ in range(8)]
t0 = time.time()
for t in ts: t.start()
for t in ts: t.join()
print(f"8 concurrent 1,024 x 100: statuses {[r[0] for r in res]}, {time.time()-t0:.1f} s wall; RSS (now, peak) {rss()}")
time.sleep(5)
print(f"  RSS 5 s after: {rss()}")
time.sleep(25)
print(f"  RSS 30 s after: {rss()}")
# slow body held?
sk = socket.create_connection(("127.0.0.1", port))
sk.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"queries\": [")
time.sleep(0.5)
t = time.time()
p.send_signal(signal.SIGTERM)
try:
    code = p.wait(timeout=60)
except subprocess.TimeoutExpired:
    code = "no exit in 60 s"
sk.settimeout(1)
try: got = sk.recv(100)
except Exception as e: got = repr(e)
print(f"SIGTERM with a stalled upload open: exit {code} after {time.time()-t:.2f} s; the upload got {got[:40]!r}")
