#pragma once
// The GPT-2 engine's public contract (spec §1–§2): load a Hugging Face
// checkpoint, process it as TransformerLens does, evaluate NLL/perplexity
// under interventions. Torch-free: tensors stay inside experiments/model/.
// For hook-level reads (activation caches) see spt/gpt2_hooks.h.
//
// Interventions are plain data that map 1:1 to spt.v1.Intervention, so the
// coordinator can carry them in job params (as that message's JSON form).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spt::gpt2 {

struct Config {
  int n_layer = 0, n_head = 0, d_model = 0, d_head = 0, d_mlp = 0, n_ctx = 0, vocab = 0;
  double eps = 1e-5;
};

enum class Precision { fp32, tf32, bf16 };
Precision parse_precision(const std::string& s);  // throws std::invalid_argument
const char* to_string(Precision p);

// TransformerLens's from_pretrained defaults (spec §1.3), each switchable.
struct Processing {
  bool fold_ln = true;
  bool center_writing_weights = true;
  bool center_unembed = true;
  bool fold_value_biases = true;
};

struct LoadOptions {
  Processing processing;
  std::string device = "cpu";          // cpu | cuda | cuda:N | mps
  Precision precision = Precision::fp32;
  // Intra-op threads for LibTorch's CPU kernels; 0 leaves the process
  // setting alone (Debian's LibTorch starts single-threaded).
  int threads = 0;
  // Activation memory one batched forward may use; 0 = default (2 GiB on
  // CPU/MPS, 12 GiB on CUDA; $SPT_MEMORY_BUDGET_MB overrides the default).
  int64_t memory_budget_mb = 0;
  // Use LibTorch 2.x's fused scaled_dot_product_attention where no hook
  // reads scores or pattern. Off by default in fp32 (its CUDA fp32 kernel
  // uses 3xTF32 arithmetic); on for bf16. No effect with LibTorch 1.x.
  bool fast_attention = false;
};

// Where a model came from; every result carries this.
struct ModelInfo {
  std::string name;        // as asked ("gpt2", a folder, ...)
  std::string dir;         // resolved folder
  std::string sha256;      // of the weight file(s), in shard order
  Config config;
  std::string dtype_on_disk;  // "F32" | "F16" | "BF16"
};

// Resolves "gpt2"/"gpt2-medium"/... through the HF cache ($HF_HUB_CACHE,
// $HF_HOME/hub, ~/.cache/huggingface/hub) or takes a folder path. Throws
// std::runtime_error naming every place it looked.
std::string resolve_model_dir(const std::string& name_or_path);

// What a hook point does to heads. Positions < 0 mean "every position".
enum class HeadOp {
  zero,           // hook_z[:, pos, h, :] = 0
  mean,           // hook_z[:, pos, h, :] = values (d_head)
  replace,        // hook_z[:, pos, h, :] = values (d_head)
  scale,          // hook_z[:, pos, h, :] *= scale
  attn_relu,      // pattern = max(S',0) / max(rowsum, 1e-8)       (spec §10)
  attn_l1,        // pattern = |S'| / max(rowsum, 1e-8)
  attn_identity,  // pattern = S' / max(Σ|S'|, 1e-8)
};
HeadOp parse_head_op(const std::string& s);  // throws std::invalid_argument
const char* to_string(HeadOp op);

struct HeadIntervention {
  int layer = 0;
  int head = 0;
  HeadOp op = HeadOp::zero;
  int position = -1;
  float scale = 1.0f;
  std::vector<float> values;  // mean / replace
};

// Projection of block `layer`'s update onto an affine subspace (spec §7 D):
// at hook_resid_post, post ← pre + ((post − pre − μ)·U_kᵀ·U_k + μ), where pre
// is the block's incoming stream as the model goes on with it (the live,
// possibly already projected stream) and U_k the first k rows of `basis`
// (orthonormal rows, row-major, rows × d_model; rows ≥ k). Applied before
// user hooks and caching at that point, like every intervention.
// `source` names where basis and μ came from (e.g. an artifact digest and a
// block); when the data is not inline, the JSON form carries only layer, k
// and source, and whoever runs the variant fills in mean/basis first.
struct ResidualProjection {
  int layer = 0;
  int k = 0;
  std::vector<float> mean;   // d_model
  std::vector<float> basis;  // rows × d_model
  std::string source;
};

// Per-head weight surgery (spec §6 B/C): make W_Q[layer, head]ᵀ·W_K[layer,
// head] (d_head × d_head, of the processed weights) equal `target`
// (row-major) by the additive correction
//   W_Q ← W_Q + W_K·(W_KᵀW_K)⁻¹·(target − W_QᵀW_K)ᵀ   (explicit inverse, fp32);
// W_K, the biases and everything else stay as they are. An edit changes
// weights, not activations, so it is not part of Variant (whose ops run
// inside a shared model): gpt2_hooks.h's apply_qk_edits edits a weight copy
// that with_weights turns into a model of its own. `source` says where the
// target came from (e.g. "wqk_pca k=10"); the JSON form omits `target`
// when it is empty (resolved by whoever runs it).
struct QkEdit {
  int layer = 0;
  int head = 0;
  std::vector<float> target;  // d_head × d_head
  std::string source;
};
nlohmann::json to_json(const QkEdit& e);
QkEdit qk_edit_from_json(const nlohmann::json& j);  // throws std::invalid_argument on bad input

// One model variant: a set of interventions applied together.
struct Variant {
  std::vector<HeadIntervention> ops;
  std::vector<ResidualProjection> projections;
  // Lowest layer touched; INT_MAX if none (the engine treats that as n_layer).
  int min_layer() const;
  bool empty() const { return ops.empty() && projections.empty(); }
};

nlohmann::json to_json(const HeadIntervention& h);
HeadIntervention head_intervention_from_json(const nlohmann::json& j);  // throws on bad input
// {"layer","k","source"} plus "mean"/"basis" when they are inline.
nlohmann::json to_json(const ResidualProjection& p);
ResidualProjection residual_projection_from_json(const nlohmann::json& j);  // throws on bad input
// {"ops": [...]} plus "projections": [...] when there are any.
nlohmann::json to_json(const Variant& v);
Variant variant_from_json(const nlohmann::json& j);

// Σ of −log p(token_t | tokens_<t) over t = 1..T−1 of every chunk, in double.
struct NllSum {
  double nll = 0;
  int64_t count = 0;
  double ppl() const;
};

using Chunks = std::vector<std::vector<int32_t>>;  // each chunk evaluated independently

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  virtual const LoadOptions& options() const = 0;

  // NLL of one variant over the chunks (spec §2.2).
  virtual NllSum nll(const Chunks& chunks, const Variant& v) = 0;
  // Many variants over the same chunks. Variants are grouped by the lowest
  // layer they touch: the clean prefix below it is computed once and the
  // suffixes run batched. Equals calling nll() one at a time to fp32 round-off.
  virtual std::vector<NllSum> nll_many(const Chunks& chunks, const std::vector<Variant>& vs) = 0;
  // Per (layer, head) Σ of hook_z over all positions of all chunks (double),
  // and the number of positions: mean = sum / count. Layout [L][H][d_head].
  struct HeadSums {
    std::vector<double> sum;
    int64_t count = 0;
    std::vector<float> mean(int layer, int head, const Config& c) const;
  };
  virtual HeadSums head_z_sums(const Chunks& chunks) = 0;
};

// Text generation (spec §10.4 P1–P3) with the variant's interventions
// active at every step: greedy (temperature 0: argmax, first index on ties)
// or sampled (softmax(logits / temperature), multinomial; no top-k/top-p).
// Sampling draws from a device-independent RNG seeded by `seed`, so the
// same seed gives the same tokens on every worker and device.
struct GenerateOptions {
  int max_new_tokens = 0;
  double temperature = 0;  // 0 = greedy
  uint64_t seed = 0;
  bool kv_cache = false;   // false: recompute the whole prefix every step (the original)
};
struct Generation {
  std::vector<int32_t> tokens;  // the new tokens only
  bool kv_cache = false;        // which path ran
  uint64_t seed = 0;
};
// Throws std::invalid_argument when prompt + max_new_tokens exceeds n_ctx,
// for an empty prompt, out-of-range tokens or a negative temperature.
Generation generate(Model& m, const std::vector<int32_t>& prompt, const Variant& v, const GenerateOptions& opt);
// Σ −log p(tokens[t] | tokens[<t]) over t >= from (t >= 1), under the model
// without interventions (how P2/P3 score generated text, A11).
NllSum score_tail(Model& m, const std::vector<int32_t>& tokens, int from);

// LibTorch's intra-op and the BLAS thread count of the calling thread
// (n >= 1); see model/cpu_runtime.h for the BLAS builds.
void set_threads(int n);
// "1.13.0", "2.11.0", ...: the LibTorch the engine was built against.
std::string torch_version();
// Human name of a device string: "cpu (2 threads; OpenBLAS 0.3.21 openmp,
// 2 threads)", "cuda:0 NVIDIA H100 ..."
// where known. Throws std::invalid_argument for a malformed or absent device.
std::string device_description(const std::string& device);
// device_description(device) if this build can compute on it here; else
// std::runtime_error naming what is missing (a CPU-only LibTorch asked for
// cuda, cuda:N past the visible GPUs, mps without Metal).
std::string check_device(const std::string& device);

// Loads and processes a checkpoint. Throws std::runtime_error with a clear
// message on missing, truncated or corrupt files.
std::unique_ptr<Model> load_model(const std::string& name_or_path, const LoadOptions& opt);

}  // namespace spt::gpt2
