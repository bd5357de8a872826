// spt-engine bench: how fast the engine is on this machine.
//
//  1. forward: NLL of B random chunks of T tokens on a GPT-2-small-shaped
//     model (random weights, written once to /tmp), tokens/s and achieved
//     GFLOP/s (matmul FLOPs: QKV, scores, p·v, W_O, MLP, unembed);
//  2. roofline: the same matmuls alone, as plain addmm/bmm calls on random
//     data of the same shapes, with the BLAS on every thread the forward
//     uses (--threads; also when the engine pins a pthread OpenBLAS to one)
//     — the ratio forward/matmul-only says how much of the machine's matmul
//     rate the forward reaches;
//  3. fusion: N single-head zero-ablations + baseline via nll_many (shared
//     clean prefix, batched suffixes) vs one nll() per variant;
//  4. --exp10a: baseline + every single-head zero-ablation over 2×1024
//     random tokens, timed like /work/shared/bench/peer_exp10a.py.
// Prints human lines, then one JSON line.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine_cli.h"
#include "model/cpu_runtime.h"
#include "model/testmodel.h"
#include "spt/gpt2_hooks.h"
#include "spt/util.h"

using nlohmann::json;
namespace gpt2 = spt::gpt2;

namespace spt::engine_cli {
namespace {

gpt2::Chunks random_tokens(int64_t n, int64_t T, int vocab, uint64_t seed) {
  gpt2::Chunks c(static_cast<size_t>(n));
  uint64_t x = seed + 0x9E3779B97F4A7C15ull;
  for (auto& ch : c)
    for (int64_t i = 0; i < T; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      ch.push_back(static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(vocab)));
    }
  return c;
}

// Best-of-`reps` wall time of f (after one untimed warm-up call).
template <class F>
double best_time(int reps, F&& f) {
  f();
  double best = 1e300;
  for (int i = 0; i < reps; ++i) {
    const double t0 = monotonic_s();
    f();
    best = std::min(best, monotonic_s() - t0);
  }
  return best;
}

// Matmul FLOPs of one forward + loss over B×T tokens (full T×T score matrix,
// as computed).
double forward_flops(const gpt2::Config& c, int64_t B, int64_t T) {
  const double d = c.d_model, m = c.d_mlp, t = static_cast<double>(T);
  const double per_layer = 2 * t * d * 3 * d + 2 * t * d * d + 2 * 2 * t * d * m + 2 * 2 * t * t * d;
  return static_cast<double>(B) * (c.n_layer * per_layer + 2 * (t - 1) * d * c.vocab);
}

// The forward's matmuls alone, on random data of the same shapes and dtype.
double matmul_only_time(const gpt2::Config& c, int64_t B, int64_t T, at::Device dev, at::ScalarType dt,
                        int reps) {
  const auto o = at::TensorOptions().device(dev).dtype(dt);
  const int64_t N = B * T, d = c.d_model, H = c.n_head, dh = c.d_head;
  const at::Tensor x = at::randn({N, d}, o), Wqkv = at::randn({d, 3 * d}, o), Wo = at::randn({d, d}, o);
  const at::Tensor Win = at::randn({d, c.d_mlp}, o), Wout = at::randn({c.d_mlp, d}, o);
  const at::Tensor hid = at::randn({N, c.d_mlp}, o), q = at::randn({B * H, T, dh}, o);
  const at::Tensor kt = at::randn({B * H, dh, T}, o), p = at::randn({B * H, T, T}, o);
  const at::Tensor WU = at::randn({d, c.vocab}, o);
  const int64_t slice = 4096;  // the engine's loss slices are of this order
  return best_time(reps, [&] {
    at::Tensor acc;
    for (int l = 0; l < c.n_layer; ++l) {
      acc = at::mm(x, Wqkv);
      acc = at::bmm(q, kt);
      acc = at::bmm(p, q);
      acc = at::mm(x, Wo);
      acc = at::mm(x, Win);
      acc = at::mm(hid, Wout);
    }
    for (int64_t r = 0; r < B * (T - 1); r += slice) acc = at::mm(x.narrow(0, r, std::min(slice, B * (T - 1) - r)), WU);
    (void)acc.sum().item<float>();  // waits for the device
  });
}

std::string ensure_bench_model(const std::string& preset) {
  gpt2::TestModelSpec s;
  if (preset == "gpt2") s.n_layer = 12, s.n_head = 12, s.d_model = 768, s.n_ctx = 1024;
  else if (preset == "gpt2-medium") s.n_layer = 24, s.n_head = 16, s.d_model = 1024, s.n_ctx = 1024;
  else throw std::invalid_argument("--preset must be gpt2 or gpt2-medium");
  const std::string dir = (std::filesystem::temp_directory_path() / ("spt-bench-" + preset + "-seed0")).string();
  if (!std::filesystem::exists(dir + "/model.safetensors") || !std::filesystem::exists(dir + "/config.json")) {
    std::cerr << "writing random " << preset << "-shaped model to " << dir << " ...\n";
    gpt2::write_test_model(dir, s);
  }
  return dir;
}

}  // namespace

int bench_main(Args& a) {
  const auto opt = load_options(a);
  const bool quick = a.flag("quick");
  const int64_t T = a.integer("seq", quick ? 256 : 1024);
  const int64_t B = a.integer("batch", 2);
  const int reps = static_cast<int>(a.integer("repeat", quick ? 1 : 3));
  const int n_abl = static_cast<int>(a.integer("ablate-heads", 12));
  const bool exp10a = a.flag("exp10a");
  const bool unfused = a.flag("unfused");
  const bool json_only = a.flag("json");
  const std::string model = a.has("model") ? a.str("model") : ensure_bench_model(a.str("preset", "gpt2"));
  a.finish();

  auto m = gpt2::load_model(model, opt);
  const gpt2::Config& c = m->info().config;
  if (T > c.n_ctx) throw std::invalid_argument("--seq exceeds n_ctx");
  const at::Device dev = gpt2::device(*m);
  const at::ScalarType mdt = opt.precision == gpt2::Precision::bf16 ? at::kBFloat16 : at::kFloat;
  const gpt2::BlasRuntime blas = gpt2::blas_runtime();  // as the forward runs
  std::ostringstream h;
  h << "device " << gpt2::device_description(opt.device) << ", " << gpt2::to_string(opt.precision) << ", LibTorch "
    << gpt2::torch_version() << "\nmodel " << model << ": " << c.n_layer << " layers, " << c.n_head << " heads, d_model "
    << c.d_model << ", vocab " << c.vocab << "\n";
  json out = {{"bench", "spt-engine"},
              {"device", gpt2::device_description(opt.device)},
              {"precision", gpt2::to_string(opt.precision)},
              {"torch", gpt2::torch_version()},
              {"threads", opt.threads},
              {"blas", {{"vendor", blas.vendor}, {"version", blas.version}, {"parallel", blas.parallel},
                        {"threads", blas.threads}, {"config", blas.config}}},
              {"model", {{"dir", model}, {"n_layer", c.n_layer}, {"n_head", c.n_head}, {"d_model", c.d_model}}},
              {"batch", B},
              {"seq", T}};

  // 1–2. Forward throughput and the matmul roofline.
  const gpt2::Chunks chunks = random_tokens(B, T, c.vocab, 1);
  const double t_fwd = best_time(reps, [&] { (void)m->nll(chunks, {}); });
  const double flops = forward_flops(c, B, T);
  // The roofline: every GEMM on all the forward's threads.
  const int mm_threads = std::max(1, opt.threads);
  gpt2::set_pthread_blas_threads(mm_threads);
  const int mm_blas_threads = gpt2::blas_runtime().threads;
  const double t_mm = matmul_only_time(c, B, T, dev, mdt, reps);
  gpt2::set_pthread_blas_threads(blas.threads > 0 ? blas.threads : 1);
  const double tok_s = static_cast<double>(B * T) / t_fwd;
  const double gf_fwd = flops / t_fwd / 1e9, gf_mm = flops / t_mm / 1e9;
  char line[512];
  std::snprintf(line, sizeof line,
                "forward+loss: %.3f s for %lld x %lld tokens = %.0f tokens/s, %.1f GFLOP/s\n"
                "same matmuls alone (BLAS on %d threads): %.3f s = %.1f GFLOP/s; forward at %.0f %% of it\n",
                t_fwd, static_cast<long long>(B), static_cast<long long>(T), tok_s, gf_fwd, mm_blas_threads, t_mm, gf_mm,
                100 * gf_fwd / gf_mm);
  h << line;
  out["forward"] = {{"seconds", t_fwd}, {"tokens_per_s", tok_s}, {"gflop", flops / 1e9}, {"gflops", gf_fwd}};
  out["matmul_only"] = {{"seconds", t_mm}, {"gflops", gf_mm}, {"blas_threads", mm_blas_threads},
                        {"roofline_ratio", gf_fwd / gf_mm}};

  // 3. Fused vs unfused single-head ablations (heads spread over the layers).
  if (n_abl > 0) {
    std::vector<gpt2::Variant> vs(1);
    for (int k = 0; k < n_abl; ++k) {
      const int l = static_cast<int>(static_cast<int64_t>(k) * c.n_layer / n_abl), hd = k % c.n_head;
      vs.push_back({{gpt2::HeadIntervention{l, hd, gpt2::HeadOp::zero}}});
    }
    std::vector<gpt2::NllSum> fused, seq;
    const double t0 = monotonic_s();
    fused = m->nll_many(chunks, vs);
    const double t_fused = monotonic_s() - t0;
    const double t1 = monotonic_s();
    for (const auto& v : vs) seq.push_back(m->nll(chunks, v));
    const double t_seq = monotonic_s() - t1;
    double max_rel = 0;
    for (size_t i = 0; i < vs.size(); ++i) max_rel = std::max(max_rel, std::abs(fused[i].nll - seq[i].nll) / seq[i].nll);
    std::snprintf(line, sizeof line,
                  "%zu variants (baseline + %d single-head zero ablations): fused %.3f s, one at a time %.3f s, "
                  "speed-up %.2fx (max rel. diff %.1e)\n",
                  vs.size(), n_abl, t_fused, t_seq, t_seq / t_fused, max_rel);
    h << line;
    out["fusion"] = {{"variants", vs.size()}, {"fused_s", t_fused}, {"unfused_s", t_seq},
                     {"speedup", t_seq / t_fused}, {"max_rel_diff", max_rel}};
  }

  // 4. exp10A: baseline + all single-head zero ablations over 2×1024 tokens.
  if (exp10a) {
    const int64_t T10 = std::min<int64_t>(1024, c.n_ctx);
    const gpt2::Chunks v2k = random_tokens(2, T10, c.vocab, 2);
    std::vector<gpt2::Variant> vs(1);
    for (int l = 0; l < c.n_layer; ++l)
      for (int hd = 0; hd < c.n_head; ++hd) vs.push_back({{gpt2::HeadIntervention{l, hd, gpt2::HeadOp::zero}}});
    const double fwd_tokens = static_cast<double>(2 * T10) * static_cast<double>(vs.size());
    (void)m->nll(gpt2::Chunks{v2k[0]}, {});  // warm-up
    double t0 = monotonic_s();
    const auto res = m->nll_many(v2k, vs);
    const double t_fused = monotonic_s() - t0;
    double max_ppl = 0;
    for (size_t i = 1; i < res.size(); ++i) max_ppl = std::max(max_ppl, res[i].ppl());
    std::snprintf(line, sizeof line,
                  "exp10A (%zu PPL units over 2x%lld tokens): fused %.2f s = %.0f forward tokens/s; baseline PPL %.4f\n",
                  vs.size(), static_cast<long long>(T10), t_fused, fwd_tokens / t_fused, res[0].ppl());
    h << line;
    out["exp10a"] = {{"variants", vs.size()},     {"seconds", t_fused},      {"forward_tokens", fwd_tokens},
                     {"tokens_per_s", fwd_tokens / t_fused}, {"baseline_ppl", res[0].ppl()}, {"max_ablated_ppl", max_ppl}};
    if (unfused) {
      t0 = monotonic_s();
      for (const auto& v : vs) (void)m->nll(v2k, v);
      const double t_un = monotonic_s() - t0;
      std::snprintf(line, sizeof line, "exp10A one variant at a time: %.2f s = %.0f forward tokens/s (fused %.2fx)\n",
                    t_un, fwd_tokens / t_un, t_un / t_fused);
      h << line;
      out["exp10a"]["unfused_seconds"] = t_un;
      out["exp10a"]["speedup"] = t_un / t_fused;
    }
  }
  if (!json_only) std::cout << h.str();
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace spt::engine_cli
