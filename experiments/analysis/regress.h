#pragma once
// Ordinary least-squares line and correlation matrices with scipy/numpy
// semantics (spec §2.5; exp3 Parts B–D).
//
// Accuracy: the same formulas in the same order as scipy 1.10; fields agree
// with scipy to ~1e-14 relative except where scipy's own result is rounding
// noise (an exact fit: r within an ulp of ±1, std_err ~1e-9 or 0).
#include <vector>

namespace spt::analysis {

// scipy.stats.linregress(x, y).
struct LinRegress {
  double slope = 0, intercept = 0;
  double r = 0;         // Pearson r, clipped to [-1, 1]; 0 when y is constant
  double r2 = 0;        // r²
  double p_value = 1;   // two-sided, H0 slope = 0, Student's t with n − 2 dof
  double std_err = 0;   // standard error of the slope
  double intercept_stderr = 0;
};

// Exact fits follow scipy: t = r·sqrt(df / ((1 − r + 1e-20)(1 + r + 1e-20))),
// so r = ±1 gives a huge but finite t and a tiny, nonzero p-value (e.g.
// 1.5e-40 for six collinear points), with std_err = intercept_stderr = 0.
// Constant y gives r = 0, p = 1. Two points: p = 1 if y[0] == y[1] else 0,
// both standard errors 0.
// Throws std::invalid_argument if the sizes differ, n < 2, or all x are
// identical (scipy raises ValueError).
LinRegress linregress(const std::vector<double>& x, const std::vector<double>& y);

// numpy.corrcoef(rows): Pearson correlation between every pair of rows
// (each row one variable). A constant row has zero variance, so its row and
// column — its diagonal entry included — are NaN, as numpy gives (with a
// RuntimeWarning). Entries are clipped to [-1, 1]; the diagonal is whatever
// c_ii / s_i / s_i rounds to (1 ± an ulp), as in numpy.
// Throws std::invalid_argument if the rows differ in length or are empty.
std::vector<std::vector<double>> corrcoef(const std::vector<std::vector<double>>& rows);

}  // namespace spt::analysis
