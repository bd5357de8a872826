#!/usr/bin/python3
"""Golden values for PCA and k-means (spec §2.6), used by exp6 and exp7.

Writes tests/data/golden/sklearn_pca_kmeans.json: fixed small inputs and what
scikit-learn returns for them — PCA (explained_variance_ratio_,
explained_variance_, singular_values_, components_, mean_, scores), the
variance thresholds K(t) as the spec defines them, and KMeans(k,
random_state=42, n_init=10) best-of-10 inertia (and, for the separated
blobs whose partition is unique, the labels): sklearn's RNG cannot be
matched, so the C++ test compares inertia, spec §12 A13. tests/analysis/pca_kmeans_test.cc reads it; the test
needs no Python.

Inputs are generated here from a seeded numpy RNG and stored in the JSON, so
the C++ side reads exactly these numbers. Run with Debian's interpreter:

    /usr/bin/python3 scripts/golden/make_exp6_golden.py
"""
import json
import os

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden",
                   "sklearn_pca_kmeans.json")


def thresholds(ratio):
    cum = np.cumsum(ratio)
    out = {}
    for t in (0.5, 0.8, 0.9, 0.95):
        hit = np.nonzero(cum >= t)[0]
        out[str(t)] = int(hit[0]) + 1 if hit.size else None
    return out


def pca_case(name, x, n_components=None):
    p = PCA(n_components=n_components, svd_solver="full").fit(x)
    scores = p.transform(x)
    return {
        "name": name,
        "x": x.tolist(),
        "n_components": p.n_components_,
        "mean": p.mean_.tolist(),
        "explained_variance_ratio": p.explained_variance_ratio_.tolist(),
        "explained_variance": p.explained_variance_.tolist(),
        "singular_values": p.singular_values_.tolist(),
        "components": p.components_.tolist(),
        "scores": scores.tolist(),
        "thresholds": thresholds(p.explained_variance_ratio_),
    }


def kmeans_case(name, x, k, with_labels):
    km = KMeans(n_clusters=k, random_state=42, n_init=10).fit(x)
    out = {"name": name, "x": x.tolist(), "k": k, "inertia": float(km.inertia_)}
    if with_labels:  # only where the partition is unique (separated blobs)
        out["labels"] = km.labels_.tolist()
    return out


def main():
    rng = np.random.default_rng(20261130)
    # PCA: tall (n > p), wide (n < p: the exp6 shape, 144 × 4096 in
    # miniature) with a decaying spectrum, and a near-rank-4 matrix kept to 5
    # components (ratios stay relative to the total over all components).
    tall = rng.normal(size=(40, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    wide = rng.normal(size=(12, 30)) @ np.diag(np.linspace(3.0, 0.2, 30))
    mixed = rng.normal(size=(25, 4)) @ rng.normal(size=(4, 16)) + 0.01 * rng.normal(size=(25, 16))
    # Inputs are stored rounded; sklearn sees exactly the stored numbers.
    tall, wide, mixed = np.round(tall, 6), np.round(wide, 6), np.round(mixed, 6)
    pcas = [pca_case("tall", tall), pca_case("wide", wide), pca_case("truncated", mixed, 5)]

    # k-means: separated blobs (one optimum), and unstructured points (local
    # optima: best-of-10 matters) in the exp6 C shape (samples × 20 scores).
    centres = rng.normal(scale=10.0, size=(4, 5))
    blobs = np.vstack([c + rng.normal(size=(15, 5)) for c in centres])
    rng.shuffle(blobs)
    cloud = rng.normal(size=(144, 20)) * np.linspace(4.0, 0.5, 20)
    blobs, cloud = np.round(blobs, 6), np.round(cloud, 6)
    kms = [kmeans_case("blobs_k4", blobs, 4, True), kmeans_case("cloud_k8", cloud, 8, False),
           kmeans_case("cloud_k16", cloud, 16, False)]

    doc = {"generator": "scripts/golden/make_exp6_golden.py",
           "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__},
           "pca": pcas, "kmeans": kms}
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
