#include "analysis/spline.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace spt::analysis {

namespace {

// Solves a tridiagonal system by Gaussian elimination with partial pivoting
// (LAPACK dgtsv's algorithm, which scipy's solve_banded also pivots like).
// Hand-written rather than pulling in LAPACK: the systems are tiny (one row
// per depth, ≤ 49), the algorithm is the textbook one, and pivoting keeps it
// stable even though the not-a-knot end rows are not diagonally dominant.
// dl: sub-diagonal (n−1), d: diagonal (n), du: super-diagonal (n−1); b is
// overwritten with the solution.
void solve_tridiagonal(std::vector<double> dl, std::vector<double> d, std::vector<double> du,
                       std::vector<double>& b) {
  const size_t n = d.size();
  std::vector<double> du2(n, 0.0);  // second super-diagonal filled by row swaps
  for (size_t i = 0; i + 1 < n; ++i) {
    if (std::fabs(d[i]) >= std::fabs(dl[i])) {
      const double fact = dl[i] / d[i];
      d[i + 1] -= fact * du[i];
      b[i + 1] -= fact * b[i];
    } else {  // swap rows i and i+1
      const double fact = d[i] / dl[i];
      d[i] = dl[i];
      const double temp = d[i + 1];
      d[i + 1] = du[i] - fact * temp;
      if (i + 2 < n) {
        du2[i] = du[i + 1];
        du[i + 1] = -fact * du2[i];
      }
      du[i] = temp;
      const double bt = b[i];
      b[i] = b[i + 1];
      b[i + 1] = bt - fact * b[i + 1];
    }
  }
  b[n - 1] /= d[n - 1];
  b[n - 2] = (b[n - 2] - du[n - 2] * b[n - 1]) / d[n - 2];
  for (size_t k = n - 2; k-- > 0;) b[k] = (b[k] - du[k] * b[k + 1] - du2[k] * b[k + 2]) / d[k];
}

}  // namespace

CubicSpline::CubicSpline(std::vector<double> x, std::vector<double> y) : x_(std::move(x)), y_(std::move(y)) {
  const size_t n = x_.size();
  if (y_.size() != n) throw std::invalid_argument("CubicSpline: x and y have different lengths");
  if (n < 4) throw std::invalid_argument("CubicSpline: a cubic spline needs at least 4 points");
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x_[i]) || !std::isfinite(y_[i]))
      throw std::invalid_argument("CubicSpline: x and y must be finite");
  for (size_t i = 0; i + 1 < n; ++i)
    if (!(x_[i] < x_[i + 1])) throw std::invalid_argument("CubicSpline: x must be strictly increasing");

  // Unknowns: the slopes s_i at the knots. Interior rows are C² continuity;
  // the end rows are not-a-knot (third derivative continuous at x[1] and
  // x[n−2]), the same system scipy's CubicSpline(bc_type="not-a-knot")
  // builds.
  std::vector<double> dx(n - 1), m(n - 1);
  for (size_t i = 0; i + 1 < n; ++i) {
    dx[i] = x_[i + 1] - x_[i];
    m[i] = (y_[i + 1] - y_[i]) / dx[i];
  }
  std::vector<double> dl(n - 1), d(n), du(n - 1), b(n);
  for (size_t i = 1; i + 1 < n; ++i) {
    dl[i - 1] = dx[i];
    d[i] = 2.0 * (dx[i - 1] + dx[i]);
    du[i] = dx[i - 1];
    b[i] = 3.0 * (dx[i] * m[i - 1] + dx[i - 1] * m[i]);
  }
  {
    const double w = x_[2] - x_[0];
    d[0] = dx[1];
    du[0] = w;
    b[0] = ((dx[0] + 2.0 * w) * dx[1] * m[0] + dx[0] * dx[0] * m[1]) / w;
  }
  {
    const double w = x_[n - 1] - x_[n - 3];
    d[n - 1] = dx[n - 3];
    dl[n - 2] = w;
    b[n - 1] = (dx[n - 2] * dx[n - 2] * m[n - 3] + (2.0 * w + dx[n - 2]) * dx[n - 3] * m[n - 2]) / w;
  }
  solve_tridiagonal(std::move(dl), std::move(d), std::move(du), b);
  slope_ = std::move(b);
}

double CubicSpline::operator()(double xv) const {
  if (std::isnan(xv)) return std::numeric_limits<double>::quiet_NaN();
  const size_t n = x_.size();
  // Piece i covers [x_i, x_{i+1}); the end pieces extend outwards.
  size_t i = static_cast<size_t>(std::upper_bound(x_.begin(), x_.end(), xv) - x_.begin());
  i = std::clamp<size_t>(i, 1, n - 1) - 1;
  const double h = x_[i + 1] - x_[i];
  const double m = (y_[i + 1] - y_[i]) / h;
  const double tt = (slope_[i] + slope_[i + 1] - 2.0 * m) / h;
  const double c0 = tt / h, c1 = (m - slope_[i]) / h - tt, c2 = slope_[i], c3 = y_[i];
  const double t = xv - x_[i];
  return ((c0 * t + c1) * t + c2) * t + c3;
}

std::vector<double> CubicSpline::operator()(const std::vector<double>& xv) const {
  std::vector<double> out(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) out[i] = (*this)(xv[i]);
  return out;
}

}  // namespace spt::analysis
