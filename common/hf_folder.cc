#include "spt/hf_folder.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "spt/hash.h"
#include "spt/util.h"

namespace fs = std::filesystem;

namespace spt::hf {

std::vector<std::string> weight_files(const std::string& dir) {
  const fs::path d(dir);
  if (fs::exists(d / "model.safetensors")) return {(d / "model.safetensors").string()};
  const fs::path idx = d / "model.safetensors.index.json";
  if (fs::exists(idx)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(idx.string()));
    } catch (const std::exception& e) {
      throw std::runtime_error("corrupt JSON in " + idx.string() + ": " + e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw std::runtime_error(idx.string() + " has no weight_map object");
    std::set<std::string> names;
    for (const auto& [k, v] : j["weight_map"].items()) {
      if (!v.is_string()) throw std::runtime_error(idx.string() + ": weight_map value for " + k + " is not a file name");
      const std::string f = v.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        throw std::runtime_error(idx.string() + ": shard name '" + f + "' must be a plain file name");
      names.insert(f);
    }
    if (names.empty()) throw std::runtime_error(idx.string() + " lists no shards");
    std::vector<std::string> out;
    for (const auto& n : names) {
      const fs::path p = d / n;
      if (!fs::exists(p)) throw std::runtime_error("shard " + p.string() + " listed in " + idx.string() + " is missing");
      out.push_back(p.string());
    }
    return out;
  }
  if (fs::exists(d / "pytorch_model.bin"))
    throw std::runtime_error(dir + " has only pytorch_model.bin; spt reads safetensors (convert it, "
                                   "or download the model's model.safetensors)");
  throw std::runtime_error(dir + " has neither model.safetensors nor model.safetensors.index.json");
}

std::string weights_sha256(const std::vector<std::string>& files) {
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + f);
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      hash.update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
    }
  }
  return hash.hex();
}

bool has_weights(const std::string& dir) {
  const fs::path d(dir);
  return fs::exists(d / "model.safetensors") || fs::exists(d / "model.safetensors.index.json");
}

std::vector<std::string> cache_roots() {
  std::vector<std::string> roots;
  auto add = [&](const std::string& r) {
    if (!r.empty() && std::find(roots.begin(), roots.end(), r) == roots.end()) roots.push_back(r);
  };
  if (const char* v = std::getenv("HF_HUB_CACHE")) add(v);
  if (const char* v = std::getenv("HUGGINGFACE_HUB_CACHE")) add(v);
  if (const char* v = std::getenv("HF_HOME")) add((fs::path(v) / "hub").string());
  if (const char* v = std::getenv("XDG_CACHE_HOME")) add((fs::path(v) / "huggingface" / "hub").string());
  if (const char* v = std::getenv("HOME")) add((fs::path(v) / ".cache" / "huggingface" / "hub").string());
  return roots;
}

std::vector<std::string> hub_ids(const std::string& name) {
  if (name == "gpt2" || name == "gpt2-medium" || name == "gpt2-large" || name == "gpt2-xl")
    return {name, "openai-community/" + name};
  if (name == "distilgpt2") return {name, "distilbert/distilgpt2"};
  return {name};
}

std::string cached_snapshot(const std::string& name, std::vector<std::string>* looked) {
  for (const auto& root : cache_roots()) {
    for (const auto& id : hub_ids(name)) {
      std::string folder = "models--";
      for (char ch : id) folder += (ch == '/') ? std::string("--") : std::string(1, ch);
      const fs::path repo = fs::path(root) / folder;
      if (looked) looked->push_back(repo.string());
      std::error_code ec;
      if (!fs::is_directory(repo / "snapshots", ec)) continue;
      // refs/main names the snapshot the hub client would use.
      const fs::path ref = repo / "refs" / "main";
      if (fs::exists(ref, ec)) {
        std::string rev = read_file(ref.string());
        while (!rev.empty() && (rev.back() == '\n' || rev.back() == ' ' || rev.back() == '\r')) rev.pop_back();
        const fs::path snap = repo / "snapshots" / rev;
        if (!rev.empty() && fs::exists(snap / "config.json") && has_weights(snap.string())) return snap.string();
      }
      std::vector<fs::path> snaps;
      for (const auto& e : fs::directory_iterator(repo / "snapshots", ec))
        if (e.is_directory() && fs::exists(e.path() / "config.json") && has_weights(e.path().string())) snaps.push_back(e.path());
      std::sort(snaps.begin(), snaps.end());
      if (!snaps.empty()) return snaps.front().string();
    }
  }
  return "";
}

}  // namespace spt::hf
