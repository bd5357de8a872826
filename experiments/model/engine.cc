// The Model implementation: loading, batching, fusion (spec §2.2, §10).
//
// Batching: chunks of equal length are stacked into batches whose
// activations fit the memory budget. Fusion (nll_many): variants are grouped
// by the lowest layer they touch; per chunk batch the clean prefix runs once,
// its residual stream is saved at each group's first layer, and each group's
// suffix runs for many variants at once (batch rows = variants × chunks).
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <stdexcept>

#include "checkpoint.h"
#include "cpu_runtime.h"
#include "forward.h"
#include "precision.h"
#include "weights.h"

namespace spt::gpt2 {

// ---- TF32 settings per forward (precision.h) --------------------------------
namespace {
const char* precision_name(at::Float32MatmulPrecision p) {
  switch (p) {
    case at::Float32MatmulPrecision::HIGHEST: return "highest";
    case at::Float32MatmulPrecision::HIGH: return "high";
    default: return "medium";
  }
}
}  // namespace

MatmulFlags matmul_flags() {
  auto& ctx = at::globalContext();
  return {ctx.allowTF32CuBLAS(), ctx.allowTF32CuDNN(), precision_name(ctx.float32MatmulPrecision())};
}

MatmulFlags matmul_flags_for(Precision p) {
  // fp32 means true fp32 matmuls (no TF32), as the original work insisted
  // (spec §1.6); bf16 keeps its fp32 parts (LayerNorm, softmax, loss) fp32.
  const bool tf32 = p == Precision::tf32;
  return {tf32, tf32, tf32 ? "high" : "highest"};
}

PrecisionScope::PrecisionScope(Precision p) {
  auto& ctx = at::globalContext();
  cudnn_ = ctx.allowTF32CuDNN();
  matmul_ = precision_name(ctx.float32MatmulPrecision());
  const MatmulFlags f = matmul_flags_for(p);
  ctx.setAllowTF32CuBLAS(f.tf32_cublas);
  ctx.setAllowTF32CuDNN(f.tf32_cudnn);
  ctx.setFloat32MatmulPrecision(f.float32_matmul_precision);
}

PrecisionScope::~PrecisionScope() {
  // cuBLAS TF32 is the matmul precision seen as a bool (LibTorch keeps one
  // field for both): restoring the precision restores it.
  auto& ctx = at::globalContext();
  ctx.setAllowTF32CuDNN(cudnn_);
  ctx.setFloat32MatmulPrecision(matmul_);
}

namespace {

at::Device parse_device(const std::string& s) {
  if (s == "cpu") return at::Device(at::kCPU);
  if (s == "mps") {
    if (!at::hasMPS()) throw std::invalid_argument("device mps asked for, but this LibTorch has no usable MPS device");
    return at::Device(at::kMPS);
  }
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    int idx = 0;
    if (s != "cuda") {
      const std::string n = s.substr(5);
      if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos)
        throw std::invalid_argument("bad device '" + s + "' (expected cuda:N)");
      idx = std::stoi(n);
    }
    if (!torch::cuda::is_available())
      throw std::invalid_argument("device " + s + " asked for, but this LibTorch has no CUDA or no GPU is visible");
    if (static_cast<size_t>(idx) >= torch::cuda::device_count())
      throw std::invalid_argument("device " + s + " asked for, but only " + std::to_string(torch::cuda::device_count()) +
                                  " CUDA device(s) are visible");
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(idx));
  }
  throw std::invalid_argument("unknown device '" + s + "' (expected cpu, cuda, cuda:N or mps)");
}

int64_t default_budget_bytes(const at::Device& dev) {
  if (const char* e = std::getenv("SPT_MEMORY_BUDGET_MB")) {
    const long long mb = std::atoll(e);
    if (mb > 0) return mb << 20;
  }
  return dev.is_cuda() ? (12ll << 30) : (2ll << 30);
}

class Gpt2Model final : public Model {
 public:
  Gpt2Model(ModelInfo info, LoadOptions opt, Weights w, at::Device dev)
      : info_(std::move(info)),
        opt_(std::move(opt)),
        dev_(dev),
        w_(std::move(w)),
        fwd_(w_, info_.config, opt_.fast_attention || opt_.precision == Precision::bf16) {
    budget_ = opt_.memory_budget_mb > 0 ? (opt_.memory_budget_mb << 20) : default_budget_bytes(dev_);
  }

  const ModelInfo& info() const override { return info_; }
  const LoadOptions& options() const override { return opt_; }
  const Weights& weights() const { return w_; }
  const MatmulFlags& last_flags() const { return last_flags_; }
  at::Device device() const { return dev_; }

  NllSum nll(const Chunks& chunks, const Variant& v) override { return nll_many(chunks, {v})[0]; }

  std::vector<NllSum> nll_many(const Chunks& chunks, const std::vector<Variant>& vs) override {
    const Config& c = info_.config;
    for (const auto& v : vs) validate(v, c);
    check_chunks(chunks);
    std::vector<NllSum> out(vs.size());
    if (vs.empty()) return out;
    at::NoGradGuard no_grad;
    const PrecisionScope precision(opt_.precision);  // this model's TF32 settings, every forward
    use_model_threads(opt_);                          // this thread's LibTorch + BLAS threads
    last_flags_ = matmul_flags();

    // Variants by where they first leave the clean model: key 2·m + 1 when
    // block m's first change is at hook_z (its attention up to z is clean
    // and shared), 2·m when it changes block m's attention pattern; clean
    // variants get 2·n_layer.
    std::map<int, std::vector<size_t>> groups;
    for (size_t i = 0; i < vs.size(); ++i) groups[divergence_key(vs[i])].push_back(i);
    const int last_key = groups.rbegin()->first;

    for (const auto& batch : batches(chunks)) {
      const at::Tensor tokens = to_tokens(chunks, batch);
      const int64_t cb = tokens.size(0), T = tokens.size(1);
      const HookSet clean;
      // The clean prefix, once: resid_pre (and clean z) where groups start.
      std::map<int, at::Tensor> pre, zs;
      at::Tensor resid = fwd_.embed(tokens, clean);
      for (int l = 0; l < c.n_layer && 2 * l <= last_key; ++l) {
        if (groups.count(2 * l) || groups.count(2 * l + 1)) pre[l] = resid;
        if (2 * l == last_key) break;
        at::Tensor r = resid;
        at::Tensor z = fwd_.attention_z(l, r, clean);
        if (groups.count(2 * l + 1)) zs[l] = z.clone();  // block_after_z edits z in place
        if (2 * l + 1 == last_key) break;
        resid = fwd_.block_after_z(l, r, z, clean);
      }
      if (last_key == 2 * c.n_layer) pre[c.n_layer] = resid;
      resid = at::Tensor();

      for (const auto& [key, idx] : groups) {
        const int m = key / 2;
        if (m == c.n_layer) {
          const at::Tensor rows = fwd_.row_nll(fwd_.final_norm(pre[m], clean), tokens, slice_rows());
          for (size_t i : idx) add(out[i], rows, 0, cb, T);
          continue;
        }
        // The suffix from block m for as many variants at a time as the budget allows.
        const int64_t per = std::max<int64_t>(1, max_rows(T) / cb);
        for (size_t s = 0; s < idx.size(); s += static_cast<size_t>(per)) {
          const int64_t nv = static_cast<int64_t>(std::min(idx.size() - s, static_cast<size_t>(per)));
          HookSet hs;
          for (int64_t j = 0; j < nv; ++j) hs.rows.push_back({j * cb, (j + 1) * cb, &vs[idx[s + static_cast<size_t>(j)]]});
          at::Tensor x = nv == 1 ? pre[m] : pre[m].repeat({nv, 1, 1});
          if (key % 2 == 1) {
            x = fwd_.block_after_z(m, x, zs[m].repeat({nv, 1, 1, 1}), hs);  // repeat copies: zs stays clean
          } else {
            x = fwd_.block(m, x, hs);
          }
          for (int l = m + 1; l < c.n_layer; ++l) x = fwd_.block(l, x, hs);
          const at::Tensor toks = nv == 1 ? tokens : tokens.repeat({nv, 1});
          const at::Tensor rows = fwd_.row_nll(fwd_.final_norm(x, hs), toks, slice_rows());
          for (int64_t j = 0; j < nv; ++j) add(out[idx[s + static_cast<size_t>(j)]], rows, j * cb, cb, T);
        }
      }
    }
    return out;
  }

  HeadSums head_z_sums(const Chunks& chunks) override {
    const Config& c = info_.config;
    check_chunks(chunks);
    at::NoGradGuard no_grad;
    const PrecisionScope precision(opt_.precision);  // this model's TF32 settings, every forward
    use_model_threads(opt_);                          // this thread's LibTorch + BLAS threads
    last_flags_ = matmul_flags();
    at::Tensor sums = at::zeros({c.n_layer, c.n_head, c.d_head}, at::kDouble);
    int64_t count = 0;
    std::vector<Hook> hooks;
    for (int l = 0; l < c.n_layer; ++l)
      hooks.push_back({hook_name(l, "attn.hook_z"), [&sums, l](const at::Tensor& z, const std::string&) {
                         // Sum in double (MPS has no float64: sum on the CPU there).
                         const at::Tensor zz = z.is_mps() ? z.to(at::kCPU) : z;
                         sums[l].add_(zz.to(at::kDouble).sum(at::IntArrayRef{0, 1}).to(at::kCPU));
                         return at::Tensor();
                       }});
    HookSet hs;
    hs.hooks = &hooks;
    for (const auto& batch : batches(chunks, 1)) {
      const at::Tensor tokens = to_tokens(chunks, batch);
      at::Tensor resid = fwd_.embed(tokens, hs);
      for (int l = 0; l < c.n_layer; ++l) resid = fwd_.block(l, resid, hs);
      count += tokens.numel();
    }
    HeadSums r;
    r.count = count;
    r.sum.assign(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
    return r;
  }

  RunResult run(const at::Tensor& tokens_in, const RunOptions& o) {
    const Config& c = info_.config;
    validate(o.variant, c);
    at::Tensor tokens = tokens_in.dim() == 1 ? tokens_in.unsqueeze(0) : tokens_in;
    if (tokens.dim() != 2) throw std::invalid_argument("tokens must be [T] or [B, T]");
    tokens = tokens.to(dev_, at::kLong);
    check_tokens(tokens);
    const std::set<std::string> names = all_hook_names(c.n_layer);
    for (const auto& n : o.cache)
      if (!names.count(n)) throw std::invalid_argument("unknown hook name '" + n + "'");
    for (const auto& h : o.hooks)
      if (!names.count(h.name)) throw std::invalid_argument("unknown hook name '" + h.name + "'");
    at::NoGradGuard no_grad;
    const PrecisionScope precision(opt_.precision);  // this model's TF32 settings, every forward
    use_model_threads(opt_);                          // this thread's LibTorch + BLAS threads
    last_flags_ = matmul_flags();
    RunResult r;
    HookSet hs;
    hs.hooks = &o.hooks;
    hs.cache = &o.cache;
    hs.cache_out = &r.cache;
    if (!o.variant.empty()) hs.rows.push_back({0, tokens.size(0), &o.variant});
    const int stop = (o.stop_at_layer < 0 || o.stop_at_layer > c.n_layer) ? c.n_layer : o.stop_at_layer;
    at::Tensor resid = fwd_.embed(tokens, hs);
    for (int l = 0; l < stop; ++l) resid = fwd_.block(l, resid, hs);
    r.resid = resid;
    if (stop == c.n_layer && (o.logits || o.cache.count("ln_final.hook_normalized"))) {
      const at::Tensor x = fwd_.final_norm(resid, hs);
      if (o.logits) r.logits = fwd_.unembed(x);
    }
    return r;
  }

  NllSum nll_hooks(const Chunks& chunks, const std::vector<Hook>& hooks, const Variant& v) {
    const Config& c = info_.config;
    validate(v, c);
    check_chunks(chunks);
    const std::set<std::string> names = all_hook_names(c.n_layer);
    for (const auto& h : hooks)
      if (!names.count(h.name)) throw std::invalid_argument("unknown hook name '" + h.name + "'");
    at::NoGradGuard no_grad;
    const PrecisionScope precision(opt_.precision);  // this model's TF32 settings, every forward
    use_model_threads(opt_);                          // this thread's LibTorch + BLAS threads
    last_flags_ = matmul_flags();
    NllSum out;
    for (const auto& batch : batches(chunks)) {
      const at::Tensor tokens = to_tokens(chunks, batch);
      HookSet hs;
      hs.hooks = &hooks;
      if (!v.empty()) hs.rows.push_back({0, tokens.size(0), &v});
      at::Tensor resid = fwd_.embed(tokens, hs);
      for (int l = 0; l < c.n_layer; ++l) resid = fwd_.block(l, resid, hs);
      add(out, fwd_.row_nll(fwd_.final_norm(resid, hs), tokens, slice_rows()), 0, tokens.size(0), tokens.size(1));
    }
    return out;
  }

 private:
  // Activation bytes one batch row of length T needs at the peak of a block
  // (scores + pattern, MLP hidden twice, a dozen d_model-wide temporaries).
  int64_t row_bytes(int64_t T) const {
    const Config& c = info_.config;
    return 4 * (2 * c.n_head * T * T + 2 * T * c.d_mlp + 16 * T * c.d_model + 3 * T * c.d_model);
  }
  int divergence_key(const Variant& v) const {
    const int n = info_.config.n_layer;
    const int m = std::min(v.min_layer(), n);
    if (m == n) return 2 * n;
    for (const auto& op : v.ops)
      if (op.layer == m && (op.op == HeadOp::attn_relu || op.op == HeadOp::attn_l1 || op.op == HeadOp::attn_identity))
        return 2 * m;
    return 2 * m + 1;
  }
  int64_t max_rows(int64_t T) const { return std::max<int64_t>(1, budget_ / row_bytes(T)); }
  // Positions per unembedding slice: a third of the budget for the [rows,
  // vocab] logits on accelerators; on the CPU at most ~128 MB, as bigger
  // blocks only add page-fault churn (every large allocation is a fresh mmap).
  int64_t slice_rows() const {
    const int64_t per_row = 4 * static_cast<int64_t>(info_.config.vocab);
    const int64_t bytes = dev_.is_cpu() ? std::min<int64_t>(budget_ / 3, 128ll << 20) : budget_ / 3;
    return std::clamp<int64_t>(bytes / per_row, 64, 16384);
  }

  void check_chunks(const Chunks& chunks) const {
    const Config& c = info_.config;
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (static_cast<int>(chunks[i].size()) > c.n_ctx)
        throw std::invalid_argument("chunk " + std::to_string(i) + " has " + std::to_string(chunks[i].size()) +
                                    " tokens, more than n_ctx = " + std::to_string(c.n_ctx));
      for (int32_t t : chunks[i])
        if (t < 0 || t >= c.vocab)
          throw std::invalid_argument("token id " + std::to_string(t) + " in chunk " + std::to_string(i) +
                                      " is outside the vocabulary [0, " + std::to_string(c.vocab) + ")");
    }
  }

  void check_tokens(const at::Tensor& tokens) const {
    const Config& c = info_.config;
    if (tokens.size(1) > c.n_ctx)
      throw std::invalid_argument(std::to_string(tokens.size(1)) + " tokens, more than n_ctx = " + std::to_string(c.n_ctx));
    if (tokens.numel() == 0) throw std::invalid_argument("empty token tensor");
    if (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= c.vocab)
      throw std::invalid_argument("token ids outside the vocabulary [0, " + std::to_string(c.vocab) + ")");
  }

  // Chunks of equal length (≥ min_len tokens: a 1-token chunk predicts
  // nothing but still has activations) in batches that fit the budget;
  // chunk order kept within a length.
  std::vector<std::vector<size_t>> batches(const Chunks& chunks, size_t min_len = 2) const {
    std::map<size_t, std::vector<size_t>> by_len;
    for (size_t i = 0; i < chunks.size(); ++i)
      if (chunks[i].size() >= min_len) by_len[chunks[i].size()].push_back(i);
    std::vector<std::vector<size_t>> out;
    for (const auto& [len, idx] : by_len) {
      const size_t per = static_cast<size_t>(max_rows(static_cast<int64_t>(len)));
      for (size_t s = 0; s < idx.size(); s += per)
        out.emplace_back(idx.begin() + static_cast<std::ptrdiff_t>(s),
                         idx.begin() + static_cast<std::ptrdiff_t>(std::min(idx.size(), s + per)));
    }
    return out;
  }

  at::Tensor to_tokens(const Chunks& chunks, const std::vector<size_t>& batch) const {
    const int64_t T = static_cast<int64_t>(chunks[batch[0]].size());
    at::Tensor t = at::empty({static_cast<int64_t>(batch.size()), T}, at::kLong);
    int64_t* p = t.data_ptr<int64_t>();
    for (size_t b = 0; b < batch.size(); ++b)
      for (int64_t i = 0; i < T; ++i) p[static_cast<int64_t>(b) * T + i] = chunks[batch[b]][static_cast<size_t>(i)];
    return t.to(dev_);
  }

  static void add(NllSum& s, const at::Tensor& rows, int64_t begin, int64_t n, int64_t T) {
    const double* p = rows.data_ptr<double>();
    for (int64_t i = begin; i < begin + n; ++i) s.nll += p[i];
    s.count += n * (T - 1);
  }

  ModelInfo info_;
  LoadOptions opt_;
  at::Device dev_;
  Weights w_;
  Forward fwd_;
  int64_t budget_ = 0;
  MatmulFlags last_flags_;
};

Gpt2Model& impl(Model& m) {
  auto* p = dynamic_cast<Gpt2Model*>(&m);
  if (!p) throw std::invalid_argument("not a model made by spt::gpt2::load_model");
  return *p;
}
const Gpt2Model& impl(const Model& m) {
  const auto* p = dynamic_cast<const Gpt2Model*>(&m);
  if (!p) throw std::invalid_argument("not a model made by spt::gpt2::load_model");
  return *p;
}

at::ScalarType matrix_dtype(Precision p) { return p == Precision::bf16 ? at::kBFloat16 : at::kFloat; }

}  // namespace

// LibTorch intra-op and BLAS threads for the calling thread (cpu_runtime.h).
void set_threads(int n) { use_cpu_threads(n); }

std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

std::string device_description(const std::string& device) {
  const at::Device d = parse_device(device);
  if (d.is_cpu())
    return "cpu (" + std::to_string(at::get_num_threads()) + " threads; " + blas_description() + ")";
  if (d.is_cuda()) return device + " (" + std::to_string(torch::cuda::device_count()) + " CUDA devices visible)";
  return device;
}

std::string check_device(const std::string& device) {
  const at::Device d = parse_device(device);
  if (d.is_cuda()) {
    if (!torch::cuda::is_available())
      throw std::runtime_error("device " + device + ": this LibTorch build has no usable CUDA (CPU-only build, or no "
                               "GPU/driver visible); use --device cpu or a CUDA build (deploy/gpu-build.sh)");
    const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
    if (d.has_index() && d.index() >= n)
      throw std::runtime_error("device " + device + ": only " + std::to_string(n) + " CUDA device(s) visible");
  }
  if (d.is_mps() && !at::hasMPS())
    throw std::runtime_error("device " + device + ": MPS (Metal) is not available here; it needs Apple silicon and "
                             "a LibTorch built with MPS");
  return device_description(device);
}

std::unique_ptr<Model> load_model(const std::string& name_or_path, const LoadOptions& opt) {
  if (opt.threads > 0) set_threads(opt.threads);
  const at::Device dev = parse_device(opt.device);
  if (dev.is_cpu()) tune_cpu_process();
  if (opt.precision == Precision::bf16 && dev.is_mps() && TORCH_VERSION_MAJOR < 2)
    throw std::invalid_argument("bf16 on mps needs LibTorch 2.x");
  const std::string dir = resolve_model_dir(name_or_path);
  const Checkpoint ck = Checkpoint::open(dir, name_or_path);
  at::NoGradGuard no_grad;
  Weights w = raw_weights(ck);
  process(w, ck.config(), opt.processing);
  Weights on_dev = to_device(w, ck.config(), dev, matrix_dtype(opt.precision));
  return std::make_unique<Gpt2Model>(ck.info(), opt, std::move(on_dev), dev);
}

RunResult run(Model& m, const at::Tensor& tokens, const RunOptions& opt) { return impl(m).run(tokens, opt); }

at::Tensor tokens_tensor(const std::vector<int32_t>& ids) {
  at::Tensor t = at::empty({1, static_cast<int64_t>(ids.size())}, at::kLong);
  std::copy(ids.begin(), ids.end(), t.data_ptr<int64_t>());
  return t;
}

NllSum nll_with_hooks(Model& m, const Chunks& chunks, const std::vector<Hook>& hooks, const Variant& v) {
  return impl(m).nll_hooks(chunks, hooks, v);
}

const Weights& weights(const Model& m) { return impl(m).weights(); }

MatmulFlags last_forward_flags(const Model& m) { return impl(m).last_flags(); }

std::unique_ptr<Model> with_weights(const Model& m, const Weights& w) {
  const Gpt2Model& g = impl(m);
  at::NoGradGuard no_grad;
  // Clone first so the new model never shares storage with the caller's copy.
  Weights on_dev = to_device(w.clone(), g.info().config, g.device(), matrix_dtype(g.options().precision));
  return std::make_unique<Gpt2Model>(g.info(), g.options(), std::move(on_dev), g.device());
}

at::Device device(const Model& m) { return impl(m).device(); }

}  // namespace spt::gpt2
