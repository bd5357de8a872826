#pragma once
// Vocabulary of the σ family (exp1 v1/v2, exp2, exp3, exp3ef; spec §3–§5),
// header-only so that the torch-free plans (linked into the coordinator),
// the worker's executor and the reduces agree on kinds and job names.
//
// Job names within a plan, per model label <m>:
//   <m>/dir/<word>                 direction unit (DIRECTION_PROMPTS)  sigma.direction
//   <m>/prof/<word>/<condition>    contrastive profile (EXPERIMENT)     sigma.profile
//   <m>/lens/<word>/<strong_A|B>   profile + logit lens (exp2 C)        sigma.profile
//   <m>/grad/<word>/<A|B>/<i>      contrastive profile (GRADIENT)       sigma.profile
//   <m>/v1dir/<word>, <m>/v1prof/<word>/<condition>   exp1 v1 (legacy)
//   exp1/<m>/v1, exp1/<m>/v2, exp2/<m>/response/<word>, exp2/<m>/fit/<word>/<family>,
//   exp2/<m>, exp3/<m>/regress/<word>, exp3/<m>, exp3ef/<m>, exp3ef/<m>/truncated,
//   exp3ef/cross                                                        sigma.reduce
// The same unit has the same name and params in every plan that holds it,
// so the coordinator's content keys reuse it across experiments.
//
// sigma.direction params: model block + {word, prompts_A, prompts_B, forwards}
//   result: {word, cos_AB, e_A, e_B, e_diff (d_model floats), norm_m_A,
//            norm_m_B, targets_A, targets_B, d_model, n_layer, provenance}
// sigma.profile params: model block + {word, prompt, measure ("contrastive"
//   | "v1"), forwards, [lens: true]}; input: its direction unit
//   result: {word, prompt, measure, sigma[L+1], target_position, n_tokens,
//            [lens: {uncorrected|corrected: [{top1, top1_prob, top3, top5,
//            top5_probs}] × (L+1)}], provenance}
// sigma.reduce params: {reduce: <step>, model, label, n_layer, ...}
#include <string>

namespace spt::sigma {

inline constexpr const char* kKindDirection = "sigma.direction";
inline constexpr const char* kKindProfile = "sigma.profile";
inline constexpr const char* kKindReduce = "sigma.reduce";

inline std::string dir_job(const std::string& m, const std::string& word) { return m + "/dir/" + word; }
inline std::string prof_job(const std::string& m, const std::string& word, const std::string& cond) {
  return m + "/prof/" + word + "/" + cond;
}
inline std::string lens_job(const std::string& m, const std::string& word, const std::string& cond) {
  return m + "/lens/" + word + "/" + cond;
}
inline std::string grad_job(const std::string& m, const std::string& word, char side, int i) {
  return m + "/grad/" + word + "/" + side + "/" + std::to_string(i);
}
inline std::string v1dir_job(const std::string& m, const std::string& word) { return m + "/v1dir/" + word; }
inline std::string v1prof_job(const std::string& m, const std::string& word, const std::string& cond) {
  return m + "/v1prof/" + word + "/" + cond;
}
inline std::string exp3_job(const std::string& m) { return "exp3/" + m; }
inline std::string exp3ef_job(const std::string& m) { return "exp3ef/" + m; }

// exp2 Part B's fit families in the spec's table order.
inline const char* const kExp2Families[] = {"power_law", "tanh", "sigmoid", "two_stage"};

}  // namespace spt::sigma
