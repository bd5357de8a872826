#pragma once
// Names shared by the exp7 plan, executors and reduces (torch-free).
#include <string>

namespace spt::exp7 {

inline constexpr const char* kKindCapture = "exp7.capture";  // model: one forward, arrays as an artifact
inline constexpr const char* kKindPpl = "exp7.ppl";          // model: Σ NLL of one variant over a chunk range
inline constexpr const char* kKindReduce = "exp7.reduce";    // CPU: PCA units, the document, report

// Capture contents (param "points").
inline constexpr const char* kPointsDphi = "dphi";         // Δφ_b = resid_post_b − resid_pre_b  (7A)
inline constexpr const char* kPointsAttnMlp = "attn_mlp";  // hook_attn_out_b, hook_mlp_out_b     (7E)

// Variance thresholds of §2.6, as the original's JSON keys.
inline constexpr double kThresholds[] = {0.5, 0.8, 0.9, 0.95};
inline const char* threshold_key(double t) { return t == 0.5 ? "0.5" : t == 0.8 ? "0.8" : t == 0.9 ? "0.9" : "0.95"; }

}  // namespace spt::exp7
