#!/usr/bin/python3
"""Reference value of the numerics canary "canary-v1" (common/spt/canary.h).

Reads the unit's generated model (config.json + model.safetensors, written by
experiments/platform/canary_unit.cc from a fixed spec and seed; a running
spt-worker has it in <cache-dir>/scratch/<name>-<pid>/canary/canary-v1) and
computes the
mean NLL per token of the unit's fixed token rows with a GPT-2 forward
written here from the architecture (LayerNorm, causal attention, gelu_new,
tied unembedding) in float64 PyTorch — independent of the C++ engine and of
its TransformerLens weight processing, which leaves logits unchanged.

Writes tests/data/golden/canary_reference.json; common/canary.cc carries the
value and digest, and tests/runner/canary_test.cc checks both against this
file and the CPU fp32 engine against the value.

    /usr/bin/python3 scripts/golden/make_canary_reference.py <model dir>
"""
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden", "canary_reference.json")
VOCAB, ROWS, LEN = 512, 4, 48


def tokens():
    # Same formula as canary_unit.cc tokens().
    return [[(31 * t * t + 7 * t + 101 * c + 13) % VOCAB for t in range(LEN)] for c in range(ROWS)]


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        a, b = info["data_offsets"]
        arr = np.frombuffer(raw[base + a:base + b], dtype="<f4").reshape(info["shape"])
        out[name.removeprefix("transformer.")] = torch.from_numpy(arr.astype(np.float64))
    return out, hashlib.sha256(raw).hexdigest()


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(W, cfg, toks):
    d, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    dh = d // H
    T = len(toks)
    idx = torch.tensor(toks)
    x = W["wte.weight"][idx] + W["wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        p = f"h.{l}."
        h = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        qkv = h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(d, dim=-1)
        q = q.view(T, H, dh).transpose(0, 1)
        k = k.view(T, H, dh).transpose(0, 1)
        v = v.view(T, H, dh).transpose(0, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        s = s.masked_fill(~mask, float("-inf"))
        z = torch.softmax(s, dim=-1) @ v
        z = z.transpose(0, 1).reshape(T, d)
        x = x + z @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        h = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        m = gelu_new(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
        x = x + m @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = layer_norm(x, W["ln_f.weight"], W["ln_f.bias"], eps)
    logits = x @ W["wte.weight"].T
    logp = torch.log_softmax(logits, dim=-1)
    return -logp[torch.arange(T - 1), idx[1:]]  # NLL of tokens 1..T-1


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    W, sha = read_safetensors(os.path.join(d, "model.safetensors"))
    nll = torch.cat([forward(W, cfg, row) for row in tokens()])
    doc = {
        "unit": "canary-v1",
        "what": "mean NLL per token (nats) of the canary model on its fixed token rows",
        "value": float(nll.mean()),
        "n_tokens": int(nll.numel()),
        "weights_sha256": sha,
        "model": {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size")},
        "dtype": "float64",
        "torch": torch.__version__,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
