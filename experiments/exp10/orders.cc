#include "exp10/orders.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

namespace spt::exp10 {

using nlohmann::json;

namespace {

const json& field(const json& doc, const char* key, const char* what) {
  if (!doc.is_object() || !doc.contains(key))
    throw std::runtime_error(std::string(what) + " has no field '" + key + "'");
  return doc.at(key);
}

HeadDelta read_row(const json& r, const char* delta_key) {
  HeadDelta d;
  d.layer = r.at("layer").get<int>();
  d.head = r.at("head").get<int>();
  d.delta = r.at(delta_key).get<double>();
  if (r.contains("ppl_ablated")) d.ppl = r.at("ppl_ablated").get<double>();
  if (r.contains("ppl")) d.ppl = r.at("ppl").get<double>();
  if (r.contains("method")) d.method = r.at("method").get<std::string>();
  return d;
}

}  // namespace

std::vector<HeadDelta> read_head_table(const json& doc) {
  std::vector<HeadDelta> out;
  for (const auto& r : field(doc, "results", "head table")) out.push_back(read_row(r, "delta_ppl"));
  return out;
}

std::vector<HeadDelta> ranking_desc(std::vector<HeadDelta> rows) {
  std::stable_sort(rows.begin(), rows.end(), [](const HeadDelta& a, const HeadDelta& b) { return a.delta > b.delta; });
  return rows;
}

std::vector<HeadDelta> by_abs_ascending(std::vector<HeadDelta> rows) {
  std::stable_sort(rows.begin(), rows.end(),
                   [](const HeadDelta& a, const HeadDelta& b) { return std::fabs(a.delta) < std::fabs(b.delta); });
  return rows;
}

std::vector<HeadDelta> from_layer(const std::vector<HeadDelta>& rows, int first_layer) {
  std::vector<HeadDelta> out;
  for (const auto& r : rows)
    if (r.layer >= first_layer) out.push_back(r);
  return out;
}

std::vector<HeadDelta> harmful(const std::vector<HeadDelta>& rows) {
  std::vector<HeadDelta> out;
  for (const auto& r : rows)
    if (r.delta < 0) out.push_back(r);
  std::stable_sort(out.begin(), out.end(), [](const HeadDelta& a, const HeadDelta& b) { return a.delta < b.delta; });
  return out;
}

std::vector<HeadDelta> named_order(const std::string& name, const json& a, const json& e, const json& j) {
  if (name == "zero_all") return by_abs_ascending(read_head_table(a));
  if (name == "zero_l0prot") return by_abs_ascending(from_layer(read_head_table(a), 1));
  if (name == "mean_l0prot") return by_abs_ascending(from_layer(read_head_table(e), 1));
  if (name == "harmful_rest") {
    std::set<HeadId> bad;
    for (const auto& r : harmful(read_head_table(a))) bad.insert(r.id());
    std::vector<HeadDelta> rest;
    for (const auto& r : from_layer(read_head_table(e), 1))
      if (!bad.count(r.id())) rest.push_back(r);
    return by_abs_ascending(rest);
  }
  if (name == "j_best" || name == "j_mixed") {
    const bool best = name == "j_best";
    const std::string method = best ? field(j, "best_method", "exp10j").get<std::string>() : "";
    std::vector<HeadDelta> out;
    for (const auto& r : field(j, best ? "best_ranking" : "mixed_ranking", "exp10j")) {
      HeadDelta d = read_row(r, "delta_ppl");
      if (best) d.method = method;
      out.push_back(d);
    }
    return out;
  }
  throw std::runtime_error("unknown head order '" + name + "'");
}

}  // namespace spt::exp10
