#pragma once
// Names of models, shared by every family's plan (torch-free, linked into the
// coordinator) and the worker-side executors and reduces. Header-only, so
// both agree without a link dependency. Thread-safe (pure functions).
#include <cctype>
#include <string>

namespace spt::platform {

// A short file-name-safe label for the model: "gpt2", the folder's last
// component, or "sha256-<12 hex>".
inline std::string model_label(const std::string& model) {
  std::string m = model;
  if (m.rfind("sha256:", 0) == 0) return "sha256-" + m.substr(7, 12);
  while (m.size() > 1 && m.back() == '/') m.pop_back();
  const auto slash = m.find_last_of('/');
  if (slash != std::string::npos) m = m.substr(slash + 1);
  std::string out;
  for (char c : m) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return out.empty() ? "model" : out;
}

// Dimensions of the models a name alone identifies.
struct KnownModel {
  const char* name;
  int n_layer, n_head, n_ctx;
  int d_model = 0, vocab = 50257;  // for plan-time memory footprints
};
// nullptr for a name not in the table (a folder, a blob, another hub model).
inline const KnownModel* known_model(const std::string& name) {
  static const KnownModel kModels[] = {
      {"gpt2", 12, 12, 1024, 768},        {"gpt2-medium", 24, 16, 1024, 1024}, {"gpt2-large", 36, 20, 1024, 1280},
      {"gpt2-xl", 48, 25, 1024, 1600},    {"distilgpt2", 6, 12, 1024, 768},
  };
  for (const auto& m : kModels)
    if (name == m.name) return &m;
  return nullptr;
}

}  // namespace spt::platform
