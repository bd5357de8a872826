#include "weights.h"

namespace spt::gpt2 {
namespace {

at::Tensor load(const Checkpoint& ck, const std::string& key) {
  at::Tensor t = at::empty(ck.shape(key), at::kFloat);
  ck.f32_into(key, t.data_ptr<float>());
  return t;
}

// Σ_i v[i]·M[i, :] for M [n, k]: the bias a LayerNorm β contributes through M.
at::Tensor through(const at::Tensor& v, const at::Tensor& M) { return at::matmul(v, M); }

}  // namespace

void BlockWeights::make_views(int n_head, int d_head) {
  const int64_t d = W_QKV.size(0);
  // W_QKV [d, 3·H·dh] → [d, 3, H, dh] → pick Q/K/V → [H, d, dh]
  const at::Tensor w4 = W_QKV.view({d, 3, n_head, d_head});
  W_Q = w4.select(1, 0).permute({1, 0, 2});
  W_K = w4.select(1, 1).permute({1, 0, 2});
  W_V = w4.select(1, 2).permute({1, 0, 2});
  const at::Tensor b3 = b_QKV.view({3, n_head, d_head});
  b_Q = b3.select(0, 0);
  b_K = b3.select(0, 1);
  b_V = b3.select(0, 2);
}

void BlockWeights::repack(int n_head, int d_head) {
  const int64_t d = W_Q.size(1);
  auto cols = [&](const at::Tensor& w) { return w.permute({1, 0, 2}).reshape({d, n_head * d_head}); };
  W_QKV = at::cat({cols(W_Q), cols(W_K), cols(W_V)}, 1).contiguous();
  b_QKV = at::cat({b_Q.reshape({-1}), b_K.reshape({-1}), b_V.reshape({-1})}).contiguous();
  W_O = W_O.contiguous();
  make_views(n_head, d_head);
}

Weights Weights::clone() const {
  auto c = [](const at::Tensor& t) { return t.defined() ? t.clone() : t; };
  Weights w;
  w.W_E = c(W_E);
  w.W_pos = c(W_pos);
  w.W_U = c(W_U);
  w.b_U = c(b_U);
  w.lnf_w = c(lnf_w);
  w.lnf_b = c(lnf_b);
  for (const auto& b : blocks) {
    BlockWeights n;
    // The per-head tensors are the source of truth (a caller may have
    // reassigned one); pack the copy from them.
    n.W_Q = b.W_Q;
    n.W_K = b.W_K;
    n.W_V = b.W_V;
    n.b_Q = b.b_Q;
    n.b_K = b.b_K;
    n.b_V = b.b_V;
    n.W_O = b.W_O.clone();
    n.repack(static_cast<int>(b.W_Q.size(0)), static_cast<int>(b.W_Q.size(2)));
    n.b_O = c(b.b_O);
    n.W_in = c(b.W_in);
    n.b_in = c(b.b_in);
    n.W_out = c(b.W_out);
    n.b_out = c(b.b_out);
    n.ln1_w = c(b.ln1_w);
    n.ln1_b = c(b.ln1_b);
    n.ln2_w = c(b.ln2_w);
    n.ln2_b = c(b.ln2_b);
    w.blocks.push_back(std::move(n));
  }
  return w;
}

Weights raw_weights(const Checkpoint& ck) {
  const Config& c = ck.config();
  Weights w;
  w.W_E = load(ck, "wte.weight");
  w.W_pos = load(ck, "wpe.weight");
  // The unembedding is tied to wte unless the checkpoint has its own head.
  w.W_U = (ck.has("lm_head.weight") ? load(ck, "lm_head.weight") : w.W_E).t().contiguous();
  w.b_U = at::zeros({c.vocab}, at::kFloat);
  w.lnf_w = load(ck, "ln_f.weight");
  w.lnf_b = load(ck, "ln_f.bias");
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    BlockWeights b;
    b.ln1_w = load(ck, h + "ln_1.weight");
    b.ln1_b = load(ck, h + "ln_1.bias");
    b.W_QKV = load(ck, h + "attn.c_attn.weight");  // Conv1D: in × out
    b.b_QKV = load(ck, h + "attn.c_attn.bias");
    // c_proj rows h·dh + j belong to head h.
    b.W_O = load(ck, h + "attn.c_proj.weight").view({c.n_head, c.d_head, c.d_model});
    b.b_O = load(ck, h + "attn.c_proj.bias");
    b.ln2_w = load(ck, h + "ln_2.weight");
    b.ln2_b = load(ck, h + "ln_2.bias");
    b.W_in = load(ck, h + "mlp.c_fc.weight");
    b.b_in = load(ck, h + "mlp.c_fc.bias");
    b.W_out = load(ck, h + "mlp.c_proj.weight");
    b.b_out = load(ck, h + "mlp.c_proj.bias");
    b.make_views(c.n_head, c.d_head);
    w.blocks.push_back(std::move(b));
  }
  return w;
}

void fold_ln(Weights& w, const Config& c) {
  (void)c;
  for (auto& b : w.blocks) {
    // Biases first, from the raw weights: b ← b + β·W.
    b.b_QKV.add_(through(b.ln1_b, b.W_QKV));
    b.b_in.add_(through(b.ln2_b, b.W_in));
    // Then W ← diag(γ)·W, and centre each output column over d_model.
    // Column-wise over the packed W_QKV is the same as per head for Q, K, V.
    b.W_QKV.mul_(b.ln1_w.unsqueeze(1));
    b.W_QKV.sub_(b.W_QKV.mean(0, /*keepdim=*/true));
    b.W_in.mul_(b.ln2_w.unsqueeze(1));
    b.W_in.sub_(b.W_in.mean(0, true));
    b.ln1_w = b.ln1_b = b.ln2_w = b.ln2_b = at::Tensor();
  }
  w.b_U.add_(through(w.lnf_b, w.W_U));
  w.W_U.mul_(w.lnf_w.unsqueeze(1));
  w.W_U.sub_(w.W_U.mean(0, true));
  w.lnf_w = w.lnf_b = at::Tensor();
}

void center_writing_weights(Weights& w, const Config& c) {
  (void)c;
  w.W_E.sub_(w.W_E.mean(-1, true));
  w.W_pos.sub_(w.W_pos.mean(-1, true));
  for (auto& b : w.blocks) {
    b.W_O.sub_(b.W_O.mean(-1, true));
    b.b_O.sub_(b.b_O.mean());
    b.W_out.sub_(b.W_out.mean(-1, true));
    b.b_out.sub_(b.b_out.mean());
  }
}

void center_unembed(Weights& w, const Config& c) {
  (void)c;
  w.W_U.sub_(w.W_U.mean(-1, true));
  w.b_U.sub_(w.b_U.mean());
}

void fold_value_biases(Weights& w, const Config& c) {
  for (auto& b : w.blocks) {
    // Σ_h b_V[h]·W_O[h] = b_V (flattened head-major) · W_O [H·dh, d].
    b.b_O.add_(at::matmul(b.b_V.reshape({-1}), b.W_O.reshape({c.n_head * c.d_head, c.d_model})));
    b.b_V.zero_();
  }
}

void process(Weights& w, const Config& c, const Processing& p) {
  if (p.fold_ln) fold_ln(w, c);
  if (p.center_writing_weights) center_writing_weights(w, c);
  if (p.center_unembed) center_unembed(w, c);
  if (p.fold_value_biases) fold_value_biases(w, c);
}

Weights to_device(const Weights& w, const Config& c, at::Device dev, at::ScalarType matrix_dtype) {
  auto f = [&](const at::Tensor& t) { return t.defined() ? t.to(dev, at::kFloat).contiguous() : t; };
  auto m = [&](const at::Tensor& t) { return t.defined() ? t.to(dev, matrix_dtype).contiguous() : t; };
  Weights o;
  o.W_E = f(w.W_E);
  o.W_pos = f(w.W_pos);
  o.W_U = m(w.W_U);
  o.b_U = f(w.b_U);
  o.lnf_w = f(w.lnf_w);
  o.lnf_b = f(w.lnf_b);
  for (const auto& b : w.blocks) {
    BlockWeights n;
    // Per-head tensors are the source of truth: pack from them.
    n.W_Q = b.W_Q;
    n.W_K = b.W_K;
    n.W_V = b.W_V;
    n.b_Q = b.b_Q;
    n.b_K = b.b_K;
    n.b_V = b.b_V;
    n.W_O = b.W_O;
    n.repack(c.n_head, c.d_head);
    n.W_QKV = m(n.W_QKV);
    n.b_QKV = f(n.b_QKV);
    n.W_O = m(n.W_O);
    n.make_views(c.n_head, c.d_head);
    n.b_O = f(b.b_O);
    n.W_in = m(b.W_in);
    n.b_in = f(b.b_in);
    n.W_out = m(b.W_out);
    n.b_out = f(b.b_out);
    n.ln1_w = f(b.ln1_w);
    n.ln1_b = f(b.ln1_b);
    n.ln2_w = f(b.ln2_w);
    n.ln2_b = f(b.ln2_b);
    o.blocks.push_back(std::move(n));
  }
  return o;
}

}  // namespace spt::gpt2
