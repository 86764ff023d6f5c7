"""Per-token log-probs of the PyTorch reference (qwen2_ref.py), the
independent forward that scripts/bench.d/45-realsize.sh checks
`igsearch logprobs` against at the published Qwen2.5 shapes.

usage: python3 logprobs.py MODEL_DIR IN.jsonl OUT.jsonl
IN rows {"input_ids": [...]}; OUT rows {"logprobs": [...]} (n-1 values,
log p(ids[t+1] | ids[..t])), as `igsearch logprobs` writes them.
"""
import json, os, sys
import torch
from qwen2_ref import Qwen2, load_checkpoint

torch.set_num_threads(os.cpu_count())
cfg, w = load_checkpoint(sys.argv[1])
m = Qwen2(cfg, w)
with open(sys.argv[2]) as f, open(sys.argv[3], "w") as out:
    for line in f:
        ids = torch.tensor([json.loads(line)["input_ids"]])
        mask = torch.ones_like(ids)
        pos = torch.arange(ids.shape[1])[None]
        logits, _ = m.forward(ids, mask, pos)
        lp = torch.log_softmax(logits[0, :-1].double(), -1).gather(-1, ids[0, 1:, None])[:, 0]
        out.write(json.dumps({"logprobs": lp.tolist()}) + "\n")
