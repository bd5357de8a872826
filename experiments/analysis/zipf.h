#pragma once
// The Zipf fit of exp10 B (spec §10.1): y = C·rank^(−α) over the nonzero
// |ΔPPL| values sorted descending (ranks 1..n, zeros dropped), by curve_fit
// with p0 = [y_1, 1.0] and bounds C ∈ [0, ∞), α ∈ [0.01, 5] (TRF, default
// evaluation budget 100·2).
#include <optional>
#include <string>
#include <vector>

namespace spt::analysis {

struct ZipfFit {
  double C = 0;
  double alpha = 0;
  double r2 = 0;        // 1 − RSS/SS_tot on the fitted points (0 if SS_tot = 0)
  int n_points = 0;
  int nfev = 0;
};

// `abs_values` need not be sorted or positive; the function takes |·|,
// sorts descending and drops zeros. Returns nullopt (with the reason in
// *why, if given) when 5 or fewer points remain or the solver fails — the
// original then reports no fit.
std::optional<ZipfFit> zipf_fit(const std::vector<double>& abs_values, std::string* why = nullptr);

}  // namespace spt::analysis
