#include "testmodel.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "safetensors.h"
#include "spt/util.h"

namespace spt::gpt2 {
namespace {

// splitmix64 → uniforms → Box–Muller: portable, unlike std::normal_distribution.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u = uniform(), v = uniform();
    const double r = std::sqrt(-2.0 * std::log(u));
    spare_ = r * std::sin(2.0 * M_PI * v);
    has_spare_ = true;
    return r * std::cos(2.0 * M_PI * v);
  }

 private:
  uint64_t s_;
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace

void write_test_model(const std::string& dir, const TestModelSpec& s) {
  if (s.n_layer < 1 || s.n_head < 1 || s.d_model < 1 || s.n_ctx < 1 || s.vocab < 1 || s.d_mlp < 0)
    throw std::invalid_argument("test model: sizes must be positive");
  if (s.d_model % s.n_head != 0) throw std::invalid_argument("test model: d_model must be divisible by n_head");
  if (s.dtype != "F32" && s.dtype != "F16" && s.dtype != "BF16")
    throw std::invalid_argument("test model: dtype must be F32, F16 or BF16");
  const int64_t d = s.d_model, m = s.d_mlp > 0 ? s.d_mlp : 4 * s.d_model;
  std::filesystem::create_directories(dir);

  Rng rng(s.seed);
  std::vector<st::OutTensor> out;
  const std::string pre = s.prefixed ? "transformer." : "";
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double mean, double sd) {
    int64_t n = 1;
    for (int64_t k : shape) n *= k;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<float>(mean + sd * rng.normal());
    out.push_back({pre + name, s.dtype, std::move(shape), st::encode_f32(v, s.dtype)});
  };
  add("wte.weight", {s.vocab, d}, 0, s.std);
  add("wpe.weight", {s.n_ctx, d}, 0, s.std);
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    add(h + "ln_1.weight", {d}, 1, s.ln_std);
    add(h + "ln_1.bias", {d}, 0, s.ln_std);
    if (s.attn_bias_buffers) {
      // GPT-2's causal-mask buffer: lower triangle of ones.
      std::vector<float> mask(static_cast<size_t>(s.n_ctx) * s.n_ctx, 0.0f);
      for (int i = 0; i < s.n_ctx; ++i)
        for (int j = 0; j <= i; ++j) mask[static_cast<size_t>(i) * s.n_ctx + j] = 1.0f;
      out.push_back({pre + h + "attn.bias", s.dtype, {1, 1, s.n_ctx, s.n_ctx}, st::encode_f32(mask, s.dtype)});
    }
    add(h + "attn.c_attn.weight", {d, 3 * d}, 0, s.std);
    add(h + "attn.c_attn.bias", {3 * d}, 0, s.bias_std);
    add(h + "attn.c_proj.weight", {d, d}, 0, s.std);
    add(h + "attn.c_proj.bias", {d}, 0, s.bias_std);
    add(h + "ln_2.weight", {d}, 1, s.ln_std);
    add(h + "ln_2.bias", {d}, 0, s.ln_std);
    add(h + "mlp.c_fc.weight", {d, m}, 0, s.std);
    add(h + "mlp.c_fc.bias", {m}, 0, s.bias_std);
    add(h + "mlp.c_proj.weight", {m, d}, 0, s.std);
    add(h + "mlp.c_proj.bias", {d}, 0, s.bias_std);
  }
  add("ln_f.weight", {d}, 1, s.ln_std);
  add("ln_f.bias", {d}, 0, s.ln_std);
  st::write((std::filesystem::path(dir) / "model.safetensors").string(), out);

  nlohmann::json cfg = {
      {"activation_function", "gelu_new"},
      {"architectures", {"GPT2LMHeadModel"}},
      {"attn_pdrop", 0.0},
      {"embd_pdrop", 0.0},
      {"resid_pdrop", 0.0},
      {"layer_norm_epsilon", 1e-5},
      {"model_type", "gpt2"},
      {"n_embd", s.d_model},
      {"n_head", s.n_head},
      {"n_inner", s.d_mlp > 0 ? nlohmann::json(s.d_mlp) : nlohmann::json(nullptr)},
      {"n_layer", s.n_layer},
      {"n_positions", s.n_ctx},
      {"vocab_size", s.vocab},
      {"scale_attn_weights", true},
      {"tie_word_embeddings", true},
      {"torch_dtype", s.dtype == "F32" ? "float32" : s.dtype == "F16" ? "float16" : "bfloat16"},
      {"spt_test_model", {{"seed", s.seed}, {"std", s.std}, {"ln_std", s.ln_std}, {"bias_std", s.bias_std}}},
  };
  spt::write_file_atomic((std::filesystem::path(dir) / "config.json").string(), cfg.dump(2) + "\n");
}

}  // namespace spt::gpt2
