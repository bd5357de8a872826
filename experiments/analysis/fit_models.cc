#include "analysis/fit_models.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <stdexcept>

namespace spt::analysis {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double clip_pos(double v) { return std::max(v, 1e-10); }

double logistic(double z) { return 1.0 / (1.0 + std::exp(-z)); }

}  // namespace

std::vector<FitModel> exp2_models(double mean_y) {
  const double s = mean_y < 0 ? -1.0 : 1.0;
  std::vector<FitModel> m;
  m.push_back({"power_law",
               {"A", "beta"},
               [](double x, const std::vector<double>& p) { return p[0] * std::pow(clip_pos(x), p[1]); },
               {0.5 * s, 1.0},
               {-5, 0.01},
               {5, 5}});
  m.push_back({"tanh",
               {"A", "kappa", "lc"},
               [](double x, const std::vector<double>& p) { return p[0] * std::tanh(p[1] * (x - p[2])); },
               {0.3 * s, 5.0, 0.5},
               {-5, 0.1, 0},
               {5, 50, 1}});
  m.push_back({"sigmoid",
               {"A", "kappa", "lc"},
               [](double x, const std::vector<double>& p) { return p[0] / (1.0 + std::exp(-p[1] * (x - p[2]))); },
               {0.5 * s, 10.0, 0.5},
               {-5, 0.1, 0},
               {5, 50, 1}});
  m.push_back({"two_stage",
               {"A", "beta", "B", "lc", "w"},
               [](double x, const std::vector<double>& p) {
                 return p[0] * std::pow(clip_pos(x), p[1]) + p[2] / (1.0 + std::exp(-p[4] * (x - p[3])));
               },
               {0.3 * s, 1.0, 0.1, 0.9, 20.0},
               {-5, 0.01, -5, 0.5, 1},
               {5, 5, 5, 1, 100}});
  return m;
}

std::vector<FitModel> exp3ef_models() {
  std::vector<FitModel> m;
  m.push_back({"power_law",
               {"alpha"},
               [](double x, const std::vector<double>& p) { return std::pow(clip_pos(x), p[0]); },
               {1.0},
               {0.01},
               {10}});
  m.push_back({"exponential",
               {"tau"},
               [](double x, const std::vector<double>& p) { return 1.0 - std::exp(-x / clip_pos(p[0])); },
               {0.3},
               {0.01},
               {10}});
  m.push_back({"sigmoid",
               {"kappa", "xc"},
               [](double x, const std::vector<double>& p) { return logistic(p[0] * (x - p[1])); },
               {10.0, 0.5},
               {0.1, 0.0},
               {100, 1}});
  m.push_back({"erf",
               {"sigma"},
               [](double x, const std::vector<double>& p) { return std::erf(x / (clip_pos(p[0]) * std::sqrt(2.0))); },
               {0.4},
               {0.01},
               {10}});
  m.push_back({"log",
               {"tau"},
               [](double x, const std::vector<double>& p) {
                 const double tau = clip_pos(p[0]);
                 return std::log(1.0 + x / tau) / std::log(1.0 + 1.0 / tau);
               },
               {0.3},
               {0.001},
               {10}});
  return m;
}

double r_squared(const std::vector<double>& y, const std::vector<double>& y_fit) {
  if (y.size() != y_fit.size()) throw std::invalid_argument("r_squared: sizes differ");
  if (y.empty()) return 0.0;
  double mu = 0;
  for (double v : y) mu += v;
  mu /= static_cast<double>(y.size());
  double ss_res = 0, ss_tot = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ss_res += (y[i] - y_fit[i]) * (y[i] - y_fit[i]);
    ss_tot += (y[i] - mu) * (y[i] - mu);
  }
  return ss_tot > 0 ? 1.0 - ss_res / ss_tot : 0.0;
}

InfoCriteria info_criteria(double rss, int n, int k, InfoCriterion ic) {
  // `!(rss > 0)` also maps a NaN RSS to +∞ (Python would give NaN); curve_fit
  // never returns one, so this only makes the sort total.
  if (!(rss > 0) || n <= 0 || (ic == InfoCriterion::fitting_py && n <= k + 1)) return {kInf, kInf};
  const double dn = n;
  const double ll = dn * std::log(rss / dn);
  return {ll + 2.0 * k, ll + k * std::log(dn)};
}

FitRanking fit_and_rank(const std::vector<FitModel>& models, const std::vector<double>& x,
                        const std::vector<double>& y, int maxfev, InfoCriterion ic) {
  if (x.size() != y.size()) throw std::invalid_argument("fit_and_rank: x and y have different lengths");
  FitRanking out;
  for (const FitModel& m : models) {
    CurveFitResult cf;
    try {
      cf = curve_fit(m.f, x, y, m.p0, m.lb, m.ub, maxfev);
    } catch (const std::exception& e) {
      out.dropped.push_back({m.name, e.what()});
      continue;
    }
    FitResult r;
    r.model = m.name;
    r.param_names = m.param_names;
    r.params = cf.params;
    r.n_params = static_cast<int>(cf.params.size());
    r.y_fit.resize(x.size());
    r.rss = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      r.y_fit[i] = m.f(x[i], r.params);
      r.rss += (y[i] - r.y_fit[i]) * (y[i] - r.y_fit[i]);
    }
    r.r2 = r_squared(y, r.y_fit);
    const InfoCriteria c = info_criteria(r.rss, static_cast<int>(y.size()), r.n_params, ic);
    r.aic = c.aic;
    r.bic = c.bic;
    out.fits.push_back(std::move(r));
  }
  std::stable_sort(out.fits.begin(), out.fits.end(), [](const FitResult& a, const FitResult& b) {
    return !std::isnan(a.bic) && (std::isnan(b.bic) || a.bic < b.bic);
  });
  return out;
}

std::vector<double> linspace(double a, double b, int n) {
  if (n < 0) throw std::invalid_argument("linspace: n must be >= 0");
  std::vector<double> v(static_cast<size_t>(n));
  if (n == 0) return v;
  if (n == 1) {
    v[0] = a;
    return v;
  }
  const double div = n - 1;
  const double delta = b - a;
  const double step = delta / div;
  for (int i = 0; i < n; ++i)
    // numpy: i·step + a, or (i/div)·delta + a when step underflows to 0.
    v[static_cast<size_t>(i)] = step == 0 ? (i / div) * delta + a : i * step + a;
  v[static_cast<size_t>(n) - 1] = b;
  return v;
}

}  // namespace spt::analysis
