#pragma once
// Unbounded nonlinear least squares as scipy.optimize.curve_fit does it
// without bounds (method="lm"): MINPACK's lmdif (Debian's libcminpack), a
// forward-difference Jacobian, with leastsq's defaults — ftol = xtol =
// 1.49012e-8, gtol = 0, epsfcn = machine epsilon, factor 100, diag by the
// column norms (mode 1), maxfev 0 → 200·(n_params + 1). Used for exp9 Part
// B's scaling fits (spec §9); bounded fits use the TRF port (trf.h).
//
// Thread-safe (no shared state). Errors: std::invalid_argument for sizes
// (x/y differ, no params, fewer points than params, non-finite residuals at
// p0); FitError (trf.h) when MINPACK stops without success (info not in
// 1..4), as scipy raises "Optimal parameters not found".
#include <vector>

#include "analysis/trf.h"

namespace spt::analysis {

struct LmFitResult {
  std::vector<double> params;
  double rss = 0;
  int nfev = 0;
  int info = 0;  // MINPACK's: 1 ftol, 2 xtol, 3 both, 4 orthogonality (gtol)
};

LmFitResult curve_fit_lm(const ModelFn& f, const std::vector<double>& x, const std::vector<double>& y,
                         const std::vector<double>& p0, int maxfev = 0);

}  // namespace spt::analysis
