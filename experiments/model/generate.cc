// Text generation and tail scoring (spec §10.4 P1–P3, §12 A10/A11).
//
// Two paths, chosen by GenerateOptions::kv_cache:
//  * full recompute (the original): every step runs the whole current
//    sequence through the hooked forward (the variant's interventions active,
//    as gpt2::run with RunOptions::variant) and reads the last position's
//    logits;
//  * KV cache: the prompt runs once through the same forward while hooks copy
//    each block's hook_k / hook_v into per-layer caches; then each new token
//    runs as a single query row against the cached keys and values. The
//    variant acts on that row exactly as the full forward acts on the same
//    query position: zero/mean/replace/scale at hook_z, relu/l1/identity
//    replace the head's pattern row by W/rowsum built from the row's scores
//    over keys 0..t (the full forward's S' has zeros at the masked future
//    keys, which add nothing to W or to the row sums, so the row is the same).
//    An op with position p acts only when the query position is p.
// Both paths give the same logits up to fp32 round-off, hence the same greedy
// tokens (a test). Under bf16 (or fast_attention) the full path uses the fused
// attention kernel where no op reads the pattern, and the KV path does the
// same for its single row; different kernels, so round-off differs more there.
//
// Token choice, from the last position's fp32 logits copied to the CPU:
//  * temperature 0: argmax, first index on ties (NaN never wins);
//  * temperature T > 0: p_i ∝ exp((l_i − max l)/T) computed in double; one
//    uniform double u ∈ [0, 1) per step from xoshiro256** seeded by
//    splitmix64(seed) (53 high bits); the token is the first index i (vocab
//    order) with Σ_{j≤i} p_j > u·Σ_j p_j. The stream depends only on `seed`,
//    so equal logits give equal tokens on every device and worker.
#include <ATen/ATen.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu_runtime.h"
#include "forward.h"
#include "precision.h"

namespace spt::gpt2 {
namespace {

// ---- seeded, device-independent RNG -----------------------------------------
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class Xoshiro256ss {
 public:
  explicit Xoshiro256ss(uint64_t seed) {
    uint64_t x = seed;
    for (auto& w : s_) w = splitmix64(x);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// ---- token choice --------------------------------------------------------------
int32_t argmax_first(const float* l, int64_t n) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(l[i]) && (best < 0 || l[i] > l[best])) best = i;
  if (best < 0) throw std::runtime_error("generate: every logit is NaN");
  return static_cast<int32_t>(best);
}

int32_t sample(const float* l, int64_t n, double temperature, Xoshiro256ss& rng) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(l[i])) mx = std::max(mx, static_cast<double>(l[i]));
  if (!std::isfinite(mx)) throw std::runtime_error("generate: no finite logit to sample from");
  std::vector<double> p(static_cast<size_t>(n));
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double li = l[i];
    const double e = std::isnan(li) ? 0.0 : std::exp((li - mx) / temperature);  // −∞ → 0
    p[static_cast<size_t>(i)] = e;
    total += e;
  }
  const double target = rng.uniform() * total;
  double cum = 0;
  int64_t last = -1;
  for (int64_t i = 0; i < n; ++i) {
    const double pi = p[static_cast<size_t>(i)];
    if (pi <= 0) continue;
    cum += pi;
    last = i;
    if (cum > target) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last);  // round-off at the very top of the CDF
}

// ---- variants per position -------------------------------------------------------
// The ops the full forward over T tokens applies: those at a position not
// reached yet are dropped (the forward rejects positions ≥ T).
Variant ops_within(const Variant& v, int64_t T) {
  Variant out;
  for (const auto& op : v.ops)
    if (op.position < T) out.ops.push_back(op);
  return out;
}

// The ops acting on query position t, re-expressed for a 1-token row
// (position −1 = that row).
Variant ops_at(const Variant& v, int64_t t) {
  Variant out;
  for (const auto& op : v.ops)
    if (op.position < 0 || op.position == t) {
      out.ops.push_back(op);
      out.ops.back().position = -1;
    }
  return out;
}

bool is_attn_op(HeadOp op) {
  return op == HeadOp::attn_relu || op == HeadOp::attn_l1 || op == HeadOp::attn_identity;
}

void check_tokens(const std::vector<int32_t>& toks, const Config& c, const char* what) {
  for (size_t i = 0; i < toks.size(); ++i)
    if (toks[i] < 0 || toks[i] >= c.vocab)
      throw std::invalid_argument(std::string(what) + ": token id " + std::to_string(toks[i]) + " at index " +
                                  std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(c.vocab) +
                                  ")");
}

at::Tensor to_device_tokens(const std::vector<int32_t>& ids, at::Device dev) { return tokens_tensor(ids).to(dev); }

bool uses_fast_attention(const Model& m) {
  return m.options().fast_attention || m.options().precision == Precision::bf16;
}

// Last position's logits of one full hooked forward, as fp32 on the CPU.
at::Tensor last_logits_full(const Forward& fwd, const at::Tensor& tokens, const HookSet& hs, int n_layer) {
  const int64_t T = tokens.size(1);
  at::Tensor resid = fwd.embed(tokens, hs);
  for (int l = 0; l < n_layer; ++l) resid = fwd.block(l, resid, hs);
  return fwd.unembed(fwd.final_norm(resid.narrow(1, T - 1, 1), hs)).reshape({-1}).to(at::kCPU).contiguous();
}

class Chooser {
 public:
  Chooser(double temperature, uint64_t seed) : temperature_(temperature), rng_(seed) {}
  int32_t operator()(const at::Tensor& logits_cpu) {
    const float* l = logits_cpu.data_ptr<float>();
    const int64_t n = logits_cpu.numel();
    return temperature_ == 0 ? argmax_first(l, n) : sample(l, n, temperature_, rng_);
  }

 private:
  double temperature_;
  Xoshiro256ss rng_;
};

std::vector<int32_t> generate_full(Model& m, const std::vector<int32_t>& prompt, const Variant& v,
                                   const GenerateOptions& opt) {
  const Config& c = m.info().config;
  const at::Device dev = device(m);
  Chooser choose(opt.temperature, opt.seed);
  std::vector<int32_t> seq = prompt, out;
  for (int i = 0; i < opt.max_new_tokens; ++i) {
    // A Forward per step: it caches a causal mask per length, which here would
    // pile up one [T, T] mask for every T.
    const Forward fwd(weights(m), c, uses_fast_attention(m));
    const int64_t T = static_cast<int64_t>(seq.size());
    const Variant vt = ops_within(v, T);
    HookSet hs;
    if (!vt.ops.empty()) hs.rows.push_back({0, 1, &vt});
    const int32_t next = choose(last_logits_full(fwd, to_device_tokens(seq, dev), hs, c.n_layer));
    seq.push_back(next);
    out.push_back(next);
  }
  return out;
}

std::vector<int32_t> generate_kv(Model& m, const std::vector<int32_t>& prompt, const Variant& v,
                                 const GenerateOptions& opt) {
  const Config& c = m.info().config;
  const Weights& w = weights(m);
  const bool fast = uses_fast_attention(m);
  const Forward fwd(w, c, fast);
  const at::Device dev = device(m);
  const int64_t H = c.n_head, dh = c.d_head, P = static_cast<int64_t>(prompt.size());
  // Positions that ever get processed: the prompt and every new token but the last.
  const int64_t N = P + opt.max_new_tokens - 1;
  const at::ScalarType mdt = w.blocks.at(0).W_QKV.scalar_type();
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(dev);
  std::vector<at::Tensor> K, V;  // per layer [1, H, N, dh]
  for (int l = 0; l < c.n_layer; ++l) {
    K.push_back(at::empty({1, H, N, dh}, f32));
    V.push_back(at::empty({1, H, N, dh}, f32));
  }
  Chooser choose(opt.temperature, opt.seed);
  std::vector<int32_t> out;

  // The prompt: the full forward, its k and v copied into the caches.
  {
    std::vector<Hook> hooks;
    for (int l = 0; l < c.n_layer; ++l) {
      auto put = [P](at::Tensor& cache) {
        return [&cache, P](const at::Tensor& act, const std::string&) {  // act [1, P, H, dh]
          cache.narrow(2, 0, P).copy_(act.permute({0, 2, 1, 3}));
          return at::Tensor();
        };
      };
      hooks.push_back({hook_name(l, "attn.hook_k"), put(K[static_cast<size_t>(l)])});
      hooks.push_back({hook_name(l, "attn.hook_v"), put(V[static_cast<size_t>(l)])});
    }
    const Variant vp = ops_within(v, P);
    HookSet hs;
    hs.hooks = &hooks;
    if (!vp.ops.empty()) hs.rows.push_back({0, 1, &vp});
    out.push_back(choose(last_logits_full(fwd, to_device_tokens(prompt, dev), hs, c.n_layer)));
  }

  const double scale = std::sqrt(static_cast<double>(dh));
  for (int64_t t = P; static_cast<int64_t>(out.size()) < opt.max_new_tokens; ++t) {
    const int64_t tok = out.back();
    const Variant vt = ops_at(v, t);
    HookSet hs;
    if (!vt.ops.empty()) hs.rows.push_back({0, 1, &vt});
    at::Tensor resid = (w.W_E.narrow(0, tok, 1) + w.W_pos.narrow(0, t, 1)).view({1, 1, c.d_model});
    for (int l = 0; l < c.n_layer; ++l) {
      const BlockWeights& bw = w.blocks[static_cast<size_t>(l)];
      const at::Tensor x = at::layer_norm(resid, {c.d_model}, bw.ln1_w, bw.ln1_b, c.eps);
      const at::Tensor qkv = linear(x, bw.W_QKV, bw.b_QKV).view({3, H, dh});
      at::Tensor& Kl = K[static_cast<size_t>(l)];
      at::Tensor& Vl = V[static_cast<size_t>(l)];
      Kl.select(2, t).copy_(qkv[1].unsqueeze(0));
      Vl.select(2, t).copy_(qkv[2].unsqueeze(0));
      const at::Tensor Kt = Kl.narrow(2, 0, t + 1), Vt = Vl.narrow(2, 0, t + 1);  // [1, H, t+1, dh]
      const at::Tensor q = qkv[0].view({1, H, 1, dh});
      std::vector<const HeadIntervention*> attn_ops;
      for (const auto& op : vt.ops)
        if (op.layer == l && is_attn_op(op.op)) attn_ops.push_back(&op);
      at::Tensor z;  // [1, H, 1, dh]
#if TORCH_VERSION_MAJOR >= 2
      if (fast && attn_ops.empty())
        z = at::scaled_dot_product_attention(q.to(mdt), Kt.to(mdt), Vt.to(mdt), {}, 0.0, /*is_causal=*/false)
                .to(at::kFloat);
#endif
      if (!z.defined()) {
        at::Tensor scores = matmul(q, Kt.transpose(2, 3), mdt);  // [1, H, 1, t+1]; every key is visible
        scores.div_(scale);
        at::Tensor pattern = at::softmax(scores, -1);
        for (const HeadIntervention* op : attn_ops) {
          const at::Tensor S = scores.select(1, op->head);  // [1, 1, t+1], all finite: S' = S
          at::Tensor Wt, rowsum;
          switch (op->op) {
            case HeadOp::attn_relu:
              Wt = S.clamp_min(0);
              rowsum = Wt.sum(-1, true).clamp_min(1e-8);
              break;
            case HeadOp::attn_l1:
              Wt = S.abs();
              rowsum = Wt.sum(-1, true).clamp_min(1e-8);
              break;
            default:
              Wt = S;
              rowsum = Wt.abs().sum(-1, true).clamp_min(1e-8);
              break;
          }
          pattern.select(1, op->head).copy_(Wt / rowsum);
        }
        z = matmul(pattern, Vt, mdt);
      }
      resid = fwd.block_after_z(l, resid, z.permute({0, 2, 1, 3}).contiguous(), hs);  // z ops at hook_z
    }
    out.push_back(choose(fwd.unembed(fwd.final_norm(resid, hs)).reshape({-1}).to(at::kCPU).contiguous()));
  }
  return out;
}

}  // namespace

Generation generate(Model& m, const std::vector<int32_t>& prompt, const Variant& v, const GenerateOptions& opt) {
  const Config& c = m.info().config;
  if (prompt.empty()) throw std::invalid_argument("generate: empty prompt");
  if (!v.projections.empty()) throw std::invalid_argument("generate: residual projections are not supported here");
  check_tokens(prompt, c, "generate");
  if (opt.max_new_tokens < 0)
    throw std::invalid_argument("generate: max_new_tokens is negative (" + std::to_string(opt.max_new_tokens) + ")");
  if (static_cast<int64_t>(prompt.size()) + opt.max_new_tokens > c.n_ctx)
    throw std::invalid_argument("generate: prompt of " + std::to_string(prompt.size()) + " tokens + " +
                                std::to_string(opt.max_new_tokens) + " new tokens exceeds n_ctx = " +
                                std::to_string(c.n_ctx));
  if (!(opt.temperature >= 0) || !std::isfinite(opt.temperature))
    throw std::invalid_argument("generate: temperature must be finite and >= 0, got " +
                                std::to_string(opt.temperature));
  validate(v, c);
  Generation g;
  g.kv_cache = opt.kv_cache;
  g.seed = opt.seed;
  if (opt.max_new_tokens == 0) return g;
  at::NoGradGuard no_grad;
  const PrecisionScope precision(m.options().precision);  // this model's TF32 settings
  use_model_threads(m.options());                          // this thread's LibTorch + BLAS threads
  g.tokens = opt.kv_cache ? generate_kv(m, prompt, v, opt) : generate_full(m, prompt, v, opt);
  return g;
}

NllSum score_tail(Model& m, const std::vector<int32_t>& tokens, int from) {
  const Config& c = m.info().config;
  if (tokens.empty()) throw std::invalid_argument("score_tail: empty token sequence");
  if (static_cast<int64_t>(tokens.size()) > c.n_ctx)
    throw std::invalid_argument("score_tail: " + std::to_string(tokens.size()) + " tokens, more than n_ctx = " +
                                std::to_string(c.n_ctx));
  check_tokens(tokens, c, "score_tail");
  NllSum r;
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t s = std::max<int64_t>(from, 1);
  if (s >= T) return r;
  at::NoGradGuard no_grad;
  const PrecisionScope precision(m.options().precision);
  use_model_threads(m.options());
  const Forward fwd(weights(m), c, uses_fast_attention(m));
  const at::Tensor toks = to_device_tokens(tokens, device(m));
  const HookSet clean;
  at::Tensor resid = fwd.embed(toks, clean);
  for (int l = 0; l < c.n_layer; ++l) resid = fwd.block(l, resid, clean);
  // Positions s−1 … T−2 predict tokens s … T−1; logits in slices of ≤ ~64 MB.
  const int64_t n = T - s + 1;
  const at::Tensor x = fwd.final_norm(resid.narrow(1, s - 1, n), clean);
  const int64_t slice = std::clamp<int64_t>((64ll << 20) / (4 * static_cast<int64_t>(c.vocab)), 16, 4096);
  r.nll = fwd.row_nll(x, toks.narrow(1, s - 1, n), slice).item<double>();
  r.count = T - s;
  return r;
}

}  // namespace spt::gpt2
