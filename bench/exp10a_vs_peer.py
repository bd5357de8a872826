#!/usr/bin/python3
"""exp10 part A side by side: spt's engine against a PyTorch-eager peer on the
same machine, model and tokens. A benchmark, never a test: it prints figures
and exits non-zero only when the two sides disagree or a run fails.

  bench/exp10a_vs_peer.py [--heads-per-layer K] [--layers N --heads N --d-model N --vocab N]
                          [--chunks 2 --chunk-len 1024] [--threads N] [--build DIR] [--keep]

What it does:
  1. installs the peer's Debian packages if missing (python3-torch,
     python3-numpy; apt-get, through sudo when not root);
  2. writes one random GPT-2 model (spt-engine make-model; GPT-2-small shape
     unless --layers/--heads/--d-model/--vocab say smaller) and one token file
     (chunks x chunk-len random ids) that both sides read;
  3. runs part A on them: the baseline plus single-head zero ablations —
     every head by default, or K heads of every layer (--heads-per-layer K),
     so every layer depth is represented in a fraction of the work:
       spt fused    spt-engine ablate (nll_many: shared clean prefixes)
       spt unfused  spt-engine ablate --unfused (one forward per variant)
       peer x 3     bench/peer_exp10a_eager.py (one forward per variant):
                    as installed; with tcmalloc preloaded; with tcmalloc and
                    the OpenMP OpenBLAS (LD_LIBRARY_PATH, when the system
                    alternative selects another build);
     spt runs with the OpenMP OpenBLAS too (what scripts/setup.sh selects);
  4. checks every variant's PPL against spt fused (relative difference
     <= 1e-5; the ΔPPL = (PPL - baseline) / baseline then agree to ~2e-5);
  5. prints one table: seconds, seconds per variant, the full part A
     projected from it, and spt fused's speed-up over each row.
Times exclude model loading (both sides); the peer has one short warm-up.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
OPENMP_BLAS = f"{LIBDIR}/openblas-openmp"
TCMALLOC = f"{LIBDIR}/libtcmalloc_minimal.so.4"
TOLERANCE = 1e-5


def ensure_debian_packages(pkgs):
    missing = [p for p in pkgs if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                                 text=True).stdout != "install ok installed"]
    if not missing:
        return
    print(f"installing {' '.join(missing)} (apt-get)", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "update", "-q"], check=False)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, check=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def openmp_blas_selected():
    q = subprocess.run(["update-alternatives", "--query", "libblas.so.3-x86_64-linux-gnu"], capture_output=True,
                       text=True).stdout
    return f"Value: {OPENMP_BLAS}/libblas.so.3" in q.splitlines()


def with_openmp_blas(env):
    """env with the OpenMP OpenBLAS first on the loader's path, unless the
    alternatives already select it."""
    env = dict(env)
    if not openmp_blas_selected():
        if not os.path.isdir(OPENMP_BLAS):
            raise SystemExit(f"{OPENMP_BLAS} missing: apt-get install libopenblas0-openmp")
        env["LD_LIBRARY_PATH"] = OPENMP_BLAS + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


def with_tcmalloc(env):
    if not os.path.exists(TCMALLOC):
        raise SystemExit(f"{TCMALLOC} missing: apt-get install libtcmalloc-minimal4")
    return dict(env, LD_PRELOAD=TCMALLOC)


def run_json(cmd, env, label):
    print(f"running {label} ...", flush=True)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"{label} failed (exit {r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def random_tokens(n, vocab, seed=1):
    x, out = seed, []
    for _ in range(n):  # 64-bit LCG (Knuth's MMIX constants), high bits
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append((x >> 33) % vocab)
    return out


def head_list(n_layer, n_head, per_layer):
    """K heads of every layer, rotated by layer so different heads are hit."""
    k = n_head if per_layer is None else max(1, min(per_layer, n_head))
    step = n_head // k
    return [(l, (l + j * step) % n_head) for l in range(n_layer) for j in range(k)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("SPT_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--heads-per-layer", type=int, default=None, help="K heads per layer (default: all)")
    for flag in ("--layers", "--heads", "--d-model", "--vocab"):
        ap.add_argument(flag, type=int, help="model shape (default: GPT-2 small)")
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--chunk-len", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (model, tokens, JSON)")
    a = ap.parse_args()

    ensure_debian_packages(["python3-torch", "python3-numpy"])
    engine = os.path.join(a.build, "bench", "spt-engine")
    if not os.access(engine, os.X_OK):
        raise SystemExit(f"{engine} not built (cmake --build {a.build} --target spt-engine)")
    work = tempfile.mkdtemp(prefix="spt-exp10a-peer.")
    try:
        model = os.path.join(work, "model")
        mk = [engine, "make-model", "--out", model, "--preset", "gpt2", "--seed", str(a.seed),
              "--n-ctx", str(max(a.chunk_len, 128)), "--json"]
        for flag, v in (("--layers", a.layers), ("--heads", a.heads), ("--d-model", a.d_model), ("--vocab", a.vocab)):
            if v is not None:
                mk += [flag, str(v)]
        subprocess.run(mk, check=True, stdout=subprocess.DEVNULL)
        cfg = json.load(open(os.path.join(model, "config.json")))
        L, H, V = cfg["n_layer"], cfg["n_head"], cfg["vocab_size"]
        tokens = os.path.join(work, "tokens.txt")
        with open(tokens, "w") as f:
            f.write(" ".join(map(str, random_tokens(a.chunks * a.chunk_len, V, a.seed))) + "\n")
        heads = head_list(L, H, a.heads_per_layer)
        heads_arg = ",".join(f"L{l}H{h}" for l, h in heads)
        n_var, n_full = 1 + len(heads), 1 + L * H
        print(f"model {L} x {H}, d_model {cfg['n_embd']}, vocab {V}; {a.chunks} x {a.chunk_len} tokens; "
              f"{n_var} of part A's {n_full} variants; {a.threads} threads", flush=True)

        base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        spt_env = with_openmp_blas(base_env)
        spt_cmd = [engine, "ablate", "--model", model, "--tokens", tokens, "--chunk-len", str(a.chunk_len),
                   "--max-tokens", str(a.chunks * a.chunk_len), "--heads", heads_arg, "--threads", str(a.threads),
                   "--json"]
        peer_cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "peer_exp10a_eager.py"), "--model", model,
                    "--tokens", tokens, "--chunk-len", str(a.chunk_len), "--chunks", str(a.chunks), "--heads",
                    heads_arg, "--threads", str(a.threads)]
        rows = []  # (label, seconds, blas, {variant: ppl})

        def spt_row(label, extra):
            j = run_json(spt_cmd + extra, spt_env, label)
            ppl = {"baseline": j["baseline_ppl"]}
            ppl.update({f"L{r['layer']}H{r['head']}": r["ppl"] for r in j["results"]})
            rows.append((label, j["seconds"], j["model"]["device"], ppl))

        spt_row("spt fused", [])
        spt_row("spt unfused", ["--unfused"])
        for label, env in (("peer as installed", base_env), ("peer + tcmalloc", with_tcmalloc(base_env)),
                           ("peer + tcmalloc + OpenMP BLAS", with_openmp_blas(with_tcmalloc(base_env)))):
            j = run_json(peer_cmd, env, label)
            ppl = {"baseline": j["baseline_ppl"], **j["ppl"]}
            rows.append((label, j["seconds"], f"torch {j['torch']}, {j['threads']} threads, {j['blas']}, "
                                              f"{j['malloc']}", ppl))

        # Agreement: every variant's PPL against spt fused.
        ref = rows[0][3]
        worst_rel, worst_dppl, bad = 0.0, 0.0, []
        for label, _, _, ppl in rows[1:]:
            for name, p in ref.items():
                q = ppl[name]
                rel = abs(q - p) / abs(p)
                dp = abs((q - ppl["baseline"]) / ppl["baseline"] - (p - ref["baseline"]) / ref["baseline"])
                worst_rel, worst_dppl = max(worst_rel, rel), max(worst_dppl, dp)
                if not rel <= TOLERANCE:
                    bad.append(f"{label} {name}: PPL {q:.9g} vs spt fused {p:.9g} (rel {rel:.2e})")

        fused = rows[0][1]
        print(f"\nexp10 part A, {n_var} variants (baseline + {len(heads)} heads) of {n_full}; "
              f"{a.chunks} x {a.chunk_len} tokens; {L} x {H}, d_model {cfg['n_embd']}")
        print(f"{'run':<31}{'seconds':>10}{'s/variant':>11}{'full A (proj.)':>16}{'fused speed-up':>16}  libraries")
        for label, s, libs, _ in rows:
            print(f"{label:<31}{s:>10.2f}{s / n_var:>11.3f}{s / n_var * n_full:>15.1f}s{s / fused:>15.2f}x  {libs}")
        print(f"agreement: largest relative PPL difference {worst_rel:.2e}, largest |ΔPPL difference| "
              f"{worst_dppl:.2e} (tolerance {TOLERANCE:g} relative on every PPL)")
        print(json.dumps({"bench": "exp10a_vs_peer", "variants": n_var, "full_variants": n_full,
                          "model": {"n_layer": L, "n_head": H, "d_model": cfg["n_embd"], "vocab": V},
                          "chunks": a.chunks, "chunk_len": a.chunk_len, "threads": a.threads,
                          "rows": [{"run": r[0], "seconds": r[1], "libraries": r[2]} for r in rows],
                          "max_rel_ppl_diff": worst_rel, "max_abs_dppl_diff": worst_dppl}))
        if bad:
            print("DISAGREEMENT:\n  " + "\n  ".join(bad[:20]), file=sys.stderr)
            return 1
        return 0
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
