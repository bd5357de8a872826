#pragma once
// A Hugging Face GPT-2 checkpoint folder: config.json plus model.safetensors
// or sharded model-*.safetensors with model.safetensors.index.json.
// Torch-free; the engine turns the tensors into ATen weights (weights.h).
//
// Invariants after open(): the config is a supported GPT-2 (gelu_new,
// d_model divisible by n_head, scaled attention without per-layer scaling);
// every tensor GPT-2 needs is present with the shape the config implies;
// every key is known ("transformer." prefixes stripped, attention mask
// buffers ignored); dtypes are F32/F16/BF16 (F64 accepted).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "safetensors.h"
#include "spt/gpt2.h"

namespace spt::gpt2 {

// Parses dir/config.json. Throws std::runtime_error for a missing file, bad
// JSON, missing fields, or an unsupported architecture.
Config read_config(const std::string& dir);

// The weight files in shard order: dir/model.safetensors, or the files of
// dir/model.safetensors.index.json's weight_map (unique, sorted). Throws
// std::runtime_error if neither exists (mentioning pytorch_model.bin if that
// is all there is).
std::vector<std::string> weight_files(const std::string& dir);

class Checkpoint {
 public:
  // `name` is what the user asked for (kept in ModelInfo); `dir` the folder.
  // Hashes the weight files (sha256 over all shards in order).
  static Checkpoint open(const std::string& dir, const std::string& name);

  const ModelInfo& info() const { return info_; }
  const Config& config() const { return info_.config; }

  // Canonical keys: "wte.weight", "wpe.weight", "h.{l}.ln_1.weight",
  // "h.{l}.attn.c_attn.weight", ..., "ln_f.bias", optionally "lm_head.weight".
  bool has(const std::string& key) const { return where_.count(key) != 0; }
  std::vector<int64_t> shape(const std::string& key) const;
  // The tensor as float32 (row-major, shape()); throws std::out_of_range.
  std::vector<float> f32(const std::string& key) const;
  void f32_into(const std::string& key, float* out) const;
  std::vector<std::string> keys() const;

 private:
  const st::TensorInfo& find(const std::string& key) const;
  ModelInfo info_;
  std::vector<std::shared_ptr<const st::File>> files_;
  std::map<std::string, std::pair<size_t, const st::TensorInfo*>> where_;  // key → (file, entry)
};

}  // namespace spt::gpt2
