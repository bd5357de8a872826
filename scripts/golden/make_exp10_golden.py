#!/usr/bin/python3
"""Golden NLLs for the exp10 head interventions (spec §1.3, §1.4, §10, §10.3).

Writes tests/data/golden/exp10_interventions.json: for the golden checkpoints
g1_f32_prefixed (F32, 2 layers x 4 heads, d_head 16) and g2_f16_dhead32 (F16,
3 layers x 3 heads, d_head 32), on the two token rows of golden.json, the mean
NLL (sum over both rows of -log p(token_t | tokens_<t), t = 1..T-1, divided by
the number of predicted tokens, as golden.json's mean_nll) of

  * the clean processed model;
  * per (layer, head), for every head: zero ablation, mean ablation, and the
    relu / l1 / identity pattern replacements (§10.3);
  * one cumulative multi-head variant per op, and one mixed variant (several
    ops, two of them in one block);
  * relu at one query position only;
  * a case that exercises the NaN -> 0 step after the softmax (see below).

tests/model/intervention_golden_test.cc compares the C++ engine against it;
the test itself needs no Python.

This is the independent side: it is written from the spec's formulas, not
from the C++ engine. It reads safetensors with the small reader below
(8-byte little-endian header length, JSON header, raw little-endian data),
applies TransformerLens's default processing to the Hugging Face weights
(§1.3: fold_ln -> center_writing_weights -> center_unembed ->
fold_value_biases; hook_z without the value bias, N3) and runs the §1.4
forward in float64. Run with Debian's interpreter and packages
(apt-get install python3-torch python3-numpy):

    /usr/bin/python3 scripts/golden/make_exp10_golden.py

Self-checks (the script fails if they do not hold): the clean NLL and the
per-head zero- and mean-ablation NLLs reproduce golden.json's mean_nll,
nll_zero_tl and nll_mean (computed there by Hugging Face transformers in
fp32 + a TransformerLens-convention hook) to 2e-6.

Mean-ablation values: the per-head mean of the clean model's hook_z over all
rows and positions (2 x 48 = 96 positions), computed in float64, then rounded
to float32 (the engine's HeadIntervention carries floats); the rounded values
are what this script ablates with and what the JSON stores.

NaN -> 0: with the causal mask every query row keeps its diagonal key finite,
so softmax never sees an all -inf row and cannot produce NaN in a plain
forward or under any of the head ops (they act at hook_z or replace the
pattern from the scores; none of them changes the scores the softmax reads).
NaN can arise only when a hook at hook_attn_scores sets a whole row to -inf.
The "nan_rows" cases do that (every key of the query rows q with q % 3 == 1 of
one head set to -inf): softmax gives NaN there, NaN -> 0 makes those pattern
rows zero, so z = 0 at those positions of that head.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
MODELS = ["g1_f32_prefixed", "g2_f16_dhead32"]
DT = torch.float64


# ---- safetensors -------------------------------------------------------------
def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = blob[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        b, e = meta["data_offsets"]
        raw = data[b:e]
        shape = meta["shape"]
        dt = meta["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: unsupported dtype {dt} for {name}")
        out[name] = torch.from_numpy(a.reshape(shape).copy())
    return out


# ---- TransformerLens processing of HF GPT-2 weights (spec §1.3, §1.7) --------
def processed_weights(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    raw = read_safetensors(os.path.join(folder, "model.safetensors"))
    t = {(k[len("transformer.") :] if k.startswith("transformer.") else k): v for k, v in raw.items()}
    d, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    dh = d // H
    eps = cfg.get("layer_norm_epsilon", 1e-5)

    def centre_cols(W):  # each output column minus its mean over the d_model input rows
        return W - W.mean(dim=-2, keepdim=True)

    def centre_out(W):  # each vector written to the stream minus its mean over d_model
        return W - W.mean(dim=-1, keepdim=True)

    blocks = []
    for b in range(L):
        p = f"h.{b}."
        g1, be1 = t[p + "ln_1.weight"], t[p + "ln_1.bias"]
        g2, be2 = t[p + "ln_2.weight"], t[p + "ln_2.bias"]
        Wc, bc = t[p + "attn.c_attn.weight"], t[p + "attn.c_attn.bias"]  # [d, 3d], [3d]
        Wq = torch.stack([Wc[:, 0 * d + h * dh : 0 * d + (h + 1) * dh] for h in range(H)])  # [H, d, dh]
        Wk = torch.stack([Wc[:, 1 * d + h * dh : 1 * d + (h + 1) * dh] for h in range(H)])
        Wv = torch.stack([Wc[:, 2 * d + h * dh : 2 * d + (h + 1) * dh] for h in range(H)])
        bq = torch.stack([bc[0 * d + h * dh : 0 * d + (h + 1) * dh] for h in range(H)])  # [H, dh]
        bk = torch.stack([bc[1 * d + h * dh : 1 * d + (h + 1) * dh] for h in range(H)])
        bv = torch.stack([bc[2 * d + h * dh : 2 * d + (h + 1) * dh] for h in range(H)])
        Wo = t[p + "attn.c_proj.weight"].reshape(H, dh, d)  # rows h*dh + j -> W_O[h][j]
        bo = t[p + "attn.c_proj.bias"]
        Wfc, bfc = t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"]
        Wpr, bpr = t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"]
        # fold_ln: biases from the raw weights, then W <- diag(gamma) W, then centre the input rows.
        b_Q = bq + torch.einsum("i,hij->hj", be1, Wq)
        b_K = bk + torch.einsum("i,hij->hj", be1, Wk)
        b_V = bv + torch.einsum("i,hij->hj", be1, Wv)
        b_in = bfc + be2 @ Wfc
        W_Q = centre_cols(g1[None, :, None] * Wq)
        W_K = centre_cols(g1[None, :, None] * Wk)
        W_V = centre_cols(g1[None, :, None] * Wv)
        W_in = centre_cols(g2[:, None] * Wfc)
        # center_writing_weights
        W_O = centre_out(Wo)
        b_O = bo - bo.mean()
        W_out = centre_out(Wpr)
        b_out = bpr - bpr.mean()
        # fold_value_biases (with the folded b_V and the centred W_O)
        b_O = b_O + torch.einsum("hj,hjd->d", b_V, W_O)
        blocks.append(dict(W_Q=W_Q, W_K=W_K, W_V=W_V, b_Q=b_Q, b_K=b_K, W_O=W_O, b_O=b_O,
                           W_in=W_in, b_in=b_in, W_out=W_out, b_out=b_out))
    wte, wpe = t["wte.weight"], t["wpe.weight"]
    gf, bef = t["ln_f.weight"], t["ln_f.bias"]
    # unembedding: tied to wte (the checkpoints have no lm_head); fold ln_f, centre rows, centre vocab.
    b_U = wte @ bef  # = beta_f . wte^T
    W_U = centre_cols(gf[:, None] * wte.T)  # [d, vocab]
    W_U = W_U - W_U.mean(dim=-1, keepdim=True)  # center_unembed
    b_U = b_U - b_U.mean()
    W_E = centre_out(wte)
    W_pos = centre_out(wpe)
    return dict(cfg=cfg, L=L, H=H, d=d, dh=dh, eps=eps, blocks=blocks, W_E=W_E, W_pos=W_pos, W_U=W_U, b_U=b_U)


# ---- forward (spec §1.4) with the §10 head operations ------------------------
def ln_pre(x, eps):
    x = x - x.mean(dim=-1, keepdim=True)
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def replaced_pattern(S, method):
    """S: one head's scores [.., Tq, Tk], already /sqrt(d_head), -inf above the diagonal."""
    Sp = torch.where(torch.isfinite(S), S, torch.zeros_like(S))  # S' : non-finite -> 0
    if method == "attn_relu":
        W = torch.clamp(Sp, min=0.0)
        rowsum = torch.clamp(W.sum(dim=-1, keepdim=True), min=1e-8)
    elif method == "attn_l1":
        W = Sp.abs()
        rowsum = torch.clamp(W.sum(dim=-1, keepdim=True), min=1e-8)
    elif method == "attn_identity":
        W = Sp
        rowsum = torch.clamp(W.abs().sum(dim=-1, keepdim=True), min=1e-8)
    else:
        raise ValueError(method)
    return W / rowsum


def forward(m, tokens, ops=(), neg_inf_rows=None, capture_z=None):
    """tokens: int64 [B, T]. ops: dicts {layer, head, op, position(-1), values}.
    neg_inf_rows: (layer, head, [query rows]) whose scores a hook sets to -inf.
    capture_z: dict filled with the clean z per layer [B, T, H, dh].
    Returns the mean NLL over all predicted tokens of all rows, and the count."""
    B, T = tokens.shape
    H, dh, eps = m["H"], m["dh"], m["eps"]
    resid = m["W_E"][tokens] + m["W_pos"][:T][None]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for l, w in enumerate(m["blocks"]):
        x = ln_pre(resid, eps)
        q = torch.einsum("btd,hdj->bhtj", x, w["W_Q"]) + w["b_Q"][None, :, None, :]
        k = torch.einsum("btd,hdj->bhtj", x, w["W_K"]) + w["b_K"][None, :, None, :]
        v = torch.einsum("btd,hdj->bhtj", x, w["W_V"])  # b_V folded into b_O: hook_z has no value bias
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        scores = scores.masked_fill(future, float("-inf"))  # hook_attn_scores
        S = scores.clone()  # what the pattern replacements read
        if neg_inf_rows is not None and neg_inf_rows[0] == l:
            scores[:, neg_inf_rows[1], neg_inf_rows[2], :] = float("-inf")
        pattern = torch.softmax(scores, dim=-1)
        pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)  # NaN -> 0
        for o in ops:
            if o["layer"] != l or not o["op"].startswith("attn_"):
                continue
            rep = replaced_pattern(S[:, o["head"]], o["op"])  # [B, Tq, Tk]
            if o.get("position", -1) >= 0:
                pattern[:, o["head"], o["position"]] = rep[:, o["position"]]
            else:
                pattern[:, o["head"]] = rep
        z = (pattern @ v).permute(0, 2, 1, 3).clone()  # [B, T, H, dh]
        if capture_z is not None:
            capture_z[l] = z.clone()
        for o in ops:
            if o["layer"] != l or o["op"].startswith("attn_"):
                continue
            sel = slice(None) if o.get("position", -1) < 0 else o["position"]
            if o["op"] == "zero":
                z[:, sel, o["head"], :] = 0.0
            elif o["op"] == "mean":
                z[:, sel, o["head"], :] = torch.tensor(o["values"], dtype=DT)
            else:
                raise ValueError(o["op"])
        attn_out = torch.einsum("bthj,hjd->btd", z, w["W_O"]) + w["b_O"]
        resid = resid + attn_out
        x2 = ln_pre(resid, eps)
        mlp_out = gelu_new(x2 @ w["W_in"] + w["b_in"]) @ w["W_out"] + w["b_out"]
        resid = resid + mlp_out
    logits = ln_pre(resid, eps) @ m["W_U"] + m["b_U"]  # [B, T, vocab]
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    nll = -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)  # [B, T-1]
    return float(nll.sum() / nll.numel()), int(nll.numel())


def main():
    golden = json.load(open(os.path.join(GOLDEN, "golden.json")))
    out = {
        "generator": f"scripts/golden/make_exp10_golden.py, torch {torch.__version__}, numpy {np.__version__}, float64",
        "note": ("mean NLL over both token rows of golden.json (t = 1..T-1), TransformerLens-processed model, "
                 "hook_z without value bias; mean-ablation values = per-head mean of clean hook_z over all rows "
                 "and positions, rounded to float32 (stored here and used by the reference); pattern ops per "
                 "spec §10.3 (S' = scores with non-finite entries set to 0); nan_rows: a hook sets every key of "
                 "the listed query rows of one head to -inf before the softmax, NaN -> 0 zeroes those rows"),
        "models": {},
    }
    worst_selfcheck = 0.0
    for name in MODELS:
        g = golden["models"][name]
        m = processed_weights(os.path.join(GOLDEN, name))
        tokens = torch.tensor(g["tokens"], dtype=torch.long)
        L, H, dh = m["L"], m["H"], m["dh"]
        zs = {}
        clean, count = forward(m, tokens, capture_z=zs)
        means = {}
        for l in range(L):
            for h in range(H):
                mu = zs[l][:, :, h, :].reshape(-1, dh).mean(dim=0)  # over all rows and positions
                means[(l, h)] = [float(np.float32(x)) for x in mu.tolist()]
        cases = []

        def case(label, ops, **extra):
            nll, _ = forward(m, tokens, ops=ops, neg_inf_rows=extra.get("neg_inf_rows"))
            c = {"label": label, "ops": [{k: o[k] for k in ("layer", "head", "op", "position") if k in o} for o in ops],
                 "mean_nll": nll}
            if "neg_inf_rows" in extra:
                l, h, rows = extra["neg_inf_rows"]
                c["neg_inf_rows"] = {"layer": l, "head": h, "query_rows": rows}
            cases.append(c)
            return nll

        def op(l, h, kind, position=-1):
            o = {"layer": l, "head": h, "op": kind}
            if position >= 0:
                o["position"] = position
            if kind == "mean":
                o["values"] = means[(l, h)]
            return o

        # Per head, every head.
        for l in range(L):
            for h in range(H):
                for kind in ("zero", "mean", "attn_relu", "attn_l1", "attn_identity"):
                    nll = case(f"L{l}H{h} {kind}", [op(l, h, kind)])
                    if kind in ("zero", "mean"):
                        ref = [x for x in g["heads"] if x["layer"] == l and x["head"] == h]
                        if ref:
                            want = ref[0]["nll_zero_tl" if kind == "zero" else "nll_mean"]
                            worst_selfcheck = max(worst_selfcheck, abs(nll - want))
                            if abs(nll - want) > 2e-6:
                                raise SystemExit(f"{name} L{l}H{h} {kind}: {nll} vs golden.json {want}")
        # Cumulative multi-head variants (two heads in one block, and across blocks).
        multi = [(0, 0), (0, 2), (1, 1), (L - 1, H - 1)]
        for kind in ("zero", "mean", "attn_relu", "attn_l1", "attn_identity"):
            case(f"multi {kind}", [op(l, h, kind) for l, h in multi])
        # Mixed: several ops in one variant; block 1 has a z op and a pattern op.
        case("mixed", [op(0, 1, "attn_relu"), op(0, 2, "zero"), op(1, 0, "attn_l1"), op(1, 1, "mean"),
                       op(L - 1, H - 1, "attn_identity")])
        # One query position only.
        case("L1H2 attn_relu position 5", [op(1, 2, "attn_relu", position=5)])
        # Query 0 sees only itself: identity makes its row sign(s_00), i.e. -1 where s_00 < 0 (as in the
        # last head of both models, whose relu rows are all zero).
        case(f"L{L - 1}H{H - 1} attn_identity position 0", [op(L - 1, H - 1, "attn_identity", position=0)])
        # NaN -> 0 after the softmax (rows of all -inf set by a hook at hook_attn_scores).
        T = tokens.shape[1]
        rows = [q for q in range(T) if q % 3 == 1]
        case("nan_rows L0H1", [], neg_inf_rows=(0, 1, rows))
        case("nan_rows L1H0", [], neg_inf_rows=(1, 0, rows))

        # Clean vs golden.json.
        worst_selfcheck = max(worst_selfcheck, abs(clean - g["mean_nll"]))
        if abs(clean - g["mean_nll"]) > 2e-6:
            raise SystemExit(f"{name}: clean {clean} vs golden.json {g['mean_nll']}")
        out["models"][name] = {
            "n_layer": L, "n_head": H, "d_head": dh, "count": count, "clean_mean_nll": clean,
            "head_means": [{"layer": l, "head": h, "values": means[(l, h)]} for l in range(L) for h in range(H)],
            "cases": cases,
        }
        print(f"{name}: clean {clean:.12f} (golden.json {g['mean_nll']:.12f}), {len(cases)} cases", file=sys.stderr)
    print(f"largest self-check difference vs golden.json: {worst_selfcheck:.3g}", file=sys.stderr)
    path = os.path.join(GOLDEN, "exp10_interventions.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
