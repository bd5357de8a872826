#include "checkpoint.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "hub.h"
#include "spt/hf_folder.h"
#include "spt/util.h"

namespace fs = std::filesystem;

namespace spt::gpt2 {
namespace {

nlohmann::json read_json(const std::string& path) {
  std::string text;
  try {
    text = spt::read_file(path);
  } catch (const std::exception&) {
    throw std::runtime_error("cannot read " + path);
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw std::runtime_error("corrupt JSON in " + path + ": " + e.what());
  }
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

Config read_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(path)) throw std::runtime_error("model folder " + dir + " has no config.json");
  const nlohmann::json j = read_json(path);
  auto need_int = [&](const char* key, const char* alt = nullptr) -> int {
    const nlohmann::json* v = nullptr;
    if (j.contains(key) && !j[key].is_null()) v = &j[key];
    else if (alt && j.contains(alt) && !j[alt].is_null()) v = &j[alt];
    if (!v || !v->is_number_integer() || v->get<int64_t>() <= 0)
      throw std::runtime_error(path + ": field '" + key + "' must be a positive integer");
    return v->get<int>();
  };
  if (j.contains("model_type") && j["model_type"] != "gpt2")
    throw std::runtime_error(path + ": model_type is " + j["model_type"].dump() + ", only gpt2 is supported");
  const std::string act = j.value("activation_function", std::string("gelu_new"));
  if (act != "gelu_new")
    throw std::runtime_error(path + ": activation_function is '" + act +
                             "'; this engine implements GPT-2's gelu_new only");
  if (!j.value("scale_attn_weights", true))
    throw std::runtime_error(path + ": scale_attn_weights=false is not supported");
  if (j.value("scale_attn_by_inverse_layer_idx", false))
    throw std::runtime_error(path + ": scale_attn_by_inverse_layer_idx=true is not supported");
  if (j.value("add_cross_attention", false))
    throw std::runtime_error(path + ": cross-attention GPT-2 models are not supported");
  Config c;
  c.n_layer = need_int("n_layer");
  c.n_head = need_int("n_head");
  c.d_model = need_int("n_embd");
  c.n_ctx = need_int("n_positions", "n_ctx");
  c.vocab = need_int("vocab_size");
  c.d_mlp = (j.contains("n_inner") && !j["n_inner"].is_null()) ? need_int("n_inner") : 4 * c.d_model;
  if (c.d_model % c.n_head != 0)
    throw std::runtime_error(path + ": n_embd " + std::to_string(c.d_model) + " is not divisible by n_head " +
                             std::to_string(c.n_head));
  c.d_head = c.d_model / c.n_head;
  c.eps = j.value("layer_norm_epsilon", 1e-5);
  if (!(c.eps > 0)) throw std::runtime_error(path + ": layer_norm_epsilon must be positive");
  return c;
}

std::vector<std::string> weight_files(const std::string& dir) { return hf::weight_files(dir); }

std::string resolve_model_dir(const std::string& name_or_path) {
  if (name_or_path.empty()) throw std::runtime_error("empty model name");
  const fs::path p(name_or_path);
  if (fs::is_directory(p)) {
    if (!fs::exists(p / "config.json")) throw std::runtime_error("model folder " + name_or_path + " has no config.json");
    return p.string();
  }
  const bool looks_like_path = name_or_path[0] == '/' || name_or_path[0] == '.' || name_or_path[0] == '~';
  if (looks_like_path) throw std::runtime_error("model folder " + name_or_path + " does not exist");

  std::vector<std::string> looked;
  if (std::string snap = hf::cached_snapshot(name_or_path, &looked); !snap.empty()) return snap;
  // Not cached: fetch it the way the hub client would, into the first cache root.
  std::string why = "no cache folder to download into";
  const auto roots = hf::cache_roots();
  if (!roots.empty()) {
    try {
      const std::string snap = download_from_hub(hf::hub_ids(name_or_path).front(), roots.front());
      if (fs::exists(fs::path(snap) / "config.json") && hf::has_weights(snap)) return snap;
      why = "the download of " + name_or_path + " left no config.json + model.safetensors in " + snap;
    } catch (const std::exception& e) {
      why = e.what();
    }
  }
  throw std::runtime_error("model '" + name_or_path + "' is not a folder and was not found in the Hugging Face cache "
                           "(looked in: " + (looked.empty() ? std::string("no cache folder configured") : join(looked, ", ")) +
                           "), and it could not be downloaded (" + why + "). Download it with huggingface-cli on a "
                           "machine with internet (huggingface-cli download " + name_or_path +
                           " config.json model.safetensors), or pass a folder with config.json and model.safetensors.");
}

Checkpoint Checkpoint::open(const std::string& dir, const std::string& name) {
  Checkpoint ck;
  ck.info_.name = name;
  ck.info_.dir = dir;
  ck.info_.config = read_config(dir);
  const Config& c = ck.info_.config;
  const auto files = weight_files(dir);

  std::set<std::string> dtypes;
  std::vector<std::string> unknown;
  for (size_t fi = 0; fi < files.size(); ++fi) {
    ck.files_.push_back(st::File::open(files[fi]));
    for (const auto& t : ck.files_.back()->tensors()) {
      std::string key = t.name;
      if (key.rfind("transformer.", 0) == 0) key = key.substr(12);
      // Causal-mask buffers of old checkpoints; the engine builds its own mask.
      auto ends_with = [&](const std::string& s) {
        return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
      };
      if (ends_with(".attn.bias") || ends_with(".attn.masked_bias")) continue;
      if (ck.where_.count(key)) throw std::runtime_error(dir + ": tensor " + key + " appears twice");
      ck.where_[key] = {fi, &t};
      dtypes.insert(t.dtype);
    }
  }
  ck.info_.sha256 = hf::weights_sha256(files);

  // Expected tensors and their shapes.
  std::map<std::string, std::vector<int64_t>> want;
  const int64_t d = c.d_model, m = c.d_mlp;
  want["wte.weight"] = {c.vocab, d};
  want["wpe.weight"] = {c.n_ctx, d};
  want["ln_f.weight"] = {d};
  want["ln_f.bias"] = {d};
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    want[h + "ln_1.weight"] = {d};
    want[h + "ln_1.bias"] = {d};
    want[h + "attn.c_attn.weight"] = {d, 3 * d};
    want[h + "attn.c_attn.bias"] = {3 * d};
    want[h + "attn.c_proj.weight"] = {d, d};
    want[h + "attn.c_proj.bias"] = {d};
    want[h + "ln_2.weight"] = {d};
    want[h + "ln_2.bias"] = {d};
    want[h + "mlp.c_fc.weight"] = {d, m};
    want[h + "mlp.c_fc.bias"] = {m};
    want[h + "mlp.c_proj.weight"] = {m, d};
    want[h + "mlp.c_proj.bias"] = {d};
  }
  std::vector<std::string> missing;
  for (const auto& [k, s] : want) {
    auto it = ck.where_.find(k);
    if (it == ck.where_.end()) {
      missing.push_back(k);
      continue;
    }
    if (it->second.second->shape != s)
      throw std::runtime_error(dir + ": tensor " + k + " has shape " + shape_str(it->second.second->shape) +
                               " but config.json implies " + shape_str(s));
  }
  if (!missing.empty()) {
    if (missing.size() > 6) missing.resize(6), missing.push_back("...");
    throw std::runtime_error(dir + ": checkpoint lacks tensors " + join(missing, ", ") +
                             " (a GPT-2 with " + std::to_string(c.n_layer) + " layers per config.json)");
  }
  for (const auto& [k, w] : ck.where_) {
    if (want.count(k)) continue;
    if (k == "lm_head.weight") {
      if (w.second->shape != std::vector<int64_t>{c.vocab, d})
        throw std::runtime_error(dir + ": lm_head.weight has shape " + shape_str(w.second->shape));
      continue;
    }
    unknown.push_back(k);
  }
  if (!unknown.empty()) {
    if (unknown.size() > 6) unknown.resize(6), unknown.push_back("...");
    throw std::runtime_error(dir + ": unexpected tensors for GPT-2: " + join(unknown, ", "));
  }
  for (const auto& dt : dtypes)
    if (dt != "F32" && dt != "F16" && dt != "BF16" && dt != "F64")
      throw std::runtime_error(dir + ": weights have dtype " + dt + "; expected F32, F16 or BF16");
  ck.info_.dtype_on_disk = dtypes.size() == 1 ? *dtypes.begin() : join({dtypes.begin(), dtypes.end()}, "+");
  return ck;
}

const st::TensorInfo& Checkpoint::find(const std::string& key) const {
  auto it = where_.find(key);
  if (it == where_.end()) throw std::out_of_range("checkpoint " + info_.dir + " has no tensor " + key);
  return *it->second.second;
}

std::vector<int64_t> Checkpoint::shape(const std::string& key) const { return find(key).shape; }

std::vector<float> Checkpoint::f32(const std::string& key) const {
  const auto& t = find(key);
  return files_[where_.at(key).first]->to_f32(t);
}

void Checkpoint::f32_into(const std::string& key, float* out) const {
  const auto& t = find(key);
  files_[where_.at(key).first]->to_f32(t, out);
}

std::vector<std::string> Checkpoint::keys() const {
  std::vector<std::string> k;
  for (const auto& [n, w] : where_) k.push_back(n);
  return k;
}

}  // namespace spt::gpt2
