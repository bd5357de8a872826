#pragma once
// Cubic spline interpolation with scipy's
// interp1d(x, y, kind="cubic", fill_value="extrapolate") semantics
// (spec §2.5; exp3ef Part G interpolates gpt2-medium's g_mean onto gpt2's
// depth grid).
//
// That is make_interp_spline(x, y, k=3) with not-a-knot end conditions: the
// C²-cubic interpolant whose third derivative is also continuous at x[1] and
// x[n−2]. Outside [x[0], x[n−1]] it extrapolates with the first / last cubic
// piece. The interpolant is unique, so representation (B-spline in scipy,
// piecewise Hermite here) only changes rounding: values agree with scipy to
// ~1e-14 relative on the tested grids, extrapolated values included.
//
// Unlike interp1d, which sorts its input, x must already be strictly
// increasing: every caller passes a depth grid, and an unsorted one is a bug.
#include <vector>

namespace spt::analysis {

class CubicSpline {
 public:
  // Throws std::invalid_argument if the sizes differ, there are fewer than
  // 4 points (scipy's minimum for a cubic), x is not strictly increasing, or
  // any x or y is not finite.
  CubicSpline(std::vector<double> x, std::vector<double> y);

  // Value at xv (extrapolated outside the knots). NaN in, NaN out.
  double operator()(double xv) const;
  std::vector<double> operator()(const std::vector<double>& xv) const;

  const std::vector<double>& x() const { return x_; }
  const std::vector<double>& y() const { return y_; }

 private:
  std::vector<double> x_, y_;
  std::vector<double> slope_;  // s_i = y'(x_i), the Hermite form's unknowns
};

}  // namespace spt::analysis
