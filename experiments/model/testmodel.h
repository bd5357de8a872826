#pragma once
// Random GPT-2 checkpoints in real Hugging Face format (config.json +
// model.safetensors), for tests, benchmarks and dry runs without network.
// Torch-free and deterministic: the same spec and seed give the same bytes
// on every platform (own RNG, own normal sampler).
//
// Weights ~ N(0, std²); LayerNorm γ ~ 1 + N(0, ln_std²), β and all biases
// ~ N(0, bias_std²), so weight folding (spec §1.3) is exercised.
#include <cstdint>
#include <string>

namespace spt::gpt2 {

struct TestModelSpec {
  int n_layer = 2;
  int n_head = 4;
  int d_model = 64;
  int d_mlp = 0;        // 0 → 4·d_model (and config n_inner: null)
  int n_ctx = 128;
  int vocab = 50257;    // GPT-2's, so the real tokenizer works
  std::string dtype = "F32";  // F32 | F16 | BF16
  bool prefixed = true;       // "transformer.h.0…" (save_pretrained) or legacy "h.0…"
  bool attn_bias_buffers = false;  // add h.{l}.attn.bias [1,1,n_ctx,n_ctx] mask buffers
  uint64_t seed = 0;
  float std = 0.02f;
  float ln_std = 0.2f;
  float bias_std = 0.05f;
};

// Writes dir/config.json and dir/model.safetensors (creating dir). Throws
// std::invalid_argument for an impossible spec (d_model % n_head != 0, …),
// std::runtime_error on I/O errors.
void write_test_model(const std::string& dir, const TestModelSpec& spec);

}  // namespace spt::gpt2
