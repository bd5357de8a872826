// QkEdit's JSON form (spt/gpt2.h); torch-free, in spt_gpt2_api.
#include <stdexcept>

#include "spt/gpt2.h"

namespace spt::gpt2 {

nlohmann::json to_json(const QkEdit& e) {
  nlohmann::json j = {{"layer", e.layer}, {"head", e.head}, {"source", e.source}};
  if (!e.target.empty()) j["target"] = e.target;
  return j;
}

QkEdit qk_edit_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("qk edit must be a JSON object, got " + j.dump().substr(0, 200));
  QkEdit e;
  try {
    e.layer = j.at("layer").get<int>();
    e.head = j.at("head").get<int>();
    e.source = j.value("source", std::string());
    if (j.contains("target")) e.target = j.at("target").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& ex) {
    throw std::invalid_argument("bad qk edit " + j.dump().substr(0, 200) + ": " + ex.what());
  }
  if (e.layer < 0 || e.head < 0) throw std::invalid_argument("qk edit: negative layer/head in " + j.dump().substr(0, 200));
  return e;
}

}  // namespace spt::gpt2
