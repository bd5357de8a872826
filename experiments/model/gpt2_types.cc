// The torch-free half of spt/gpt2.h: names, JSON forms, small value types.
// Lives in spt_gpt2_api so torch-free code (plans, the coordinator's tests)
// can build variants without linking LibTorch.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "spt/gpt2.h"

namespace spt::gpt2 {

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::fp32;
  if (s == "tf32") return Precision::tf32;
  if (s == "bf16") return Precision::bf16;
  throw std::invalid_argument("unknown precision '" + s + "' (expected fp32, tf32 or bf16)");
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::tf32: return "tf32";
    case Precision::bf16: return "bf16";
  }
  return "?";
}

namespace {
const std::pair<HeadOp, const char*> kOps[] = {
    {HeadOp::zero, "zero"},         {HeadOp::mean, "mean"},       {HeadOp::replace, "replace"},
    {HeadOp::scale, "scale"},       {HeadOp::attn_relu, "relu"},  {HeadOp::attn_l1, "l1"},
    {HeadOp::attn_identity, "identity"},
};
}  // namespace

HeadOp parse_head_op(const std::string& s) {
  for (const auto& [op, name] : kOps)
    if (s == name) return op;
  // Also accept the enum spellings.
  if (s == "attn_relu") return HeadOp::attn_relu;
  if (s == "attn_l1") return HeadOp::attn_l1;
  if (s == "attn_identity") return HeadOp::attn_identity;
  throw std::invalid_argument("unknown head op '" + s +
                              "' (expected zero, mean, replace, scale, relu, l1 or identity)");
}

const char* to_string(HeadOp op) {
  for (const auto& [o, name] : kOps)
    if (o == op) return name;
  return "?";
}

int Variant::min_layer() const {
  int m = std::numeric_limits<int>::max();
  for (const auto& h : ops) m = std::min(m, h.layer);
  for (const auto& p : projections) m = std::min(m, p.layer);
  return m;
}

nlohmann::json to_json(const HeadIntervention& h) {
  nlohmann::json j = {{"layer", h.layer}, {"head", h.head}, {"op", to_string(h.op)}};
  if (h.position >= 0) j["position"] = h.position;
  if (h.op == HeadOp::scale) j["scale"] = h.scale;
  if (!h.values.empty()) j["values"] = h.values;
  return j;
}

HeadIntervention head_intervention_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("head intervention must be a JSON object, got " + j.dump());
  HeadIntervention h;
  try {
    h.layer = j.at("layer").get<int>();
    h.head = j.at("head").get<int>();
    h.op = parse_head_op(j.value("op", std::string("zero")));
    h.position = j.value("position", -1);
    h.scale = j.value("scale", 1.0f);
    if (j.contains("values")) h.values = j.at("values").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("bad head intervention " + j.dump() + ": " + e.what());
  }
  if (h.layer < 0 || h.head < 0) throw std::invalid_argument("negative layer/head in " + j.dump());
  if ((h.op == HeadOp::mean || h.op == HeadOp::replace) && h.values.empty())
    throw std::invalid_argument(std::string("head op '") + to_string(h.op) + "' needs values: " + j.dump());
  return h;
}

nlohmann::json to_json(const ResidualProjection& p) {
  nlohmann::json j = {{"layer", p.layer}, {"k", p.k}, {"source", p.source}};
  if (!p.mean.empty()) j["mean"] = p.mean;
  if (!p.basis.empty()) j["basis"] = p.basis;
  return j;
}

ResidualProjection residual_projection_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("residual projection must be a JSON object, got " + j.dump());
  ResidualProjection p;
  try {
    p.layer = j.at("layer").get<int>();
    p.k = j.at("k").get<int>();
    p.source = j.value("source", std::string());
    if (j.contains("mean")) p.mean = j.at("mean").get<std::vector<float>>();
    if (j.contains("basis")) p.basis = j.at("basis").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("bad residual projection " + j.dump().substr(0, 200) + ": " + e.what());
  }
  if (p.layer < 0 || p.k < 1) throw std::invalid_argument("residual projection needs layer >= 0 and k >= 1");
  if (p.mean.empty() != p.basis.empty())
    throw std::invalid_argument("residual projection on layer " + std::to_string(p.layer) +
                                ": give both mean and basis, or neither (source only)");
  return p;
}

nlohmann::json to_json(const Variant& v) {
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& h : v.ops) ops.push_back(to_json(h));
  nlohmann::json j = {{"ops", ops}};
  if (!v.projections.empty()) {
    nlohmann::json ps = nlohmann::json::array();
    for (const auto& p : v.projections) ps.push_back(to_json(p));
    j["projections"] = ps;
  }
  return j;
}

Variant variant_from_json(const nlohmann::json& j) {
  const nlohmann::json* ops = &j;
  if (j.is_object()) {
    if (!j.contains("ops")) throw std::invalid_argument("variant object needs \"ops\": " + j.dump());
    ops = &j.at("ops");
  }
  if (!ops->is_array()) throw std::invalid_argument("variant ops must be an array: " + j.dump());
  Variant v;
  for (const auto& o : *ops) v.ops.push_back(head_intervention_from_json(o));
  if (j.is_object() && j.contains("projections")) {
    if (!j.at("projections").is_array()) throw std::invalid_argument("variant projections must be an array");
    for (const auto& p : j.at("projections")) v.projections.push_back(residual_projection_from_json(p));
  }
  return v;
}

double NllSum::ppl() const {
  if (count <= 0) throw std::logic_error("perplexity of zero predicted tokens");
  return std::exp(nll / static_cast<double>(count));
}

std::vector<float> Model::HeadSums::mean(int layer, int head, const Config& c) const {
  if (count <= 0) throw std::logic_error("head means of zero positions");
  if (layer < 0 || layer >= c.n_layer || head < 0 || head >= c.n_head)
    throw std::out_of_range("head L" + std::to_string(layer) + "H" + std::to_string(head) + " out of range");
  const size_t base = (static_cast<size_t>(layer) * c.n_head + head) * c.d_head;
  if (base + c.d_head > sum.size()) throw std::out_of_range("HeadSums has fewer entries than the config implies");
  std::vector<float> m(c.d_head);
  for (int i = 0; i < c.d_head; ++i) m[i] = static_cast<float>(sum[base + i] / static_cast<double>(count));
  return m;
}

}  // namespace spt::gpt2
