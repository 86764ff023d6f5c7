"""A Qwen2 forward in PyTorch eager with a KV cache: the peer that
scripts/bench.d/40-policy.sh measures igsearch's policy against.

It follows Hugging Face modeling_qwen2.py (RMSNorm, rotary with rotate_half,
GQA by repeating KV heads, q/k/v biases, SiLU-gated MLP, tied or untied
lm_head) and reads an HF checkpoint (config.json + model.safetensors, F32)
without the safetensors package.
"""
import json, os, struct
import torch
import torch.nn.functional as F


def load_checkpoint(d):
    """config.json and the weights as float32 tensors, from model.safetensors
    or the shards that model.safetensors.index.json lists; F32, BF16 or F16."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    w = {}
    for name in files:
        with open(os.path.join(d, name), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header, data = json.loads(f.read(n)), bytearray(f.read())
        for key, t in header.items():
            if key != "__metadata__":
                a, b = t["data_offsets"]
                w[key] = torch.frombuffer(data[a:b], dtype=dtypes[t["dtype"]]).reshape(t["shape"]).float()
        del data
    return cfg, w


class Qwen2:
    def __init__(self, cfg, w):
        self.c, self.w = cfg, w
        self.H, self.KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.D = cfg["hidden_size"] // self.H
        self.inv = 1.0 / cfg["rope_theta"] ** (torch.arange(0, self.D, 2).float() / self.D)
        self.head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]

    def rms(self, x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["rms_norm_eps"]) * self.w[name]

    def lin(self, x, name, bias=False):
        y = x @ self.w[name + ".weight"].T
        return y + self.w[name + ".bias"] if bias else y

    @torch.no_grad()
    def forward(self, ids, mask, pos, cache=None, last_only=False):
        """ids, pos [B,T], mask [B,P+T] int64; cache: list of (k, v) [B,KV,P,D].
        Returns logits [B,T or 1,V] and the new cache."""
        B, T = ids.shape
        S = mask.shape[1]
        x = self.w["model.embed_tokens.weight"][ids]
        f = pos[..., None].float() * self.inv
        emb = torch.cat([f, f], -1)[:, None]
        cos, sin = emb.cos(), emb.sin()
        rot = lambda t: torch.cat([-t[..., self.D // 2:], t[..., : self.D // 2]], -1)
        allowed = torch.ones(T, S, dtype=torch.bool).tril(S - T)[None] & mask[:, None, :].bool()
        bias = torch.zeros(B, 1, T, S).masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)
        new = []
        for l in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = self.rms(x, p + "input_layernorm.weight")
            q = self.lin(h, p + "self_attn.q_proj", True).view(B, T, self.H, self.D).transpose(1, 2)
            k = self.lin(h, p + "self_attn.k_proj", True).view(B, T, self.KV, self.D).transpose(1, 2)
            v = self.lin(h, p + "self_attn.v_proj", True).view(B, T, self.KV, self.D).transpose(1, 2)
            q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
            if cache is not None:
                k, v = torch.cat([cache[l][0], k], 2), torch.cat([cache[l][1], v], 2)
            new.append((k, v))
            k, v = k.repeat_interleave(self.H // self.KV, 1), v.repeat_interleave(self.H // self.KV, 1)
            a = torch.softmax(q @ k.transpose(-1, -2) / self.D ** 0.5 + bias, -1) @ v
            x = x + self.lin(a.transpose(1, 2).reshape(B, T, -1), p + "self_attn.o_proj")
            h = self.rms(x, p + "post_attention_layernorm.weight")
            x = x + self.lin(F.silu(self.lin(h, p + "mlp.gate_proj")) * self.lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = self.rms(x, "model.norm.weight")
        if last_only:
            x = x[:, -1:]
        return x @ self.head.T, new
