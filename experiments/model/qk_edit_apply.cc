// apply_qk_edits and qk_matrix (spt/gpt2_hooks.h): spec §6 B's injection.
#include <cmath>
#include <stdexcept>
#include <string>

#include "spt/gpt2_hooks.h"

namespace spt::gpt2 {
namespace {

const BlockWeights& block(const Weights& w, int layer, int head) {
  if (layer < 0 || layer >= static_cast<int>(w.blocks.size()))
    throw std::invalid_argument("qk edit: layer " + std::to_string(layer) + " out of range");
  const BlockWeights& b = w.blocks[static_cast<size_t>(layer)];
  if (head < 0 || head >= b.W_Q.size(0))
    throw std::invalid_argument("qk edit: head " + std::to_string(head) + " out of range");
  return b;
}

}  // namespace

at::Tensor qk_matrix(const Weights& w, int layer, int head) {
  const BlockWeights& b = block(w, layer, head);
  return b.W_Q[head].to(at::kFloat).t().mm(b.W_K[head].to(at::kFloat));
}

void apply_qk_edits(Weights& w, const std::vector<QkEdit>& edits) {
  at::NoGradGuard no_grad;
  for (const QkEdit& e : edits) {
    BlockWeights& b = const_cast<BlockWeights&>(block(w, e.layer, e.head));
    const int64_t dh = b.W_Q.size(2);
    if (static_cast<int64_t>(e.target.size()) != dh * dh)
      throw std::invalid_argument("qk edit L" + std::to_string(e.layer) + "H" + std::to_string(e.head) + ": target has " +
                                  std::to_string(e.target.size()) + " values, not d_head² = " +
                                  std::to_string(dh * dh));
    const at::Tensor wq = b.W_Q[e.head].to(at::kFloat), wk = b.W_K[e.head].to(at::kFloat);
    const at::Tensor target =
        at::from_blob(const_cast<float*>(e.target.data()), {dh, dh}, at::kFloat).to(wq.device());
    const at::Tensor delta = target - wq.t().mm(wk);
    // W_Q += W_K·(W_KᵀW_K)⁻¹·Δᵀ adds Δ·(W_KᵀW_K)⁻¹·W_KᵀW_K = Δ to W_QᵀW_K
    // (W_KᵀW_K is symmetric). The spec's explicit inverse, not a solve.
    const at::Tensor corr = wk.mm(at::inverse(wk.t().mm(wk))).mm(delta.t());
    b.W_Q[e.head].copy_(wq + corr);  // W_Q is a view of W_QKV: the forward sees it
  }
}

}  // namespace spt::gpt2
