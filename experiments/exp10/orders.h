#pragma once
// Head orders of the exp10 family, derived from the stored (rounded) result
// tables exactly as the original scripts derive them (spec §2.7, A12):
// Python's stable sort on rounded values, ties in layer-major order.
// Torch-free.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "exp10/common.h"

namespace spt::exp10 {

// One row of an exp10a / exp10e "results" table.
struct HeadDelta {
  int layer = 0;
  int head = 0;
  double ppl = 0;    // ppl_ablated (4 dp)
  double delta = 0;  // delta_ppl (6 dp)
  std::string method;  // exp10c rows only
  HeadId id() const { return {layer, head}; }
};

// doc["results"] of exp10a_*.json / exp10e_*.json, in stored (layer-major)
// order. Throws std::runtime_error naming the missing field.
std::vector<HeadDelta> read_head_table(const nlohmann::json& doc);

// Rows sorted by delta descending (most important first), stable.
std::vector<HeadDelta> ranking_desc(std::vector<HeadDelta> rows);
// Rows sorted by |delta| ascending (least important first), stable.
std::vector<HeadDelta> by_abs_ascending(std::vector<HeadDelta> rows);
// Rows of layers >= first_layer.
std::vector<HeadDelta> from_layer(const std::vector<HeadDelta>& rows, int first_layer);
// Rows with delta < 0, sorted by delta ascending (most harmful first).
std::vector<HeadDelta> harmful(const std::vector<HeadDelta>& rows);

// The orders cumulative steps walk, by name:
//   zero_all     exp10a, all heads, |Δ_zero| ascending          (10C)
//   zero_l0prot  exp10a, layers 1+, |Δ_zero| ascending          (10G b)
//   mean_l0prot  exp10e, layers 1+, |Δ_mean| ascending          (10F)
//   harmful_rest exp10e layers 1+ minus exp10a's harmful set,
//                |Δ_mean| ascending                               (10H)
//   j_best       exp10j best_ranking (method = best_method)      (10K, V4)
//   j_mixed      exp10j mixed_ranking (per-head method)          (10K)
// `a`, `e`, `j` are the exp10a, exp10e and exp10j documents (only the
// ones the order needs are read; pass null for the others).
std::vector<HeadDelta> named_order(const std::string& name, const nlohmann::json& a, const nlohmann::json& e,
                                   const nlohmann::json& j);

}  // namespace spt::exp10
