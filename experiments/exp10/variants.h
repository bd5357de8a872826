#pragma once
// Turns an exp10.ppl job's symbolic variant (job.params["variant"]) and its
// dependency inputs into the engine's gpt2::Variant. Torch-free.
//
// Variant specs (written by plan.cc):
//   {"type":"clean"}                                           baseline
//   {"type":"heads","op":OP,"heads":[[l,h],…]}                 fixed heads
//   {"type":"cumulative","order":ORDER,"n":N,"op":OP|"best"|"mixed"}
//        the first N heads of a named order (orders.h)
//   {"type":"harmful_joint","op":"zero"|"mean"}                exp10a's ΔPPL<0 heads
//   {"type":"harmful_first","n":N}    harmful heads zeroed + first N of
//        "harmful_rest" mean-ablated; N = −1 means all; an N at or past the
//        real count resolves to skipped (the plan cannot know the count)
//        Without harmful heads both resolve to skipped (the original skips
//        the joint tests and the harmful-first curve).
//   {"type":"top_zero","rank":R}  the R-th head of exp10a's ranking, zeroed
//   {"type":"top_mean"}           the top head of exp10a's ranking, mean-ablated
// OP ∈ zero | mean | relu | l1 | identity. Mean ops read the head means
// from the input named by job.params["means"]. Upstream documents come
// from the inputs "a/reduce", "e/reduce", "j/reduce".
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spt/gpt2.h"
#include "spt/job.h"

namespace spt::exp10 {

struct ResolvedVariant {
  gpt2::Variant variant;
  bool skipped = false;
  std::string skip_reason;
  nlohmann::json describe = nlohmann::json::object();  // small summary for the result
};

// Throws std::runtime_error (bad spec, missing input, out-of-range head).
ResolvedVariant resolve_variant(const JobSpec& job);

// Per-head means of hook_z as carried between jobs: float32 little-endian,
// layout [layer][head][d_head], base64.
struct HeadMeans {
  int n_layer = 0, n_head = 0, d_head = 0;
  std::vector<float> values;
  std::vector<float> of(int layer, int head) const;  // throws std::out_of_range
};
nlohmann::json means_to_json(const HeadMeans& m, int64_t count);
HeadMeans means_from_json(const nlohmann::json& j);  // throws std::runtime_error

std::string base64_encode(const std::string& bytes);
std::string base64_decode(const std::string& text);  // throws on bad input

}  // namespace spt::exp10
