#pragma once
// Shared vocabulary of the exp10 family, header-only so that the torch-free
// plan (linked into the coordinator) and the worker-side executors agree on
// names, step lists and head sets without a link dependency.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "platform/model_names.h"

namespace spt::exp10 {

// Job kinds.
inline constexpr const char* kKindPpl = "exp10.ppl";        // PPL of one variant
inline constexpr const char* kKindMeans = "exp10.means";    // per-head mean of hook_z
inline constexpr const char* kKindReduce = "exp10.reduce";  // CPU aggregation + report
inline constexpr const char* kKindGen = "exp10.gen";        // Phase 3 generation (P1–P3)

// Phase 3 (exp10d P, spec §10.4) conditions: baseline and the first 30 / 70
// heads of exp10j's best_ranking linearised with relu (A24: relu hard-coded).
struct PCondition {
  const char* name;
  int n_linear;  // nominal; the plan clips it to the layer-1+ heads available
};
inline const std::vector<PCondition>& p_conditions() {
  static const std::vector<PCondition> c = {{"baseline", 0}, {"relu_30", 30}, {"relu_70", 70}};
  return c;
}

// The recorded sampling seed of P3 candidate `candidate` of `prompt` under
// `condition` (A10: the original set none): FNV-1a 64 of
// "exp10p3|<base>|<condition>|<prompt>|<candidate>", then splitmix64's
// finaliser, masked to 53 bits so it survives JSON doubles.
inline uint64_t p3_seed(uint64_t base, const std::string& condition, int prompt, int candidate) {
  const std::string s = "exp10p3|" + std::to_string(base) + "|" + condition + "|" + std::to_string(prompt) + "|" +
                        std::to_string(candidate);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h & ((uint64_t{1} << 53) - 1);
}

struct HeadId {
  int layer = 0;
  int head = 0;
  bool operator==(const HeadId& o) const { return layer == o.layer && head == o.head; }
  bool operator<(const HeadId& o) const { return layer != o.layer ? layer < o.layer : head < o.head; }
};

inline std::string head_name(int layer, int head) {
  return "L" + std::to_string(layer) + "H" + std::to_string(head);
}
inline std::string head_name(const HeadId& h) { return head_name(h.layer, h.head); }

// Every head in layer-major order (L0H0, L0H1, …), from `first_layer` on.
inline std::vector<HeadId> all_heads(int n_layer, int n_head, int first_layer = 0) {
  std::vector<HeadId> out;
  for (int l = first_layer; l < n_layer; ++l)
    for (int h = 0; h < n_head; ++h) out.push_back({l, h});
  return out;
}

// The linearisation methods of exp10c, in the original's order (ties in the
// per-head best method keep the earlier one).
inline const std::vector<std::string>& linear_methods() {
  static const std::vector<std::string> m = {"relu", "l1", "identity"};
  return m;
}

// Cumulative step lists (spec §10). The published lists assume gpt2's 144
// (or 132) heads; here they are clipped to the heads available and always
// end with the total, so any model size gets a meaningful curve.
enum class Steps {
  c,      // 10C: 0,5,…,40,43,50,60,…  + total
  fine,   // 10F/10G/10H/10K: 0,5,…,40,50,60,… + total
  v4,     // 10d V4: 0,10,…,100 + total
};

inline std::vector<int> step_list(Steps kind, int total) {
  std::vector<int> base;
  if (kind == Steps::v4) {
    for (int s = 0; s <= 100 && s < total; s += 10) base.push_back(s);
  } else {
    for (int s = 0; s <= 40 && s < total; s += 5) base.push_back(s);
    if (kind == Steps::c && 43 < total) base.push_back(43);
    for (int s = 50; s < total; s += 10) base.push_back(s);
  }
  if (base.empty() || base.back() != total) base.push_back(total);
  if (total <= 0) base = {0};
  return base;
}

// Model names live in the platform; the family keeps its spelling.
using spt::platform::KnownModel;
using spt::platform::known_model;
using spt::platform::model_label;

}  // namespace spt::exp10
