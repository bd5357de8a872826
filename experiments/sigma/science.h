#pragma once
// The σ family's science on plain vectors (spec §2.3, §3, §4 Part A, §5):
// directions from final-depth residuals, the order parameters, per-condition
// summaries, exp2's response function, exp3's per-depth linear response and
// exp3ef's universal g. Torch-free and pure: the worker feeds it residuals
// read by the probe (platform/probe.h); reduces feed it upstream results.
//
// Residuals are TransformerLens's centred stream (N2). Vectors are float32
// as in the original; sums are accumulated in double (more exact than the
// original's float32 reductions, well inside the spec's ±1e-3 tolerance)
// and every returned scalar is a double.
//
// Errors: std::invalid_argument for empty or mismatched inputs, and for
// zero-norm vectors where a direction is needed.
#include <optional>
#include <string>
#include <vector>

namespace spt::sigma {

using Vec = std::vector<float>;

// A direction unit's output (§2.3): means of the A and B residuals at the
// target, their unit vectors and the contrastive unit vector.
struct Direction {
  Vec e_A, e_B, e_diff;
  double cos_AB = 0;
  double norm_m_A = 0, norm_m_B = 0, norm_diff = 0;
};
Direction make_direction(const std::vector<Vec>& phi_A, const std::vector<Vec>& phi_B);

// σ(l) over depths 0..L; `phi` holds L+1 rows of d floats (row-major).
// contrastive (exp1 v2, exp2, exp3):  σ = (φ/|φ|)·e_diff
// v1 (exp1 v1 legacy):                σ = cos(φ, e_A) − cos(φ, e_B)
std::vector<double> sigma_contrastive(const Vec& phi, int depths, const Vec& e_diff);
std::vector<double> sigma_v1(const Vec& phi, int depths, const Vec& e_A, const Vec& e_B);

// Per-condition summary (§3.2 step 3). max_jump_layer = argmax_l |σ(l+1) − σ(l)|,
// first index on ties; max_jump_value is signed.
struct SigmaSummary {
  double sigma_final = 0, sigma_range = 0, max_jump_value = 0;
  int max_jump_layer = 0;
};
SigmaSummary summarize(const std::vector<double>& sigma);

// exp2 Part A (§4). Conditions in file order; strong_A/strong_B must be
// among them. Curves with |h| <= 0.05 are excluded (A23).
struct Response {
  bool valid = false;            // false when |half| < 1e-8
  std::vector<std::string> labels;
  std::vector<double> h;         // per condition (all, in order)
  std::vector<bool> kept;        // |h| > 0.05
  std::vector<std::vector<double>> f;  // f_c = σ_c/h_c for kept curves (empty otherwise)
  std::vector<double> f_mean;    // mean over kept curves (empty if none)
  double collapse_variance = 0;  // mean_l var_c f_c(l); +inf with < 2 curves
};
Response response(const std::vector<std::string>& labels, const std::vector<std::vector<double>>& sigma);

// exp3 Parts B and C (§5.1) for one word: sigma[p] is prompt p's profile
// (A prompts then B prompts, duplicates kept, A22).
struct DepthFit {
  int layer = 0;
  double slope = 0, intercept = 0, r2 = 0, p_value = 0, std_err = 0, max_abs_residual = 0;
  std::vector<double> residuals;  // in sorted-h order
  std::optional<double> hstar;    // §5.1 Part C, threshold 0.05
};
struct Linearity {
  double M = 0;                  // max |σ_p(L)|
  std::vector<double> h_sorted;  // ascending
  std::vector<int> order;        // prompt index of each sorted entry
  std::vector<DepthFit> depths;  // l = 0..L
  std::vector<double> f;         // slope per depth (the response f(l))
  double f_max = 0;              // signed max of f
};
Linearity linear_response(const std::vector<std::vector<double>>& sigma, double threshold = 0.05);

// exp3ef Part E (§5.2) over words with f_max >= 1e-8.
struct UniversalG {
  std::vector<std::string> words;        // kept, in input order
  std::vector<std::string> skipped;      // f_max < 1e-8
  std::vector<double> fmax;
  std::vector<std::vector<double>> g;    // per kept word
  std::vector<double> g_mean, g_std, l_norm;
  std::vector<double> resid_max_abs, resid_rmse;
  std::vector<std::vector<double>> residuals;
};
UniversalG universal_g(const std::vector<std::string>& words, const std::vector<std::vector<double>>& f);

// Depth and value of the peak of g_mean and its drop to the last depth.
struct Peak {
  int depth = 0;
  double x = 0, value = 0, last = 0, drop = 0;
};
Peak peak_of(const std::vector<double>& g);

// exp3ef Part G (§5.2): the finer curve spline-interpolated (not-a-knot
// cubic, extrapolating) onto the coarser grid; Pearson r, RMSE, max |diff|.
struct CurveCompare {
  double correlation = 0, rmse = 0, max_diff = 0;
  std::vector<double> x, coarse, fine_on_coarse;
};
CurveCompare compare_curves(const std::vector<double>& coarse, const std::vector<double>& fine);

// Min–max scaling to [0, 1] (all zeros for a constant curve).
std::vector<double> minmax_scaled(const std::vector<double>& v);

}  // namespace spt::sigma
