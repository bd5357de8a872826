#pragma once
// The named model catalogues of the σ family and the fit-all-and-rank
// procedure of spec §2.4: curve_fit every candidate (TRF with bounds, see
// trf.h), score it (R², AIC, BIC) and sort by BIC.
//
//   exp2 Part B (§4, src/fitting.py): power_law, tanh, sigmoid, two_stage.
//   exp3ef Part F (§5.2):             power_law, exponential, sigmoid, erf, log.
//
// Formulas, p0 and bounds are the spec's tables verbatim, including the
// max(·, 1e-10) clips that keep the models finite at x = 0 / tiny scales.
// Accuracy: on the golden inputs (tests/data/golden/scipy_sigma.json) the
// fitted parameters match scipy 1.10 to ~1e-8 relative for exp3ef and
// ~1e-6 for exp2's flat multi-parameter fits, RSS/R²/AIC/BIC to ~1e-11;
// see tests/analysis/sigma_analysis_test.cc for the tolerances and why.
#include <string>
#include <vector>

#include "analysis/trf.h"

namespace spt::analysis {

struct FitModel {
  std::string name;
  std::vector<std::string> param_names;  // the model function's argument order
  ModelFn f;                             // f(x, params)
  std::vector<double> p0, lb, ub;
};

// exp2's four models. The first entry of every p0 (the amplitude A) is
// negated when mean_y < 0, as the original does.
std::vector<FitModel> exp2_models(double mean_y);

// exp3ef's five models (no sign adjustment).
std::vector<FitModel> exp3ef_models();

struct FitResult {
  std::string model;
  std::vector<std::string> param_names;
  std::vector<double> params;
  std::vector<double> y_fit;  // f(x_i, params)
  double r2 = 0, rss = 0, aic = 0, bic = 0;
  int n_params = 0;
};

// When AIC/BIC are +∞ (always also when RSS <= 0):
enum class InfoCriterion {
  fitting_py,  // src/fitting.py, exp2, exp3ef: also when n <= k + 1
  rss_only,    // exp8 / exp9: only when RSS <= 0
};

struct DroppedFit {
  std::string model;
  std::string reason;  // the exception's what()
};

struct FitRanking {
  std::vector<FitResult> fits;     // ascending BIC, stable (catalogue order on ties); NaN BIC last
  std::vector<DroppedFit> dropped;  // models whose fit threw, catalogue order
};

// Fits every model with curve_fit(f, x, y, p0, (lb, ub), maxfev) — maxfev 0
// means scipy's default 100·n_params. Any exception from a fit (FitError when
// the solver stops without success, std::invalid_argument e.g. for fewer
// points than parameters or non-finite residuals at p0) drops that model and
// is recorded in `dropped`, as the original's `except Exception` does.
//   RSS = Σ (y − f(x, p))², R² = 1 − RSS/SS_tot (0 when SS_tot = 0),
//   AIC = n ln(RSS/n) + 2k, BIC = n ln(RSS/n) + k ln n.
// Throws std::invalid_argument only if x and y differ in length.
FitRanking fit_and_rank(const std::vector<FitModel>& models, const std::vector<double>& x,
                        const std::vector<double>& y, int maxfev, InfoCriterion ic);

// The scoring alone (for callers that fit by other means).
double r_squared(const std::vector<double>& y, const std::vector<double>& y_fit);
struct InfoCriteria {
  double aic, bic;
};
InfoCriteria info_criteria(double rss, int n, int k, InfoCriterion ic);

// numpy.linspace(a, b, n) with endpoint=True: a + i·step with
// step = (b − a)/(n − 1), the last value exactly b; n = 1 gives {a}, n = 0
// gives {}. Throws std::invalid_argument for n < 0.
std::vector<double> linspace(double a, double b, int n);

}  // namespace spt::analysis
