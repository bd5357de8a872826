#!/usr/bin/python3
"""Golden values for the π family's analysis (spec §2.4, §2.5, §8 A/B, §9 A/B/C).

Writes tests/data/golden/scipy_pi.json: fixed inputs and what scipy/numpy
return for them — chi2.sf, t.ppf, exp8 Part A (bounded erf fit, fixed-σ RSS,
likelihood-ratio statistic, p-value), exp8 Part B's π models (TRF with
bounds, 0-parameter ones evaluated), exp9 Part A's convergence regression
with its t-based 95 % CI, exp9 Part B's unbounded scaling fits
(curve_fit without bounds = Levenberg–Marquardt, MINPACK lmdif) and a harder
three-parameter LM fit. tests/pi/analysis_test.cc compares the C++ against
it; the test itself needs no Python.

The independent side: formulas written from the spec, not from the C++.

    /usr/bin/python3 scripts/golden/make_pi_golden.py
"""
import json
import math
import os

import numpy as np
import scipy
from scipy import stats
from scipy.optimize import curve_fit
from scipy.special import erf

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden", "scipy_pi.json")
SIGMA_PI = 1.0 / math.sqrt(math.pi)


def bic(rss, n, k):
    return float("inf") if rss <= 0 else n * math.log(rss / n) + k * math.log(n)


def r2(y, yf):
    ss = float(np.sum((y - np.mean(y)) ** 2))
    return 0.0 if ss == 0 else 1 - float(np.sum((y - yf) ** 2)) / ss


def erf_model(x, s):
    return erf(x / (max(s, 1e-10) * math.sqrt(2)))


def g_curve(n_layer, sigma, wobble):
    """A g(l/L)-like curve: erf plus a deterministic wobble and a late drop."""
    x = np.linspace(0, 1, n_layer + 1)
    g = erf(x / (sigma * math.sqrt(2))) + wobble * np.sin(7.0 * x) - 0.2 * x ** 6
    return x, g / g.max()


def exp8a(x, g):
    p, _ = curve_fit(erf_model, x, g, p0=[0.5], bounds=([0.01], [10]), maxfev=20000)
    yf = erf_model(x, p[0])
    rss_free = float(np.sum((g - yf) ** 2))
    y0 = erf_model(x, SIGMA_PI)
    rss_fixed = float(np.sum((g - y0) ** 2))
    n = len(x)
    lr = n * math.log(rss_fixed / rss_free) if rss_free > 0 and rss_fixed >= rss_free else 0.0
    return {"sigma_free": float(p[0]), "rss_free": rss_free, "rss_fixed": rss_fixed, "r2_free": r2(g, yf),
            "r2_fixed": r2(g, y0), "lr_statistic": lr, "p_value": float(stats.chi2.sf(lr, 1))}


def pi_models(x, g):
    n = len(x)
    out = {}
    cos0 = (1 - np.cos(np.pi * x)) / 2
    sin0 = np.sin(np.pi * x / 2)
    for name, yf in (("cos_pi_0p", cos0), ("sin_pi_0p", sin0)):
        rss = float(np.sum((g - yf) ** 2))
        out[name] = {"rss": rss, "r2": r2(g, yf), "bic": bic(rss, n, 0)}
    f1 = {"cos_pi_1p": lambda x, a: (1 - np.cos(np.pi * np.maximum(x, 1e-10) ** a)) / 2,
          "sin_pi_1p": lambda x, a: np.sin(np.pi * np.maximum(x, 1e-10) ** a / 2)}
    for name, f in f1.items():
        p, _ = curve_fit(f, x, g, p0=[1.0], bounds=([0.01], [10]), maxfev=20000)
        yf = f(x, *p)
        rss = float(np.sum((g - yf) ** 2))
        out[name] = {"alpha": float(p[0]), "rss": rss, "r2": r2(g, yf), "bic": bic(rss, n, 1)}
    return out


def convergence(L, sig):
    x = 1.0 / np.array(L, dtype=float)
    y = np.array(sig)
    lr = stats.linregress(x, y)
    n = len(x)
    yf = lr.intercept + lr.slope * x
    s = math.sqrt(float(np.sum((y - yf) ** 2)) / (n - 2))
    se = s * math.sqrt(1.0 / n + x.mean() ** 2 / float(np.sum((x - x.mean()) ** 2)))
    t = float(stats.t.ppf(0.975, n - 2))
    return {"x": x.tolist(), "y": sig, "slope": float(lr.slope), "intercept": float(lr.intercept),
            "r2": float(lr.rvalue ** 2), "se_intercept": se, "t": t, "ci_lower": float(lr.intercept - t * se),
            "ci_upper": float(lr.intercept + t * se)}


def scaling(L, theta):
    L = np.array(L, dtype=float)
    th = np.array(theta)
    n = len(L)
    out = {}
    rss = float(np.sum((th - np.pi ** 2 / 2) ** 2))
    out["constant_pi_sq_half"] = {"rss": rss, "bic": bic(rss, n, 0)}
    models = {"sqrt_L": (lambda L, a: a * np.sqrt(L), [1.0]),
              "log_L": (lambda L, a: a * np.log(L), [1.0]),
              "linear": (lambda L, a, b: a * L + b, [0.1, 1.0])}
    for name, (f, p0) in models.items():
        p, _ = curve_fit(f, L, th, p0=p0, maxfev=10000)
        rss = float(np.sum((th - f(L, *p)) ** 2))
        out[name] = {"params": [float(v) for v in p], "rss": rss, "bic": bic(rss, n, len(p0))}
    return out


def hard_lm():
    x = np.linspace(0, 4, 15)
    y = 2.5 * np.exp(-1.3 * x) + 0.5 + 0.02 * np.cos(5 * x)
    f = lambda x, a, b, c: a * np.exp(-b * x) + c
    p, _ = curve_fit(f, x, y, p0=[1.0, 1.0, 1.0])
    return {"x": x.tolist(), "y": y.tolist(), "p0": [1.0, 1.0, 1.0], "params": [float(v) for v in p],
            "rss": float(np.sum((y - f(x, *p)) ** 2))}


def main():
    doc = {"versions": {"scipy": scipy.__version__, "numpy": np.__version__}}
    doc["chi2_sf"] = [{"x": x, "df": df, "sf": float(stats.chi2.sf(x, df))}
                      for x, df in ((0.0, 1), (0.385, 1), (1.349, 1), (3.841458820694124, 1), (10.0, 1), (50.0, 1),
                                    (2.5, 2), (7.0, 5))]
    doc["t_ppf"] = [{"p": p, "df": df, "q": float(stats.t.ppf(p, df))}
                    for p, df in ((0.975, 1), (0.975, 2), (0.975, 3), (0.975, 10), (0.975, 100), (0.5, 4),
                                  (0.05, 7))]
    doc["exp8"] = []
    for n_layer, sigma, wobble in ((12, 0.55, 0.03), (24, 0.6, 0.02)):
        x, g = g_curve(n_layer, sigma, wobble)
        doc["exp8"].append({"x": x.tolist(), "g": g.tolist(), "a": exp8a(x, g), "b": pi_models(x, g)})
    L = [12, 24, 36, 48]
    doc["convergence"] = convergence(L, [0.5455, 0.5907, 0.571, 0.566])
    doc["scaling"] = {"L": L, "theta": [4.967, 6.02, 6.71, 7.3], "fits": scaling(L, [4.967, 6.02, 6.71, 7.3])}
    doc["hard_lm"] = hard_lm()
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
