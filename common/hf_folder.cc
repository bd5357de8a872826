#include "spt/hf_folder.h"

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

}  // namespace spt::hf
