#include "analysis/lm.h"

#include <cmath>
#include <limits>
#include <string>

#include <cminpack.h>

namespace spt::analysis {

namespace {

struct Problem {
  const ModelFn* f;
  const std::vector<double>* x;
  const std::vector<double>* y;
  std::vector<double> p;
};

// lmdif's callback: residuals f(x_i, p) − y_i (scipy's sign; RSS is the same).
int residuals(void* data, int m, int n, const double* p, double* fvec, int /*iflag*/) {
  auto* pr = static_cast<Problem*>(data);
  pr->p.assign(p, p + n);
  for (int i = 0; i < m; ++i) fvec[i] = (*pr->f)((*pr->x)[i], pr->p) - (*pr->y)[i];
  return 0;
}

}  // namespace

LmFitResult curve_fit_lm(const ModelFn& f, const std::vector<double>& x, const std::vector<double>& y,
                         const std::vector<double>& p0, int maxfev) {
  const int m = static_cast<int>(x.size()), n = static_cast<int>(p0.size());
  if (x.size() != y.size()) throw std::invalid_argument("curve_fit_lm: x and y differ in length");
  if (n == 0) throw std::invalid_argument("curve_fit_lm: no parameters");
  if (m < n)
    throw std::invalid_argument("curve_fit_lm: " + std::to_string(m) + " points for " + std::to_string(n) +
                                " parameters (MINPACK needs m >= n)");
  Problem pr{&f, &x, &y, {}};
  std::vector<double> p = p0, fvec(m), fjac(static_cast<size_t>(m) * n), diag(n), qtf(n), wa1(n), wa2(n), wa3(n),
                      wa4(m);
  std::vector<int> ipvt(n);
  residuals(&pr, m, n, p.data(), fvec.data(), 1);
  for (double r : fvec)
    if (!std::isfinite(r)) throw std::invalid_argument("curve_fit_lm: residuals are not finite at p0");
  const double tol = 1.49012e-8;
  int nfev = 0;
  const int info = lmdif(residuals, &pr, m, n, p.data(), fvec.data(), tol, tol, 0.0, maxfev > 0 ? maxfev : 200 * (n + 1),
                         std::numeric_limits<double>::epsilon(), diag.data(), 1, 100.0, 0, &nfev, fjac.data(), m,
                         ipvt.data(), qtf.data(), wa1.data(), wa2.data(), wa3.data(), wa4.data());
  if (info < 1 || info > 4)
    throw FitError("curve_fit_lm: optimal parameters not found (MINPACK info " + std::to_string(info) + ")");
  LmFitResult r{p, 0.0, nfev, info};
  residuals(&pr, m, n, p.data(), fvec.data(), 1);
  for (double v : fvec) r.rss += v * v;
  return r;
}

}  // namespace spt::analysis
