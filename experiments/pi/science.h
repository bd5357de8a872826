#pragma once
// The π family's science on plain vectors (spec §8, §9), torch-free and
// pure: the worker feeds rotation_angles() residuals it read; the reduces
// feed the rest upstream results (exp3ef documents, exp3 profiles, rotation
// units). Fits follow spec §2.4: bounded ones by the TRF port
// (analysis/trf.h), exp9 B's unbounded ones by MINPACK's LM (analysis/lm.h);
// BIC = n·ln(RSS/n) + k·ln n, +∞ only when RSS <= 0 (exp8/exp9 rule).
//
// Errors: std::invalid_argument for empty or mismatched inputs.
#include <optional>
#include <string>
#include <vector>

#include "analysis/fit_models.h"

namespace spt::pi {

inline constexpr double kPi = 3.14159265358979323846;
// σ_π = 1/√π, exp8 A's null hypothesis for the erf width.
inline constexpr double kSigmaPi = 0.56418958354775628695;

// θ_b = arccos(clip(v_b·v_{b+1}/(|v_b||v_{b+1}|), −1, 1)), b = 0..L−1, over
// `depths` = L+1 rows of d floats (row-major): v_0 = resid_pre of block 0,
// v_{b+1} = resid_post of block b (centred stream). θ_b = 0 when a norm is
// < 1e-10. Dot products and norms are accumulated in double from the
// float32 values (the original: float32 numpy; differences ~1e-6 rad).
std::vector<double> rotation_angles(const float* rows, int depths, int d);

// exp8 C (1) / exp9 B statistics over samples (thetas[s] = θ_0..θ_{L−1}).
struct RotationStats {
  int n_samples = 0;
  std::vector<double> theta_mean, theta_std;  // per block, population std
  std::vector<double> cumulative;             // Θ per sample
  double cum_mean = 0, cum_std = 0, over_pi_mean = 0, over_pi_std = 0;
  double over_pi_sq_half = 0;  // mean Θ / (π²/2) (exp9 B)
  int nearest = 0;             // round(mean Θ/π)
  double deviation = 0;        // |mean Θ/π − nearest|
  double fraction_within = 0;  // share of samples with |Θ/π − nearest| < 0.1
  bool success = false;        // fraction_within >= 0.90
};
RotationStats rotation_stats(const std::vector<std::vector<double>>& thetas);

// exp8 A (spec §8): erf(x/(σ√2)) fitted free (p0 0.5, bounds [0.01, 10],
// maxfev 20000) and fixed at σ_π; likelihood-ratio statistic and χ²(1) p.
struct ErfTest {
  int n = 0;
  double sigma_free = 0, sigma_diff_pct = 0, rss_free = 0, rss_fixed = 0, r2_free = 0, r2_fixed = 0;
  double lr_statistic = 0, p_value = 1;
  bool reject = false;  // p < 0.05
};
ErfTest erf_width_test(const std::vector<double>& x, const std::vector<double>& g);

// The erf model with exp8/exp9's p0 0.5 and bounds [0.01, 10].
analysis::FitModel erf_model();

// exp8 B's four π models (spec §8): the 0-parameter ones are evaluated, the
// 1-parameter ones fitted (p0 1.0, bounds [0.01, 10], maxfev 20000). In the
// spec's order: cos_pi_0p, cos_pi_1p, sin_pi_0p, sin_pi_1p; a 1-parameter
// fit that throws is listed in `dropped`.
struct ModelFits {
  std::vector<analysis::FitResult> fits;  // catalogue order (not sorted)
  std::vector<analysis::DroppedFit> dropped;
};
ModelFits pi_models(const std::vector<double>& x, const std::vector<double>& g);
// One 0-parameter model scored like a fit (R², RSS, BIC with k = 0).
analysis::FitResult zero_param_fit(const std::string& name, const std::vector<double>& x,
                                   const std::vector<double>& y);
// exp9 C: cos_pi_0p, erf (p0 0.5, bounds [0.01, 10]) and sin_pi_1p.
ModelFits exp9c_models(const std::vector<double>& x, const std::vector<double>& g);

// exp9 A's h (spec §9): h_p = σ_p(L)/max|σ(L)|; when its range is < 1e-4,
// fallback 1: σ at depth ⌊0.75·L⌋ normalised by its max |value| (if that
// range is > 1e-4); fallback 2: ordinal h (A prompt i → i/(n_A − 1), B
// prompt i → −i/(n_B − 1)); `skip` when the range is still < 1e-6.
// sigma[p] = prompt p's σ(0..L), the n_A A prompts first.
struct HValues {
  std::vector<double> h;
  std::string source;  // "final_sigma" | "sigma_at_0.75L" | "ordinal"
  double range_final = 0, range_used = 0;
  bool skip = false;
  std::vector<std::string> warnings;
};
HValues h_with_fallbacks(const std::vector<std::vector<double>>& sigma, size_t n_A);
// f(l) = linregress(h, σ(l)).slope per depth (order of prompts irrelevant).
std::vector<double> slopes(const std::vector<double>& h, const std::vector<std::vector<double>>& sigma);

// exp9 A convergence (spec §9): linregress of σ_free on x = 1/L, the
// intercept's standard error and 95 % CI from t_{0.975, n−2}. With n < 3 the
// CI is undefined (se, lower, upper NaN; within false).
struct Convergence {
  double slope = 0, intercept = 0, r2 = 0, se_intercept = 0, t = 0, lower = 0, upper = 0;
  bool within = false;  // σ_π inside [lower, upper]
};
Convergence convergence(const std::vector<double>& x, const std::vector<double>& y);

// exp9 B scaling of Θ with depth L (spec §9): constant π²/2 (k 0), a·√L,
// a·ln L (k 1, p0 1.0), a·L + b (k 2, p0 (0.1, 1.0)); unbounded LM, maxfev
// 10000. Sorted by BIC (stable); fits that throw are in `dropped`.
struct ScalingFit {
  std::string name, formula;
  int n_params = 0;
  std::vector<double> params;  // a[, b]
  double rss = 0, bic = 0;
};
struct ScalingFits {
  std::vector<ScalingFit> fits;
  std::vector<analysis::DroppedFit> dropped;
};
ScalingFits scaling_fits(const std::vector<double>& L, const std::vector<double>& theta);
double scaling_eval(const ScalingFit& f, double L);

}  // namespace spt::pi
