#pragma once
// The hooked GPT-2 forward pass (spec §1.4), written to read like the math.
// Internal to the engine; the public face is spt/gpt2_hooks.h.
//
// A batch may hold rows of different model variants: HookSet::rows says
// which batch rows get which Variant's interventions (spec §10 head ops),
// so one forward can evaluate many ablations at once (fusion). Activations
// are float32; under bf16 the matrix products take bf16 inputs and weights
// and return float32.
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "spt/gpt2_hooks.h"

namespace spt::gpt2 {

// Batch rows [begin, end) run with `variant`'s interventions.
struct RowOps {
  int64_t begin = 0, end = 0;
  const Variant* variant = nullptr;
};

// Everything a forward call does besides computing: interventions by row,
// user hooks, and the cache.
struct HookSet {
  std::vector<RowOps> rows;
  const std::vector<Hook>* hooks = nullptr;
  const std::set<std::string>* cache = nullptr;
  std::map<std::string, at::Tensor>* cache_out = nullptr;

  // True if any hook point needs its name (user hooks or caching).
  bool named() const { return (hooks && !hooks->empty()) || (cache && !cache->empty()); }
  bool wants(const std::string& name) const;
  // Runs user hooks on `act` (may replace it), then caches it if asked.
  void apply(const std::string& name, at::Tensor& act) const;
};

// All hook names of a model with n_layer blocks.
std::set<std::string> all_hook_names(int n_layer);

// Checks a variant against the config; throws std::invalid_argument.
void validate(const Variant& v, const Config& c);

// x·W + b with x [..., in], W [in, out]. Under bf16, W is bf16 and the
// product is taken in bf16, returned as float32.
at::Tensor linear(const at::Tensor& x, const at::Tensor& W, const at::Tensor& b);
// a·b for activations (batched), in `dtype`, returned as float32.
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, at::ScalarType dtype);

class Forward {
 public:
  Forward(const Weights& w, const Config& c, bool fast_attention);

  // tokens: int64 [B, T] on the weights' device → resid [B, T, d_model].
  at::Tensor embed(const at::Tensor& tokens, const HookSet& hs) const;
  // Block l: hook_resid_pre → … → hook_resid_post.
  at::Tensor block(int l, const at::Tensor& resid, const HookSet& hs) const;
  // The two halves of block(): up to z (hook_resid_pre … hook_pattern; may
  // replace `resid` via its hook; returns z [B, T, H, d_head] before the
  // z interventions), and from z on (z interventions, hook_z … hook_resid_post;
  // modifies z in place). Fusion reuses a clean z for variants that only
  // act at hook_z of this block.
  at::Tensor attention_z(int l, at::Tensor& resid, const HookSet& hs) const;
  at::Tensor block_after_z(int l, const at::Tensor& resid, at::Tensor z, const HookSet& hs) const;
  // ln_final (LNPre when folded) → ln_final.hook_normalized.
  at::Tensor final_norm(const at::Tensor& resid, const HookSet& hs) const;
  // [.., d_model] normalized → [.., vocab] float32 logits.
  at::Tensor unembed(const at::Tensor& x) const;
  // Per batch row, Σ_{t=1..T−1} −log softmax(logits[t−1])[token_t], as
  // doubles on the CPU ([B]). Logits are formed `slice_rows` positions at a
  // time, never for the whole batch.
  at::Tensor row_nll(const at::Tensor& x, const at::Tensor& tokens, int64_t slice_rows) const;

  const Config& config() const { return c_; }

 private:
  at::Tensor causal_mask(int64_t T, at::Device dev) const;
  const Weights& w_;
  const Config& c_;
  bool fast_attention_;
  mutable std::mutex mu_;
  mutable std::map<int64_t, at::Tensor> masks_;  // T → [T, T] bool, true above the diagonal
};

}  // namespace spt::gpt2
