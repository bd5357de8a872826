#include "submission.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/platform/model_names.h"
#include "spt/hash.h"
#include "spt/hf_folder.h"
#include "spt/utf8.h"
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

// One --model entry resolved: a folder (described, maybe uploaded) or a name.
struct ResolvedModel {
  std::string model, sha256;
  std::string label;  // the submitted name, for an uploaded model ("" otherwise)
  int n_layer = 0, n_head = 0, n_ctx = 0;  // 0: not read (a name)
  bool folder = false;
};

}  // namespace

std::string hf_cache_snapshot(const std::string& id) { return hf::cached_snapshot(id); }

namespace {

ResolvedModel resolve_model(const std::string& spec, bool upload_it, const Uploader& upload, const Lookup& lookup) {
  ResolvedModel r;
  fs::path dir(spec);
  // --upload of a hub name: send the submitter's cached copy.
  if (upload_it && !fs::exists(dir) && spec[0] != '.' && spec[0] != '/' && spec.rfind("sha256:", 0) != 0) {
    const std::string snap = hf_cache_snapshot(spec);
    if (snap.empty())
      throw std::runtime_error("--upload --model " + spec + ": not in this machine's Hugging Face cache (" +
                               "HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub); download it first or give a folder");
    dir = snap;
    r.label = spec;
  }
  if (fs::is_directory(dir)) {
    const std::string cfg_path = (dir / "config.json").string();
    if (!fs::exists(cfg_path)) throw std::runtime_error("--model " + spec + ": folder has no config.json");
    nlohmann::json cfg;
    try {
      cfg = nlohmann::json::parse(read_file(cfg_path));
    } catch (const std::exception& e) {
      throw std::runtime_error("--model " + spec + ": corrupt config.json: " + e.what());
    }
    const auto weights = hf::weight_files(dir.string());
    r.folder = true;
    r.n_layer = config_int(cfg, "n_layer", cfg_path);
    r.n_head = config_int(cfg, "n_head", cfg_path);
    // HF GPT-2 configs name the context n_positions (n_ctx is older); both
    // mean the longest sequence the position table covers. Absent: unknown
    // (0), and the worker checks at run time.
    if (cfg.contains("n_positions") || cfg.contains("n_ctx"))
      r.n_ctx = config_int(cfg, cfg.contains("n_positions") ? "n_positions" : "n_ctx", cfg_path);
    r.sha256 = hf::weights_sha256(weights);
    const std::string blob_name = "model/" + r.sha256 + ".tar";
    const std::string stored = upload_it && lookup ? lookup(blob_name) : "";
    if (upload_it && r.label.empty()) r.label = fs::absolute(dir).lexically_normal().string();
    if (!stored.empty()) {
      r.model = "sha256:" + stored;  // these weights are already in the coordinator's store
    } else if (upload_it) {
      const std::string tar = tar_model(fs::absolute(dir), weights);
      try {
        r.model = "sha256:" + upload(tar, blob_name);
      } catch (...) {
        fs::remove(tar);
        throw;
      }
      fs::remove(tar);
    } else {
      r.model = fs::absolute(dir).lexically_normal().string();
    }
  } else if (fs::exists(dir)) {
    throw std::runtime_error("--model " + spec + " is a file; give the model's folder (config.json + "
                             "model.safetensors) or a name such as gpt2");
  } else if (spec[0] == '.' || spec[0] == '/') {
    throw std::runtime_error("--model " + spec + ": no such folder");
  } else {
    r.model = spec;  // a hub name or an uploaded artifact; workers resolve it
    if (spec.rfind("sha256:", 0) != 0 && hf_cache_snapshot(spec).empty())
      std::cerr << "note: --model " << spec << " is not in this machine's Hugging Face cache; workers must "
                << "have it cached or be online (a job that cannot load it fails at once with the reason)\n";
  }
  return r;
}

// The model params of `--model a,b,…`: one entry → plain values; several →
// aligned comma lists (experiments/platform/plan_builder.h). Dims are
// listed only when some entry is a folder; a name's entry then carries its
// known dims, or stays empty for the plan to fill in.
void add_model_params(const SubmitFlags& f, const Uploader& upload, const Lookup& lookup,
                      std::map<std::string, std::string>& p) {
  const auto specs = split_commas(f.model);
  std::vector<ResolvedModel> ms;
  for (const auto& spec : specs) {
    if (spec.empty()) throw std::runtime_error("--model " + f.model + ": empty entry in the list");
    ms.push_back(resolve_model(spec, f.upload, upload, lookup));
  }
  if (ms.size() == 1) {
    const ResolvedModel& m = ms.front();
    p["model"] = m.model;
    if (!m.label.empty()) p["model_label"] = m.label;
    if (m.folder) {
      p["n_layer"] = std::to_string(m.n_layer);
      p["n_head"] = std::to_string(m.n_head);
      if (m.n_ctx > 0) p["n_ctx"] = std::to_string(m.n_ctx);
      p["model_sha256"] = m.sha256;
    }
    return;
  }
  bool any_folder = false;
  for (const auto& m : ms) any_folder |= m.folder;
  auto join = [&](auto field) {
    std::string s;
    for (size_t i = 0; i < ms.size(); ++i) s += (i ? "," : "") + field(ms[i]);
    return s;
  };
  p["model"] = join([](const ResolvedModel& m) { return m.model; });
  bool any_label = false;
  for (const auto& m : ms) any_label |= !m.label.empty();
  if (any_label) p["model_label"] = join([](const ResolvedModel& m) { return m.label; });
  if (!any_folder) return;
  // A name's dims: known ones, else "" for the plan to fill in or refuse.
  auto dims = [](const ResolvedModel& m, bool layers) -> std::string {
    if (m.folder) return std::to_string(layers ? m.n_layer : m.n_head);
    const auto* k = platform::known_model(m.model);
    return k ? std::to_string(layers ? k->n_layer : k->n_head) : "";
  };
  p["n_layer"] = join([&](const ResolvedModel& m) { return dims(m, true); });
  p["n_head"] = join([&](const ResolvedModel& m) { return dims(m, false); });
  bool any_ctx = false;
  for (const auto& m : ms) any_ctx |= m.folder && m.n_ctx > 0;
  if (any_ctx)
    p["n_ctx"] = join([](const ResolvedModel& m) {
    if (m.folder) return m.n_ctx > 0 ? std::to_string(m.n_ctx) : std::string();
    const auto* k = platform::known_model(m.model);
    return k ? std::to_string(k->n_ctx) : std::string();
  });
  p["model_sha256"] = join([](const ResolvedModel& m) { return m.sha256; });
}

// A dataset is UTF-8 text (workers tokenize it as such): a NUL byte or an
// invalid sequence means a binary or wrongly encoded file, refused here
// rather than after a worker spent a model load on it.
void check_text_file(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(flag + " " + path + ": cannot read the file");
  utf8::Validator v;
  std::string buf(1 << 16, '\0');
  for (size_t base = 0; in;) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const size_t got = static_cast<size_t>(in.gcount());
    if (const void* nul = std::memchr(buf.data(), 0, got)) {
      const size_t at = base + static_cast<size_t>(static_cast<const char*>(nul) - buf.data());
      v.feed(std::string_view(buf.data(), at - base));  // an earlier encoding error is reported first
      if (v.error_at() == utf8::Validator::npos)
        throw std::runtime_error(flag + " " + path + " is not a text file: NUL byte at byte offset " +
                                 std::to_string(at));
    } else {
      v.feed(std::string_view(buf.data(), got));
    }
    if (v.error_at() != utf8::Validator::npos) break;
    base += got;
  }
  if (const size_t at = v.finish(); at != utf8::Validator::npos)
    throw std::runtime_error(flag + " " + path + " is not UTF-8 text: invalid byte at byte offset " +
                             std::to_string(at));
}

}  // namespace

std::map<std::string, std::string> submission_params(const SubmitFlags& f, const Uploader& upload,
                                                     const Lookup& lookup) {
  std::map<std::string, std::string> p;
  if (!f.model.empty()) add_model_params(f, upload, lookup, p);
  if (!f.dataset.empty()) {
    fs::path file(f.dataset);
    if (fs::is_directory(file)) {
      if (!fs::exists(file / "wiki.valid.raw"))
        throw std::runtime_error("--dataset " + f.dataset + ": folder holds no wiki.valid.raw");
      file /= "wiki.valid.raw";
    }
    if (fs::exists(file)) {
      check_text_file(file.string(), "--dataset");
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
