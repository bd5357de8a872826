#pragma once
// Vocabulary of the π family (exp8, exp9; spec §8, §9), header-only so the
// torch-free plans, the worker's executor and the reduces agree.
//
// Job names within a plan, per model label <m>:
//   <m>/rot/wikitext   θ_b at the first max_samples positions of chunk 0 of
//                      the test split (exp8 C (1) = exp9 B's unit)   pi.rotation
//   <m>/rot/prompts    θ_b at the last token of the 45 EXPERIMENT_PROMPTS,
//                      tokenised without BOS (exp8 C (2))            pi.rotation
//   exp8/<m>, exp8/report, exp9/<m>/a, exp9/<m>/c, exp9/convergence,
//   exp9/b, exp9/report                                               pi.reduce
// exp8 A/B and exp9 A read the σ family's exp3ef/<m> and its exp3 units
// (sigma/common.h names), which the plans pull in through the job graph.
//
// pi.rotation params: model block + either
//   {source: "wikitext", max_samples, dataset, split: "test", max_tokens,
//    chunk_len, bos[, dataset_sha256]}
//     result: {source, n_layer, d_model, n_samples, thetas: [n_samples][L],
//              provenance}
//   or {source: "prompts", prompts: [{word, condition, text}]}
//     result: {source, n_layer, d_model, prompts: [{word, condition,
//              n_tokens, thetas[L]}], provenance}
// pi.reduce params: {reduce: <step>, model, label, n_layer, ...}
#include <string>

namespace spt::pi {

inline constexpr const char* kKindRotation = "pi.rotation";
inline constexpr const char* kKindReduce = "pi.reduce";

inline std::string rot_wikitext_job(const std::string& m) { return m + "/rot/wikitext"; }
inline std::string rot_prompts_job(const std::string& m) { return m + "/rot/prompts"; }
inline std::string exp8_job(const std::string& m) { return "exp8/" + m; }
inline std::string exp9a_job(const std::string& m) { return "exp9/" + m + "/a"; }
inline std::string exp9c_job(const std::string& m) { return "exp9/" + m + "/c"; }

}  // namespace spt::pi
