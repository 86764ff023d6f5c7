"""PyTorch eager peer of igsearch's GRPO train step (scripts/bench.d/50-trainer.sh).

A Qwen2 forward as Hugging Face modeling_qwen2.py computes it (RMSNorm,
rotary with rotate_half, GQA by repeating KV heads, q/k/v biases, SiLU-gated
MLP, tied or untied lm_head, positions cumsum(mask)-1 for left padding),
trained with autograd, clip_grad_norm_ and torch.optim.AdamW on the GRPO
clipped surrogate with the k3 KL penalty of issue 5 (clamped to ±10 per
token, as veRL's low_var_kl and igsearch's trainer), on the checkpoint and
batch file (grpo_step.json layout) that `trainbench prepare` writes.

usage: /usr/bin/python3 train.py MODEL_DIR BATCH.json [--steps 3]
Prints one "RESULT torch {json}" line.
"""
import argparse, json, math, os, resource, struct, time
import torch
import torch.nn.functional as F


def load_checkpoint(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    with open(os.path.join(d, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header, data = json.loads(f.read(n)), bytearray(f.read())
    w = {}
    for name, t in header.items():
        if name != "__metadata__":
            assert t["dtype"] == "F32", (name, t["dtype"])
            a, b = t["data_offsets"]
            w[name] = torch.nn.Parameter(torch.frombuffer(data[a:b], dtype=torch.float32).reshape(t["shape"]).clone())
    return cfg, w


def token_logprobs(c, w, ids, mask):
    B, T = ids.shape
    H, KV = c["num_attention_heads"], c["num_key_value_heads"]
    D = c["hidden_size"] // H
    eps = c["rms_norm_eps"]
    rms = lambda x, n: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w[n]
    lin = lambda x, n, bias=False: F.linear(x, w[n + ".weight"], w[n + ".bias"] if bias else None)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    inv = 1.0 / c["rope_theta"] ** (torch.arange(0, D, 2).float() / D)
    f = pos[..., None].float() * inv
    emb = torch.cat((f, f), -1)[:, None]  # [B,1,T,D]
    cos, sin = emb.cos(), emb.sin()
    rope = lambda x: x * cos + torch.cat((-x[..., D // 2:], x[..., : D // 2]), -1) * sin
    keep = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & mask[:, None, None, :].bool()
    bias = torch.zeros(B, 1, T, T).masked_fill(~keep, torch.finfo(torch.float32).min)
    x = w["model.embed_tokens.weight"][ids]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, p + "input_layernorm.weight")
        q = lin(h, p + "self_attn.q_proj", True).view(B, T, H, D).transpose(1, 2)
        k = lin(h, p + "self_attn.k_proj", True).view(B, T, KV, D).transpose(1, 2)
        v = lin(h, p + "self_attn.v_proj", True).view(B, T, KV, D).transpose(1, 2)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + bias, -1) @ v
        x = x + lin(a.transpose(1, 2).reshape(B, T, H * D), p + "self_attn.o_proj")
        h = rms(x, p + "post_attention_layernorm.weight")
        x = x + lin(F.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, "model.norm.weight")
    head = w["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else w["lm_head.weight"]
    logp = torch.log_softmax(F.linear(x[:, :-1], head), -1)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("batch")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    c, w = load_checkpoint(args.model)
    bf = json.load(open(args.batch))
    ids, mask = torch.tensor(bf["input_ids"]), torch.tensor(bf["attention_mask"])
    lm, adv = torch.tensor(bf["loss_mask"]), torch.tensor(bf["advantages"])
    old, ref = torch.tensor(bf["old_logprobs"]), torch.tensor(bf["ref_logprobs"])
    eps, beta = bf.get("clip_eps", 0.2), bf.get("kl_beta", 0.001)
    eps_high = bf.get("clip_eps_high") or eps
    params = list(w.values())
    opt = torch.optim.AdamW(params, lr=bf["lr"], betas=tuple(bf["adam_betas"]), eps=bf["adam_eps"],
                            weight_decay=bf["weight_decay"])
    times, first = [], None
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        lp = token_logprobs(c, w, ids, mask)
        ratio = torch.exp(lp - old)
        pg = -torch.min(ratio * adv, ratio.clamp(1 - eps, 1 + eps_high) * adv)
        kl = (torch.exp(ref - lp) - (ref - lp) - 1).clamp(-10, 10)  # veRL's low_var_kl, as trainer.KLClamp
        loss = ((pg + beta * kl) * lm).sum() / lm.sum()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, bf["max_grad_norm"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if first is None:
            first = (loss.item(), norm.item())
            print(f"torch warm-up step {dt:.2f}s loss {first[0]:.6g} grad_norm {first[1]:.6g}", file=os.sys.stderr, flush=True)
        else:
            times.append(dt)
            print(f"torch step {i} {dt:.2f}s", file=os.sys.stderr, flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT torch " + json.dumps({
        "impl": "torch", "step_s": sum(times) / len(times), "step_min_s": min(times), "steps": len(times),
        "loss": first[0], "grad_norm": first[1], "peak_rss_mb": rss, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "blas": os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"),
        "batch": ids.shape[0], "seq": ids.shape[1]}), flush=True)


if __name__ == "__main__":
    main()
