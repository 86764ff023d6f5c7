"""Prefill, greedy decode and scoring throughput of the PyTorch reference
(qwen2_ref.py) on an HF checkpoint; one "BENCH {json}" line per result, the
same workloads as pipeline/policy's TestPolicyBench.

usage: python3 bench.py MODEL_DIR [--prompt 128] [--decode 32]
"""
import argparse, json, os, time
import torch
from qwen2_ref import Qwen2, load_checkpoint

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--prompt", type=int, default=128)
ap.add_argument("--decode", type=int, default=32)
args = ap.parse_args()
torch.set_num_threads(os.cpu_count())
cfg, w = load_checkpoint(args.model)
m = Qwen2(cfg, w)
g = torch.Generator().manual_seed(9)


def report(what, batch, tokens, sec):
    print("BENCH " + json.dumps({"impl": "torch", "what": what, "batch": batch, "tokens": tokens, "seconds": sec,
                                 "tokens_per_s": tokens / sec, "threads": torch.get_num_threads(),
                                 "torch": torch.__version__, "blas": blas(),
                                 "prompt": args.prompt}), flush=True)


def blas():
    """The BLAS library torch loaded (Debian's torch uses the system one)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    libs = [l.split()[-1] for l in open("/proc/self/maps") if "blas" in l]
    return os.path.basename(libs[0]) if libs else "none"


def best(reps, f):
    return min(f() for _ in range(reps))


for B in (1, 16):
    ids = torch.randint(0, cfg["vocab_size"], (B, args.prompt), generator=g)
    mask = torch.ones(B, args.prompt, dtype=torch.long)
    pos = torch.arange(args.prompt).expand(B, -1)
    times = {"prefill": [], "decode": []}

    def run():
        t0 = time.perf_counter()
        logits, cache = m.forward(ids, mask, pos, None, last_only=True)
        times["prefill"].append(time.perf_counter() - t0)
        tok, msk = logits[:, -1].argmax(-1, keepdim=True), mask
        t0 = time.perf_counter()
        for s in range(args.decode):
            msk = torch.cat([msk, torch.ones(B, 1, dtype=torch.long)], 1)
            p = torch.full((B, 1), msk.shape[1] - 1)
            logits, cache = m.forward(tok, msk, p, cache)
            torch.log_softmax(logits[:, -1], -1)  # the sampled token's log-prob, as igsearch returns it
            tok = logits[:, -1].argmax(-1, keepdim=True)
        times["decode"].append(time.perf_counter() - t0)
        return 0

    for _ in range(3):
        run()
    report("prefill", B, B * args.prompt, min(times["prefill"]))
    report("decode", B, B * args.decode, min(times["decode"]))

    def score():
        t0 = time.perf_counter()
        logits, _ = m.forward(ids, mask, pos)
        torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])
        return time.perf_counter() - t0

    report("score", B, B * args.prompt, best(3, score))
