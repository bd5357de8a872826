#include "analysis/regress.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "analysis/special.h"

namespace spt::analysis {

namespace {

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

LinRegress linregress(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) throw std::invalid_argument("linregress: x and y have different lengths");
  if (x.size() < 2) throw std::invalid_argument("linregress: needs at least 2 points");
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  if (*lo == *hi)
    throw std::invalid_argument("linregress: cannot calculate a linear regression if all x values are identical");

  const size_t n = x.size();
  const double xmean = mean_of(x), ymean = mean_of(y);
  // np.cov(x, y, bias=1): centred products averaged over n.
  double sxx = 0, sxy = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = x[i] - xmean, dy = y[i] - ymean;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  const double dn = static_cast<double>(n);
  const double ssxm = sxx / dn, ssxym = sxy / dn, ssym = syy / dn;

  LinRegress out;
  if (ssxm == 0.0 || ssym == 0.0) {
    out.r = 0.0;
  } else {
    out.r = std::clamp(ssxym / std::sqrt(ssxm * ssym), -1.0, 1.0);
  }
  out.r2 = out.r * out.r;
  out.slope = ssxym / ssxm;
  out.intercept = ymean - out.slope * xmean;
  if (n == 2) {
    out.p_value = y[0] == y[1] ? 1.0 : 0.0;
    out.std_err = out.intercept_stderr = 0.0;
    return out;
  }
  const double df = dn - 2.0;
  // scipy's TINY keeps t finite at r = ±1; reproduced so exact fits give the
  // same (tiny, nonzero) p-value.
  constexpr double kTiny = 1.0e-20;
  const double r = out.r;
  const double t = r * std::sqrt(df / ((1.0 - r + kTiny) * (1.0 + r + kTiny)));
  out.p_value = student_t_two_sided_p(t, df);
  out.std_err = std::sqrt((1.0 - r * r) * ssym / ssxm / df);
  out.intercept_stderr = out.std_err * std::sqrt(ssxm + xmean * xmean);
  return out;
}

std::vector<std::vector<double>> corrcoef(const std::vector<std::vector<double>>& rows) {
  if (rows.empty()) throw std::invalid_argument("corrcoef: no rows");
  const size_t m = rows.size(), n = rows[0].size();
  if (n == 0) throw std::invalid_argument("corrcoef: empty rows");
  for (const auto& r : rows)
    if (r.size() != n) throw std::invalid_argument("corrcoef: rows differ in length");

  std::vector<std::vector<double>> centred(rows);
  for (auto& r : centred) {
    const double mu = mean_of(r);
    for (double& v : r) v -= mu;
  }
  // np.cov divides by n − 1; the factor cancels in the correlation but is
  // kept so the rounding follows numpy's c / s_i / s_j.
  const double fact = n > 1 ? static_cast<double>(n - 1) : std::numeric_limits<double>::quiet_NaN();
  std::vector<std::vector<double>> c(m, std::vector<double>(m));
  for (size_t i = 0; i < m; ++i)
    for (size_t j = i; j < m; ++j) {
      double s = 0;
      for (size_t k = 0; k < n; ++k) s += centred[i][k] * centred[j][k];
      c[i][j] = c[j][i] = s / fact;
    }
  std::vector<double> sd(m);
  for (size_t i = 0; i < m; ++i) sd[i] = std::sqrt(c[i][i]);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < m; ++j) {
      const double v = c[i][j] / sd[i] / sd[j];  // 0/0 = NaN for a constant row
      c[i][j] = std::isnan(v) ? v : std::clamp(v, -1.0, 1.0);
    }
  return c;
}

}  // namespace spt::analysis
