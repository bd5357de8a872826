#!/usr/bin/python3
"""Golden values for exp7's PCA-derived numbers (spec §7, §2.6).

Writes tests/data/golden/sklearn_exp7.json: a fixed small "capture" (3 blocks
x 40 samples x 12 features: low-rank structure, a column offset, noise, and
one large row per block standing in for GPT-2's position 0) and, computed
with scikit-learn / numpy in float64 directly from the definitions:
  - per block: PCA explained_variance_ratio_ and thresholds K(t) (exp7 stores
    the number of components when a threshold is never reached);
  - all blocks stacked (7C): thresholds, and per K and block the mean cosine
    between X and recon = ((X - mu) U_K^T) U_K + mu (norms clamped at 1e-10),
    the mean L2 error and the relative L2 (mean error / mean |X|);
  - per block: mean and population std of the row norms.
tests/exp7/science_test.cc reads it; the test needs no Python. Run with
Debian's interpreter:

    /usr/bin/python3 scripts/golden/make_exp7_golden.py
"""
import json
import os

import numpy as np
import sklearn
from sklearn.decomposition import PCA

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden", "sklearn_exp7.json")
KS = [1, 2, 4, 8, 12]


def thresholds(ratio):
    cum = np.cumsum(ratio)
    out = {}
    for t in (0.5, 0.8, 0.9, 0.95):
        hit = np.nonzero(cum >= t)[0]
        out[str(t)] = int(hit[0]) + 1 if hit.size else int(len(ratio))
    return out


def main():
    rng = np.random.default_rng(7)
    n_blocks, n, d = 3, 40, 12
    blocks = []
    for b in range(n_blocks):
        rank = 2 + 2 * b
        x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) * (1.0 + b)
        x += 0.1 * rng.normal(size=(n, d)) + rng.normal(size=d)
        x[0] *= 8.0  # a dominant first position
        blocks.append(x.astype(np.float32))  # the capture is float32
    data = np.stack(blocks)

    out = {"sklearn_version": sklearn.__version__, "shape": list(data.shape),
           "data": [float(v) for v in data.reshape(-1)], "blocks": [], "shared": {}}
    for b in range(n_blocks):
        x = data[b].astype(np.float64)
        p = PCA(svd_solver="full").fit(x)
        norms = np.linalg.norm(x, axis=1)
        out["blocks"].append({"explained_variance_ratio": p.explained_variance_ratio_.tolist(),
                              "thresholds": thresholds(p.explained_variance_ratio_),
                              "norm_mean": float(norms.mean()), "norm_std": float(norms.std())})
    allx = data.reshape(-1, d).astype(np.float64)
    p = PCA(svd_solver="full").fit(allx)
    out["shared"]["explained_variance_ratio"] = p.explained_variance_ratio_.tolist()
    out["shared"]["thresholds"] = thresholds(p.explained_variance_ratio_)
    ev = {}
    for k in KS:
        u = p.components_[:k]
        per = []
        for b in range(n_blocks):
            x = data[b].astype(np.float64)
            rec = (x - p.mean_) @ u.T @ u + p.mean_
            xn = np.maximum(np.linalg.norm(x, axis=1), 1e-10)
            rn = np.maximum(np.linalg.norm(rec, axis=1), 1e-10)
            cos = np.sum(x * rec, axis=1) / (xn * rn)
            err = np.linalg.norm(x - rec, axis=1)
            per.append({"cos_sim": float(cos.mean()), "l2_error": float(err.mean()),
                        "relative_l2": float(err.mean() / np.linalg.norm(x, axis=1).mean())})
        ev[str(k)] = per
    out["shared"]["eval"] = ev
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
