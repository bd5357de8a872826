#!/usr/bin/python3
"""The peer of bench/exp10a_vs_peer.py: exp10 part A (baseline + single-head
zero ablations) the way a Python user would write it in PyTorch eager, one
forward per variant. Not a test; prints one JSON line.

  peer_exp10a_eager.py --model DIR --tokens FILE --chunk-len T --chunks N
                       --heads L0H0,L1H3,... [--threads N]

Model: a Hugging Face GPT-2 folder (config.json + model.safetensors, F32),
processed as TransformerLens's from_pretrained does (fold_ln,
center_writing_weights, center_unembed, fold_value_biases; spec §1.3) in
float64, then run in float32. Ablation: TransformerLens hook_z semantics,
head h's z set to zero at every position of every chunk. Tokens: whitespace-
separated ids; the first N x T form N chunks of T tokens, all in one batch.
PPL = exp(sum of -log p(t_i | t_<i), i >= 1, over all chunks / N (T - 1)).

Timing: the variants' forwards only, after loading and one short warm-up.
The JSON records the thread count, the BLAS build and the allocator that
this process actually loaded (read from /proc/self/maps).
"""
import argparse
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors_f32(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {meta['dtype']}; the peer reads F32 models only")
        b, e = meta["data_offsets"]
        a = np.frombuffer(blob, dtype="<f4", count=(e - b) // 4, offset=8 + n + b)
        out[name] = torch.from_numpy(a.reshape(meta["shape"]).astype(np.float64))
    return out


def load_processed(folder):
    """TransformerLens-processed weights (float64 maths, float32 result) in the
    fused layouts an eager forward wants: W_qkv [d, 3d], W_O [d, d], ..."""
    cfg = json.load(open(os.path.join(folder, "config.json")))
    raw = read_safetensors_f32(os.path.join(folder, "model.safetensors"))
    t = {k[len("transformer.") :] if k.startswith("transformer.") else k: v for k, v in raw.items()}
    d, L = cfg["n_embd"], cfg["n_layer"]

    def centre_in(W):  # fold_ln: every output column minus its mean over the input rows
        return W - W.mean(dim=0, keepdim=True)

    def centre_out(W):  # center_writing_weights: what is written to the stream, minus its mean
        return W - W.mean(dim=-1, keepdim=True)

    blocks = []
    for i in range(L):
        p = f"h.{i}."
        g1, be1, g2, be2 = (t[p + k] for k in ("ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"))
        Wc, bc = t[p + "attn.c_attn.weight"], t[p + "attn.c_attn.bias"]  # [d, 3d] = q | k | v
        b_qkv = bc + be1 @ Wc
        W_qkv = centre_in(g1[:, None] * Wc)
        W_O = centre_out(t[p + "attn.c_proj.weight"])  # rows = head-major z features
        b_O = t[p + "attn.c_proj.bias"]
        b_O = b_O - b_O.mean() + b_qkv[2 * d :] @ W_O  # fold_value_biases: hook_z has no value bias
        b_qkv = torch.cat([b_qkv[: 2 * d], torch.zeros(d, dtype=b_qkv.dtype)])
        Wfc, bfc = t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"]
        Wpr, bpr = t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"]
        blocks.append(
            dict(W_qkv=W_qkv, b_qkv=b_qkv, W_O=W_O, b_O=b_O, W_in=centre_in(g2[:, None] * Wfc), b_in=bfc + be2 @ Wfc,
                 W_out=centre_out(Wpr), b_out=bpr - bpr.mean()))
    wte, wpe = t["wte.weight"], t["wpe.weight"]
    gf, bef = t["ln_f.weight"], t["ln_f.bias"]
    W_U = centre_in(gf[:, None] * wte.T)  # tied unembedding with ln_f folded in
    W_U = W_U - W_U.mean(dim=-1, keepdim=True)  # center_unembed
    b_U = wte @ bef
    b_U = b_U - b_U.mean()
    f32 = lambda x: x.float().contiguous()
    m = dict(blocks=[{k: f32(v) for k, v in b.items()} for b in blocks], W_E=f32(centre_out(wte)),
             W_pos=f32(centre_out(wpe)), W_U=f32(W_U), b_U=f32(b_U))
    return cfg, m


def nll_sum(cfg, m, tokens, ablate=None):
    """Sum of -log p over all predicted tokens; ablate = (layer, head) zeroes
    that head's hook_z."""
    B, T = tokens.shape
    d, H = cfg["n_embd"], cfg["n_head"]
    dh, eps = d // H, cfg.get("layer_norm_epsilon", 1e-5)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    x = m["W_E"][tokens] + m["W_pos"][:T]
    for layer, w in enumerate(m["blocks"]):
        h = F.layer_norm(x, (d,), eps=eps)
        q, k, v = (h @ w["W_qkv"] + w["b_qkv"]).view(B, T, 3, H, dh).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(dh)).masked_fill(future, float("-inf"))
        z = scores.softmax(-1) @ v  # hook_z [B, H, T, dh]
        if ablate is not None and ablate[0] == layer:
            z[:, ablate[1]] = 0
        x = x + z.transpose(1, 2).reshape(B, T, d) @ w["W_O"] + w["b_O"]
        h = F.layer_norm(x, (d,), eps=eps)
        x = x + F.gelu(h @ w["W_in"] + w["b_in"], approximate="tanh") @ w["W_out"] + w["b_out"]
    logits = F.layer_norm(x[:, :-1], (d,), eps=eps) @ m["W_U"] + m["b_U"]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none")
    return ce.double().sum().item()


def loaded_libraries():
    maps = open("/proc/self/maps").read()
    blas = "unknown"
    for name in ("openblas-openmp", "openblas-pthread", "openblas-serial"):
        if f"/{name}/" in maps:
            blas = name
    malloc = "tcmalloc" if "libtcmalloc" in maps else "glibc"
    return blas, malloc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--chunk-len", type=int, required=True)
    ap.add_argument("--chunks", type=int, required=True)
    ap.add_argument("--heads", required=True, help="comma-separated LxHy")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, m = load_processed(a.model)
    ids = [int(w) for w in open(a.tokens).read().split()]
    if len(ids) < a.chunks * a.chunk_len:
        raise SystemExit(f"{a.tokens}: {len(ids)} tokens, need {a.chunks} x {a.chunk_len}")
    tokens = torch.tensor(ids[: a.chunks * a.chunk_len], dtype=torch.long).view(a.chunks, a.chunk_len)
    heads = []
    for s in a.heads.split(","):
        layer, head = s[1:].split("H")
        heads.append((int(layer), int(head)))
    n_pred = a.chunks * (a.chunk_len - 1)
    with torch.inference_mode():
        nll_sum(cfg, m, tokens[:1, :16])  # warm-up
        t0 = time.perf_counter()
        base = math.exp(nll_sum(cfg, m, tokens) / n_pred)
        ppl = {f"L{l}H{h}": math.exp(nll_sum(cfg, m, tokens, (l, h)) / n_pred) for l, h in heads}
        secs = time.perf_counter() - t0
    blas, malloc = loaded_libraries()
    print(json.dumps({"peer": "pytorch-eager", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "blas": blas, "malloc": malloc, "variants": 1 + len(heads), "seconds": secs,
                      "baseline_ppl": base, "ppl": ppl}))


if __name__ == "__main__":
    main()
