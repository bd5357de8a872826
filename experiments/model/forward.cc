#include "forward.h"

#include <torch/version.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace spt::gpt2 {
namespace {

// LayerNorm over d_model; with undefined w/b this is TransformerLens's LNPre:
// (x − mean) / sqrt(mean((x − mean)²) + eps).
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  return at::layer_norm(x, {x.size(-1)}, w, b, eps);
}

struct HeadOpAt {
  int64_t begin, end;
  const HeadIntervention* op;
};

bool is_attn_op(HeadOp op) {
  return op == HeadOp::attn_relu || op == HeadOp::attn_l1 || op == HeadOp::attn_identity;
}

// Softmax pattern rows → W/rowsum built from the masked scores (spec §10).
void apply_attn_op(at::Tensor& pattern, const at::Tensor& scores, const HeadOpAt& o) {
  const int64_t n = o.end - o.begin;
  at::Tensor S = scores.narrow(0, o.begin, n).select(1, o.op->head);  // [n, Tq, Tk]
  at::Tensor P = pattern.narrow(0, o.begin, n).select(1, o.op->head);
  if (o.op->position >= 0) {
    S = S.select(1, o.op->position);
    P = P.select(1, o.op->position);
  }
  // S' = S with non-finite entries (the −∞ future keys) set to 0.
  const at::Tensor Sp = at::where(at::isfinite(S), S, at::zeros_like(S));
  at::Tensor W, rowsum;
  switch (o.op->op) {
    case HeadOp::attn_relu:
      W = Sp.clamp_min(0);
      rowsum = W.sum(-1, true).clamp_min(1e-8);
      break;
    case HeadOp::attn_l1:
      W = Sp.abs();
      rowsum = W.sum(-1, true).clamp_min(1e-8);
      break;
    default:  // identity
      W = Sp;
      rowsum = W.abs().sum(-1, true).clamp_min(1e-8);
      break;
  }
  P.copy_(W / rowsum);
}

void apply_z_op(at::Tensor& z, const HeadOpAt& o) {
  at::Tensor Z = z.narrow(0, o.begin, o.end - o.begin).select(2, o.op->head);  // [n, T, d_head]
  if (o.op->position >= 0) Z = Z.select(1, o.op->position);
  switch (o.op->op) {
    case HeadOp::zero:
      Z.zero_();
      break;
    case HeadOp::scale:
      Z.mul_(o.op->scale);
      break;
    case HeadOp::mean:
    case HeadOp::replace: {
      const auto& v = o.op->values;
      at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kFloat);
      std::copy(v.begin(), v.end(), t.data_ptr<float>());
      Z.copy_(t.to(z.device()).expand_as(Z));
      break;
    }
    default:
      break;
  }
}

const char* const kBlockPoints[] = {
    "hook_resid_pre",      "ln1.hook_normalized", "attn.hook_q",     "attn.hook_k",
    "attn.hook_v",         "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z",
    "hook_attn_out",       "hook_resid_mid",      "ln2.hook_normalized", "mlp.hook_pre",
    "mlp.hook_post",       "hook_mlp_out",        "hook_resid_post",
};

}  // namespace

std::string hook_name(int layer, const std::string& point) {
  return "blocks." + std::to_string(layer) + "." + point;
}

std::set<std::string> all_hook_names(int n_layer) {
  std::set<std::string> s = {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized"};
  for (int l = 0; l < n_layer; ++l)
    for (const char* p : kBlockPoints) s.insert(hook_name(l, p));
  return s;
}

void validate(const Variant& v, const Config& c) {
  for (const auto& h : v.ops) {
    const std::string at = "head op " + std::string(to_string(h.op)) + " on L" + std::to_string(h.layer) + "H" +
                           std::to_string(h.head);
    if (h.layer < 0 || h.layer >= c.n_layer) throw std::invalid_argument(at + ": layer out of range");
    if (h.head < 0 || h.head >= c.n_head) throw std::invalid_argument(at + ": head out of range");
    if (h.position >= c.n_ctx) throw std::invalid_argument(at + ": position beyond n_ctx");
    if ((h.op == HeadOp::mean || h.op == HeadOp::replace) &&
        h.values.size() != static_cast<size_t>(c.d_head))
      throw std::invalid_argument(at + ": needs " + std::to_string(c.d_head) + " values, got " +
                                  std::to_string(h.values.size()));
    if (h.op == HeadOp::scale && !std::isfinite(h.scale)) throw std::invalid_argument(at + ": scale is not finite");
  }
  std::set<int> projected;
  for (const auto& p : v.projections) {
    const std::string at = "residual projection on block " + std::to_string(p.layer);
    const size_t d = static_cast<size_t>(c.d_model);
    if (p.layer < 0 || p.layer >= c.n_layer) throw std::invalid_argument(at + ": layer out of range");
    if (!projected.insert(p.layer).second) throw std::invalid_argument(at + ": given twice");
    if (p.mean.size() != d || p.basis.empty() || p.basis.size() % d != 0)
      throw std::invalid_argument(at + " (" + p.source + "): needs a mean of " + std::to_string(d) +
                                  " values and a basis of rows × " + std::to_string(d) + " (got " +
                                  std::to_string(p.mean.size()) + " and " + std::to_string(p.basis.size()) + ")");
    if (p.k < 1 || static_cast<size_t>(p.k) > p.basis.size() / d)
      throw std::invalid_argument(at + ": k = " + std::to_string(p.k) + " but the basis has " +
                                  std::to_string(p.basis.size() / d) + " rows");
  }
}

bool HookSet::wants(const std::string& name) const {
  if (cache && cache->count(name)) return true;
  if (hooks)
    for (const auto& h : *hooks)
      if (h.name == name) return true;
  return false;
}

void HookSet::apply(const std::string& name, at::Tensor& act) const {
  if (hooks)
    for (const auto& h : *hooks) {
      if (h.name != name) continue;
      at::Tensor r = h.fn(act, name);
      if (!r.defined()) continue;
      if (r.sizes() != act.sizes())
        throw std::invalid_argument("hook on " + name + " returned a tensor of shape " + std::to_string(r.dim()) +
                                    "-d with different sizes than the activation");
      act = r.to(act.device(), at::kFloat);
    }
  if (cache && cache_out && cache->count(name)) (*cache_out)[name] = act;
}

Forward::Forward(const Weights& w, const Config& c, bool fast_attention)
    : w_(w), c_(c), fast_attention_(fast_attention) {}

at::Tensor Forward::causal_mask(int64_t T, at::Device dev) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = masks_.find(T);
  if (it != masks_.end() && it->second.device() == dev) return it->second;
  at::Tensor m = at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(dev)).triu(1);
  masks_[T] = m;
  return m;
}

at::Tensor Forward::embed(const at::Tensor& tokens, const HookSet& hs) const {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  at::Tensor embed = w_.W_E.index_select(0, tokens.reshape({-1})).view({B, T, c_.d_model});
  at::Tensor pos = w_.W_pos.narrow(0, 0, T).unsqueeze(0).expand({B, T, c_.d_model});
  if (hs.named()) {
    hs.apply("hook_embed", embed);
    hs.apply("hook_pos_embed", pos);
  }
  return embed + pos;
}

namespace {

// Block l's interventions, split by the hook point they act at.
void layer_ops(int l, int64_t T, const HookSet& hs, std::vector<HeadOpAt>* z_ops, std::vector<HeadOpAt>* attn_ops) {
  for (const auto& r : hs.rows)
    for (const auto& op : r.variant->ops) {
      if (op.layer != l) continue;
      if (op.position >= T)
        throw std::invalid_argument("head op at position " + std::to_string(op.position) + " but the sequence has " +
                                    std::to_string(T) + " tokens");
      auto* dst = is_attn_op(op.op) ? attn_ops : z_ops;
      if (dst) dst->push_back({r.begin, r.end, &op});
    }
}

struct Hooker {
  const HookSet& hs;
  bool named;
  std::string prefix;
  Hooker(const HookSet& h, int l) : hs(h), named(h.named()) {
    if (named) prefix = "blocks." + std::to_string(l) + ".";
  }
  void operator()(const char* point, at::Tensor& t) const {
    if (named) hs.apply(prefix + point, t);
  }
  bool wants(const char* point) const { return named && hs.wants(prefix + point); }
};

// Block l's residual projections (spec §7 D), per batch-row range:
// post ← pre + ((post − pre − μ)·U_kᵀ·U_k + μ), in float32.
void project_updates(int l, const at::Tensor& pre, at::Tensor& post, const HookSet& hs) {
  for (const auto& r : hs.rows)
    for (const auto& p : r.variant->projections) {
      if (p.layer != l) continue;
      const int64_t d = post.size(-1), rows = static_cast<int64_t>(p.basis.size()) / d;
      auto* basis = const_cast<float*>(p.basis.data());  // from_blob only reads it here
      auto* mean = const_cast<float*>(p.mean.data());
      const at::Tensor U = at::from_blob(basis, {rows, d}, at::kFloat).narrow(0, 0, p.k).to(post.device());
      const at::Tensor mu = at::from_blob(mean, {d}, at::kFloat).to(post.device());
      const at::Tensor pre_r = pre.narrow(0, r.begin, r.end - r.begin);
      at::Tensor post_r = post.narrow(0, r.begin, r.end - r.begin);
      const at::Tensor centred = post_r - pre_r - mu;
      post_r.copy_(pre_r + at::matmul(at::matmul(centred, U.t()), U) + mu);
    }
}

}  // namespace

at::Tensor Forward::block(int l, const at::Tensor& resid, const HookSet& hs) const {
  at::Tensor r = resid;
  at::Tensor z = attention_z(l, r, hs);
  return block_after_z(l, r, z, hs);
}

at::Tensor Forward::attention_z(int l, at::Tensor& resid, const HookSet& hs) const {
  const BlockWeights& w = w_.blocks[static_cast<size_t>(l)];
  const int64_t B = resid.size(0), T = resid.size(1);
  const int64_t H = c_.n_head, dh = c_.d_head;
  const at::ScalarType mdt = w.W_QKV.scalar_type();
  const Hooker hook(hs, l);
  std::vector<HeadOpAt> attn_ops;
  layer_ops(l, T, hs, nullptr, &attn_ops);

  hook("hook_resid_pre", resid);

  // x̂ = LN(resid);  q, k, v = x̂·W_{Q,K,V}[h] + b_{Q,K,V}[h]
  at::Tensor x = layer_norm(resid, w.ln1_w, w.ln1_b, c_.eps);
  hook("ln1.hook_normalized", x);
  const at::Tensor qkv = linear(x, w.W_QKV, w.b_QKV).view({B, T, 3, H, dh});
  at::Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);  // [B, T, H, dh]
  hook("attn.hook_q", q);
  hook("attn.hook_k", k);
  hook("attn.hook_v", v);

  at::Tensor z;  // [B, H, T, dh]
  const bool pattern_needed =
      !attn_ops.empty() || hook.wants("attn.hook_attn_scores") || hook.wants("attn.hook_pattern");
#if TORCH_VERSION_MAJOR >= 2
  if (fast_attention_ && !pattern_needed) {
    z = at::scaled_dot_product_attention(q.permute({0, 2, 1, 3}).to(mdt), k.permute({0, 2, 1, 3}).to(mdt),
                                         v.permute({0, 2, 1, 3}).to(mdt), {}, 0.0, /*is_causal=*/true)
            .to(at::kFloat);
  }
#else
  (void)pattern_needed;
#endif
  if (!z.defined()) {
    // s = q·kᵀ / √d_head, future keys −∞
    at::Tensor scores = matmul(q.permute({0, 2, 1, 3}), k.permute({0, 2, 3, 1}), mdt);  // [B, H, Tq, Tk]
    scores.div_(std::sqrt(static_cast<double>(dh)));
    scores.masked_fill_(causal_mask(T, scores.device()), -std::numeric_limits<float>::infinity());
    const at::Tensor S = scores;  // what relu/l1/identity read (spec §10)
    hook("attn.hook_attn_scores", scores);
    // p = softmax_k(s) in fp32; NaN (all keys −∞, only possible after a hook) → 0
    at::Tensor pattern = at::softmax(scores, -1);
    if (hook.wants("attn.hook_attn_scores")) pattern.masked_fill_(at::isnan(pattern), 0.0);
    for (const auto& o : attn_ops) apply_attn_op(pattern, S, o);
    hook("attn.hook_pattern", pattern);
    // z = p·v
    z = matmul(pattern, v.permute({0, 2, 1, 3}), mdt);
  }
  return z.permute({0, 2, 1, 3}).contiguous();  // [B, T, H, dh]
}

at::Tensor Forward::block_after_z(int l, const at::Tensor& resid_in, at::Tensor z, const HookSet& hs) const {
  const BlockWeights& w = w_.blocks[static_cast<size_t>(l)];
  const int64_t B = resid_in.size(0), T = resid_in.size(1);
  const int64_t H = c_.n_head, dh = c_.d_head, d = c_.d_model;
  const Hooker hook(hs, l);
  std::vector<HeadOpAt> z_ops;
  layer_ops(l, T, hs, &z_ops, nullptr);

  for (const auto& o : z_ops) apply_z_op(z, o);
  hook("attn.hook_z", z);

  // attn_out = Σ_h z_h·W_O[h] + b_O
  at::Tensor attn_out = linear(z.reshape({B, T, H * dh}), w.W_O.view({H * dh, d}), w.b_O);
  hook("hook_attn_out", attn_out);
  at::Tensor resid = resid_in + attn_out;
  hook("hook_resid_mid", resid);

  // mlp_out = gelu_new(LN(resid)·W_in + b_in)·W_out + b_out
  at::Tensor x = layer_norm(resid, w.ln2_w, w.ln2_b, c_.eps);
  hook("ln2.hook_normalized", x);
  at::Tensor pre = linear(x, w.W_in, w.b_in);
  hook("mlp.hook_pre", pre);
  at::Tensor post = at::gelu(pre, "tanh");  // gelu_new: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))
  pre = at::Tensor();
  hook("mlp.hook_post", post);
  at::Tensor mlp_out = linear(post, w.W_out, w.b_out);
  hook("hook_mlp_out", mlp_out);
  resid = resid + mlp_out;
  project_updates(l, resid_in, resid, hs);
  hook("hook_resid_post", resid);
  return resid;
}

at::Tensor Forward::final_norm(const at::Tensor& resid, const HookSet& hs) const {
  at::Tensor x = layer_norm(resid, w_.lnf_w, w_.lnf_b, c_.eps);
  if (hs.named()) hs.apply("ln_final.hook_normalized", x);
  return x;
}

at::Tensor Forward::unembed(const at::Tensor& x) const { return linear(x, w_.W_U, w_.b_U); }

at::Tensor Forward::row_nll(const at::Tensor& x, const at::Tensor& tokens, int64_t slice_rows) const {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  if (T < 2) return at::zeros({B}, at::kDouble);
  const int64_t N = B * (T - 1);
  // Position t−1 predicts token t.
  const at::Tensor xs = x.narrow(1, 0, T - 1).reshape({N, d});
  const at::Tensor tgt = tokens.narrow(1, 1, T - 1).reshape({N, 1});
  at::Tensor out = at::empty({N}, x.options().dtype(at::kFloat));
  slice_rows = std::max<int64_t>(1, slice_rows);
  for (int64_t r = 0; r < N; r += slice_rows) {
    const int64_t n = std::min(slice_rows, N - r);
    at::Tensor logits = unembed(xs.narrow(0, r, n));  // [n, vocab] float32
    const at::Tensor target = logits.gather(1, tgt.narrow(0, r, n)).squeeze(1);
    // −log p = logsumexp(logits) − logits[target]; the logsumexp is done in
    // place on the slice (max-shifted), saving two vocab-wide temporaries.
    const at::Tensor mx = logits.amax(1, /*keepdim=*/true);
    logits.sub_(mx).exp_();
    out.narrow(0, r, n).copy_(logits.sum(1).log_().add_(mx.squeeze(1)).sub_(target));
  }
  // Sum per row in double (on the CPU: MPS has no float64).
  return out.to(at::kCPU).to(at::kDouble).view({B, T - 1}).sum(1);
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& W, const at::Tensor& b) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = W.size(1);
  const at::Tensor x2 = x.reshape({-1, W.size(0)});
  at::Tensor y = W.scalar_type() == at::kFloat ? at::addmm(b, x2, W)
                                               : at::mm(x2.to(W.scalar_type()), W).to(at::kFloat).add_(b);
  return y.view(shape);
}

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, at::ScalarType dtype) {
  if (dtype == at::kFloat) return at::matmul(a, b);
  return at::matmul(a.to(dtype), b.to(dtype)).to(at::kFloat);
}

}  // namespace spt::gpt2
