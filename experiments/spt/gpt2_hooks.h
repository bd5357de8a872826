#pragma once
// Hook-level access to the GPT-2 engine (spec §1.4): activation caches,
// custom hooks, and the processed weights. Includes ATen; code that only
// needs losses uses spt/gpt2.h.
//
// Hook names are TransformerLens's:
//   hook_embed, hook_pos_embed,
//   blocks.{l}.hook_resid_pre, blocks.{l}.ln1.hook_normalized,
//   blocks.{l}.attn.hook_q / hook_k / hook_v        [B, T, H, d_head]
//   blocks.{l}.attn.hook_attn_scores / hook_pattern [B, H, Tq, Tk]
//   blocks.{l}.attn.hook_z                           [B, T, H, d_head]
//   blocks.{l}.hook_attn_out, blocks.{l}.hook_resid_mid,
//   blocks.{l}.ln2.hook_normalized, blocks.{l}.mlp.hook_pre / hook_post,
//   blocks.{l}.hook_mlp_out, blocks.{l}.hook_resid_post,
//   ln_final.hook_normalized                          [B, T, d_model]
// Activations are float32 on the model's device, whatever the precision.
//
// At each hook point, in this order: the Variant's interventions (zero/
// mean/replace/scale on hook_z; relu/l1/identity read the scores at
// hook_attn_scores and rewrite hook_pattern, spec §10), then the user hooks
// in registration order, then caching, so the cache holds what the model
// goes on with.
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "spt/gpt2.h"

namespace spt::gpt2 {

// One block's processed weights in TransformerLens layout (spec §1.3).
// W_QKV/b_QKV are the packed forms the forward multiplies with (HF c_attn
// layout: Q | K | V column blocks, head-major inside each); W_Q..b_V are
// views into them, so in-place edits (copy_, add_) reach the forward.
struct BlockWeights {
  at::Tensor W_QKV;          // [d_model, 3·H·d_head]
  at::Tensor b_QKV;          // [3·H·d_head]
  at::Tensor W_Q, W_K, W_V;  // [H, d_model, d_head]   (views of W_QKV)
  at::Tensor b_Q, b_K, b_V;  // [H, d_head]            (views of b_QKV)
  at::Tensor W_O;            // [H, d_head, d_model]   (contiguous)
  at::Tensor b_O;            // [d_model]
  at::Tensor W_in, b_in;     // [d_model, d_mlp], [d_mlp]
  at::Tensor W_out, b_out;   // [d_mlp, d_model], [d_model]
  at::Tensor ln1_w, ln1_b, ln2_w, ln2_b;  // [d_model]; undefined when LN is folded

  // Re-creates W_Q..b_V as views of W_QKV/b_QKV.
  void make_views(int n_head, int d_head);
  // Rebuilds W_QKV/b_QKV from W_Q..b_V (after any of them was reassigned),
  // then re-creates the views.
  void repack(int n_head, int d_head);
};

struct Weights {
  at::Tensor W_E;    // [vocab, d_model]
  at::Tensor W_pos;  // [n_ctx, d_model]
  at::Tensor W_U;    // [d_model, vocab]
  at::Tensor b_U;    // [vocab]
  at::Tensor lnf_w, lnf_b;  // [d_model]; undefined when LN is folded
  std::vector<BlockWeights> blocks;

  // Deep copy (views re-created in the copy).
  Weights clone() const;
};

// Hook-name helpers: hook_name(3, "hook_resid_post") == "blocks.3.hook_resid_post",
// hook_name(3, "attn.hook_z") == "blocks.3.attn.hook_z".
std::string hook_name(int layer, const std::string& point);

// A hook sees one activation; returning a defined tensor of the same shape
// replaces it, returning an undefined tensor (`return {};`) keeps it.
using HookFn = std::function<at::Tensor(const at::Tensor& act, const std::string& name)>;
struct Hook {
  std::string name;
  HookFn fn;
};

struct RunOptions {
  std::set<std::string> cache;  // hook names to return
  std::vector<Hook> hooks;      // user hooks
  Variant variant;              // applied to every batch row
  bool logits = true;           // compute [B, T, vocab] float32 logits
  int stop_at_layer = -1;       // run blocks < stop_at_layer only (-1 = all; implies no logits)
};

struct RunResult {
  at::Tensor logits;                         // [B, T, vocab] when asked for
  std::map<std::string, at::Tensor> cache;   // requested hook names → activations
  at::Tensor resid;                          // final residual stream [B, T, d_model]
};

// One forward over tokens ([T] or [B, T], any integer dtype, any device).
// Throws std::invalid_argument for out-of-range tokens, T > n_ctx, unknown
// cache names, or a bad variant.
RunResult run(Model& m, const at::Tensor& tokens, const RunOptions& opt = {});

// Token ids → int64 tensor [1, T] on the CPU.
at::Tensor tokens_tensor(const std::vector<int32_t>& ids);

// NLL as Model::nll, with user hooks active at every chunk (no fusion).
// Hooks see batches of several chunks ([B, T, ...]).
NllSum nll_with_hooks(Model& m, const Chunks& chunks, const std::vector<Hook>& hooks,
                      const Variant& v = {});

// The model's processed weights on its device, in its compute dtype
// (matrices bf16 under Precision::bf16; biases, embeddings and LN always fp32).
const Weights& weights(const Model& m);
// A new model with the same info and options and the given weights (in the
// layout of weights(); copied to the model's device and dtype; W_QKV is
// rebuilt from W_Q..b_V). The original model is not touched.
std::unique_ptr<Model> with_weights(const Model& m, const Weights& w);

at::Device device(const Model& m);

// Applies QkEdits (spt/gpt2.h) to `w` in place, in float32 on w's device,
// and writes W_Q back in its own dtype. std::invalid_argument for a layer or
// head out of range or a target that is not d_head × d_head; edits of one
// head apply in order. Not thread-safe for one `w`.
void apply_qk_edits(Weights& w, const std::vector<QkEdit>& edits);
// W_Q[layer, head]ᵀ·W_K[layer, head] of `w` in float32 ([d_head, d_head]).
at::Tensor qk_matrix(const Weights& w, int layer, int head);

}  // namespace spt::gpt2
