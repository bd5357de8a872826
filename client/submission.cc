#include "submission.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "spt/hash.h"
#include "spt/hf_folder.h"
#include "spt/util.h"

namespace fs = std::filesystem;

namespace spt::client {
namespace {


int config_int(const nlohmann::json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<long long>() <= 0)
    throw std::runtime_error(path + ": field '" + key + "' must be a positive integer");
  return j[key].get<int>();
}

// A tar of the files a worker needs (config, weights, tokenizer if present),
// written beside the system's temp files; the caller removes it.
std::string tar_model(const fs::path& dir, const std::vector<std::string>& weights) {
  std::string list;
  for (const char* f : {"config.json", "model.safetensors.index.json", "vocab.json", "merges.txt"})
    if (fs::exists(dir / f)) list += " " + shell_quote(f);
  for (const auto& w : weights) list += " " + shell_quote(fs::path(w).filename().string());
  const fs::path out = fs::temp_directory_path() / ("spt-model-" + std::to_string(getpid()) + ".tar");
  const std::string cmd = "tar -cf " + shell_quote(out.string()) + " -C " + shell_quote(dir.string()) + list;
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("could not archive model folder " + dir.string());
  return out.string();
}

}  // namespace

std::map<std::string, std::string> submission_params(const SubmitFlags& f, const Uploader& upload) {
  std::map<std::string, std::string> p;
  if (!f.model.empty()) {
    const fs::path dir(f.model);
    if (fs::is_directory(dir)) {
      const std::string cfg_path = (dir / "config.json").string();
      if (!fs::exists(cfg_path)) throw std::runtime_error("--model " + f.model + ": folder has no config.json");
      nlohmann::json cfg;
      try {
        cfg = nlohmann::json::parse(read_file(cfg_path));
      } catch (const std::exception& e) {
        throw std::runtime_error("--model " + f.model + ": corrupt config.json: " + e.what());
      }
      const auto weights = hf::weight_files(dir.string());
      p["n_layer"] = std::to_string(config_int(cfg, "n_layer", cfg_path));
      p["n_head"] = std::to_string(config_int(cfg, "n_head", cfg_path));
      p["model_sha256"] = hf::weights_sha256(weights);
      if (f.upload) {
        const std::string tar = tar_model(fs::absolute(dir), weights);
        try {
          p["model"] = "sha256:" + upload(tar, "model/" + p["model_sha256"] + ".tar");
        } catch (...) {
          fs::remove(tar);
          throw;
        }
        fs::remove(tar);
      } else {
        p["model"] = fs::absolute(dir).lexically_normal().string();
      }
    } else if (fs::exists(dir)) {
      throw std::runtime_error("--model " + f.model + " is a file; give the model's folder (config.json + "
                               "model.safetensors) or a name such as gpt2");
    } else if (f.model[0] == '.' || f.model[0] == '/') {
      throw std::runtime_error("--model " + f.model + ": no such folder");
    } else {
      p["model"] = f.model;  // a hub name or an uploaded artifact; workers resolve it
    }
  }
  if (!f.dataset.empty()) {
    fs::path file(f.dataset);
    if (fs::is_directory(file)) {
      if (!fs::exists(file / "wiki.valid.raw"))
        throw std::runtime_error("--dataset " + f.dataset + ": folder holds no wiki.valid.raw");
      file /= "wiki.valid.raw";
    }
    if (fs::exists(file)) {
      p["dataset_sha256"] = sha256_file(file.string());
      p["dataset"] = f.upload ? "sha256:" + upload(file.string(), "dataset/" + file.filename().string())
                              : fs::absolute(file).lexically_normal().string();
    } else if (f.dataset[0] == '.' || f.dataset[0] == '/') {
      throw std::runtime_error("--dataset " + f.dataset + ": no such file or folder");
    } else {
      p["dataset"] = f.dataset;  // a name workers resolve (e.g. wikitext-2-raw under $SPT_DATA_DIR)
    }
  }
  if (!f.precision.empty()) {
    if (f.precision != "fp32" && f.precision != "tf32" && f.precision != "bf16")
      throw std::runtime_error("--precision must be fp32, tf32 or bf16 (got '" + f.precision + "')");
    p["precision"] = f.precision;
  }
  if (f.max_tokens > 0) p["max_tokens"] = std::to_string(f.max_tokens);
  if (f.chunk_len > 0) p["chunk_len"] = std::to_string(f.chunk_len);
  return p;
}

}  // namespace spt::client
