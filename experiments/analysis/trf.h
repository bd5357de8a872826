#pragma once
// Bounded nonlinear least squares: a port of scipy.optimize.least_squares
// with method="trf" (Trust Region Reflective, dense "exact" trust-region
// solver, linear loss) and of the curve_fit wrapper that calls it whenever
// bounds are given (spec §2.4).
//
// What is reproduced, step for step: the strictly-feasible start, the
// 2-point finite-difference Jacobian with scipy's step rule and bound-aware
// one-sided steps, Coleman–Li scaling, the SVD-based trust-region subproblem
// with its Levenberg–Marquardt parameter iteration, the reflective / clipped /
// gradient step selection, radius updates, ftol/xtol/gtol tests, and the
// max_nfev budget (100·n by default; Jacobian evaluations do not count).
// With every bound infinite this is algebraically scipy's trf_no_bounds.
// Differences are only floating-point summation order (LAPACK SVD vs the
// one-sided Jacobi SVD used here), so iterates agree to ~1e-12 relative and
// converged parameters to the tolerances.
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace spt::analysis {

struct LsqOptions {
  double ftol = 1e-8, xtol = 1e-8, gtol = 1e-8;
  int max_nfev = 0;               // 0 = 100 · n_params
  bool x_scale_jac = false;       // scipy x_scale="jac" (default x_scale = 1)
  std::vector<double> x_scale;    // empty = all ones; ignored if x_scale_jac
};

struct LsqResult {
  std::vector<double> x;
  std::vector<double> fun;        // residuals at x
  double cost = 0;                // 0.5 · Σ fun²
  double optimality = 0;          // ‖g·v‖∞ (scaled gradient)
  int nfev = 0, njev = 0;
  // scipy's codes: 0 = max_nfev reached, 1 = gtol, 2 = ftol, 3 = xtol,
  // 4 = ftol and xtol.
  int status = 0;
  std::vector<int> active_mask;   // −1 at lower bound, +1 at upper, else 0
  bool success() const { return status > 0; }
  std::string message() const;
};

using ResidualFn = std::function<std::vector<double>(const std::vector<double>& x)>;

// Minimises 0.5·Σ fun(x)² subject to lb <= x <= ub. Throws
// std::invalid_argument for inconsistent sizes, lb >= ub, or residuals that
// are not finite at the start (as scipy does).
LsqResult least_squares_trf(const ResidualFn& fun, std::vector<double> x0, const std::vector<double>& lb,
                            const std::vector<double>& ub, const LsqOptions& opt = {});

// scipy.optimize.curve_fit(f, x, y, p0, bounds=(lb, ub)) — unweighted.
// Throws FitError when the solver stops without success (scipy raises
// RuntimeError "Optimal parameters not found"), so a caller can drop the
// model as the original does.
class FitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
using ModelFn = std::function<double(double x, const std::vector<double>& p)>;
struct CurveFitResult {
  std::vector<double> params;
  double rss = 0;
  LsqResult lsq;
};
CurveFitResult curve_fit(const ModelFn& f, const std::vector<double>& x, const std::vector<double>& y,
                         const std::vector<double>& p0, const std::vector<double>& lb,
                         const std::vector<double>& ub, int maxfev = 0);

}  // namespace spt::analysis
