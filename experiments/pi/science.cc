#include "pi/science.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "analysis/distributions.h"
#include "analysis/lm.h"
#include "analysis/regress.h"
#include "analysis/stats.h"

namespace spt::pi {

namespace {

constexpr int kMaxfev = 20000;

double clip_pos(double v) { return std::max(v, 1e-10); }

double rss_of(const std::vector<double>& y, const std::vector<double>& yf) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += (y[i] - yf[i]) * (y[i] - yf[i]);
  return s;
}

double bic(double rss, int n, int k) {
  return analysis::info_criteria(rss, n, k, analysis::InfoCriterion::rss_only).bic;
}

analysis::FitModel one_param(const std::string& name, analysis::ModelFn f) {
  return {name, {"alpha"}, std::move(f), {1.0}, {0.01}, {10.0}};
}

analysis::FitModel cos_pi_1p() {
  return one_param("cos_pi_1p", [](double x, const std::vector<double>& p) {
    return (1 - std::cos(kPi * std::pow(clip_pos(x), p[0]))) / 2;
  });
}
analysis::FitModel sin_pi_1p() {
  return one_param("sin_pi_1p",
                   [](double x, const std::vector<double>& p) { return std::sin(kPi * std::pow(clip_pos(x), p[0]) / 2); });
}

// Fits `m` alone into `out` (or records why it was dropped).
void fit_into(ModelFits& out, const analysis::FitModel& m, const std::vector<double>& x, const std::vector<double>& g) {
  auto r = analysis::fit_and_rank({m}, x, g, kMaxfev, analysis::InfoCriterion::rss_only);
  for (auto& f : r.fits) out.fits.push_back(std::move(f));
  for (auto& d : r.dropped) out.dropped.push_back(std::move(d));
}

}  // namespace

std::vector<double> rotation_angles(const float* rows, int depths, int d) {
  if (depths < 2 || d < 1) throw std::invalid_argument("rotation_angles: need >= 2 depths and d >= 1");
  std::vector<double> out;
  for (int b = 0; b + 1 < depths; ++b) {
    const float* u = rows + static_cast<size_t>(b) * d;
    const float* v = u + d;
    double uv = 0, uu = 0, vv = 0;
    for (int i = 0; i < d; ++i) {
      uv += double(u[i]) * v[i];
      uu += double(u[i]) * u[i];
      vv += double(v[i]) * v[i];
    }
    const double nu = std::sqrt(uu), nv = std::sqrt(vv);
    out.push_back(nu < 1e-10 || nv < 1e-10 ? 0.0 : std::acos(std::clamp(uv / (nu * nv), -1.0, 1.0)));
  }
  return out;
}

RotationStats rotation_stats(const std::vector<std::vector<double>>& thetas) {
  if (thetas.empty() || thetas.front().empty()) throw std::invalid_argument("rotation_stats: no samples");
  const size_t L = thetas.front().size();
  RotationStats s;
  s.n_samples = static_cast<int>(thetas.size());
  std::vector<std::vector<double>> per_block(L);
  for (const auto& t : thetas) {
    if (t.size() != L) throw std::invalid_argument("rotation_stats: samples differ in block count");
    double cum = 0;
    for (size_t b = 0; b < L; ++b) {
      per_block[b].push_back(t[b]);
      cum += t[b];
    }
    s.cumulative.push_back(cum);
  }
  for (const auto& v : per_block) {
    s.theta_mean.push_back(analysis::mean(v));
    s.theta_std.push_back(analysis::pstdev(v));
  }
  std::vector<double> over;
  for (double c : s.cumulative) over.push_back(c / kPi);
  s.cum_mean = analysis::mean(s.cumulative);
  s.cum_std = analysis::pstdev(s.cumulative);
  s.over_pi_mean = analysis::mean(over);
  s.over_pi_std = analysis::pstdev(over);
  s.over_pi_sq_half = s.cum_mean / (kPi * kPi / 2);
  s.nearest = static_cast<int>(std::nearbyint(s.over_pi_mean));  // numpy round: half to even
  s.deviation = std::abs(s.over_pi_mean - s.nearest);
  int within = 0;
  for (double o : over) within += std::abs(o - s.nearest) < 0.1;
  s.fraction_within = double(within) / s.n_samples;
  s.success = s.fraction_within >= 0.90;
  return s;
}

analysis::FitModel erf_model() {
  return {"erf",
          {"sigma"},
          [](double x, const std::vector<double>& p) { return std::erf(x / (clip_pos(p[0]) * std::sqrt(2.0))); },
          {0.5},
          {0.01},
          {10.0}};
}

ErfTest erf_width_test(const std::vector<double>& x, const std::vector<double>& g) {
  if (x.size() != g.size() || x.empty()) throw std::invalid_argument("erf_width_test: x and g must be non-empty and aligned");
  const auto m = erf_model();
  const auto cf = analysis::curve_fit(m.f, x, g, m.p0, m.lb, m.ub, kMaxfev);
  ErfTest t;
  t.n = static_cast<int>(x.size());
  t.sigma_free = cf.params.at(0);
  t.sigma_diff_pct = std::abs(t.sigma_free - kSigmaPi) / kSigmaPi * 100;
  std::vector<double> yf, y0;
  for (double v : x) {
    yf.push_back(m.f(v, cf.params));
    y0.push_back(m.f(v, {kSigmaPi}));
  }
  t.rss_free = rss_of(g, yf);
  t.rss_fixed = rss_of(g, y0);
  t.r2_free = analysis::r_squared(g, yf);
  t.r2_fixed = analysis::r_squared(g, y0);
  t.lr_statistic = analysis::lr_statistic(t.n, t.rss_free, t.rss_fixed);
  t.p_value = analysis::chi2_sf(t.lr_statistic, 1);
  t.reject = t.p_value < 0.05;
  return t;
}

analysis::FitResult zero_param_fit(const std::string& name, const std::vector<double>& x, const std::vector<double>& y) {
  analysis::FitResult r;
  r.model = name;
  for (double v : x) {
    if (name == "cos_pi_0p")
      r.y_fit.push_back((1 - std::cos(kPi * v)) / 2);
    else if (name == "sin_pi_0p")
      r.y_fit.push_back(std::sin(kPi * v / 2));
    else
      throw std::invalid_argument("zero_param_fit: unknown model " + name);
  }
  r.rss = rss_of(y, r.y_fit);
  r.r2 = analysis::r_squared(y, r.y_fit);
  const auto ic = analysis::info_criteria(r.rss, static_cast<int>(y.size()), 0, analysis::InfoCriterion::rss_only);
  r.aic = ic.aic;
  r.bic = ic.bic;
  return r;
}

ModelFits pi_models(const std::vector<double>& x, const std::vector<double>& g) {
  ModelFits out;
  out.fits.push_back(zero_param_fit("cos_pi_0p", x, g));
  fit_into(out, cos_pi_1p(), x, g);
  out.fits.push_back(zero_param_fit("sin_pi_0p", x, g));
  fit_into(out, sin_pi_1p(), x, g);
  return out;
}

ModelFits exp9c_models(const std::vector<double>& x, const std::vector<double>& g) {
  ModelFits out;
  out.fits.push_back(zero_param_fit("cos_pi_0p", x, g));
  fit_into(out, erf_model(), x, g);
  fit_into(out, sin_pi_1p(), x, g);
  return out;
}

HValues h_with_fallbacks(const std::vector<std::vector<double>>& sigma, size_t n_A) {
  if (sigma.size() < 2 || n_A < 2 || n_A >= sigma.size())
    throw std::invalid_argument("h_with_fallbacks: need >= 2 A and >= 1 B profiles");
  const size_t depths = sigma.front().size();
  for (const auto& s : sigma)
    if (s.size() != depths || depths < 2) throw std::invalid_argument("h_with_fallbacks: profiles differ in depth");
  auto normalised_at = [&](size_t l) {
    double M = 0;
    for (const auto& s : sigma) M = std::max(M, std::abs(s[l]));
    std::vector<double> h;
    for (const auto& s : sigma) h.push_back(M > 0 ? s[l] / M : 0.0);
    return h;
  };
  auto range = [](const std::vector<double>& h) {
    return *std::max_element(h.begin(), h.end()) - *std::min_element(h.begin(), h.end());
  };
  const size_t L = depths - 1;
  HValues r;
  r.h = normalised_at(L);
  r.source = "final_sigma";
  r.range_final = r.range_used = range(r.h);
  if (r.range_final >= 1e-4) return r;
  r.warnings.push_back("h range at the final depth is " + std::to_string(r.range_final) +
                       " (< 1e-4): the final-depth σ collapsed; trying σ at depth floor(0.75 L)");
  const auto h75 = normalised_at(static_cast<size_t>(std::floor(0.75 * L)));
  if (range(h75) > 1e-4) {
    r.h = h75;
    r.source = "sigma_at_0.75L";
    r.range_used = range(h75);
    return r;
  }
  r.warnings.push_back("σ at depth floor(0.75 L) collapsed too (range " + std::to_string(range(h75)) +
                       "): using ordinal h");
  const size_t n_B = sigma.size() - n_A;
  r.h.clear();
  for (size_t i = 0; i < n_A; ++i) r.h.push_back(double(i) / (n_A - 1));
  for (size_t i = 0; i < n_B; ++i) r.h.push_back(n_B > 1 ? -double(i) / (n_B - 1) : 0.0);
  r.source = "ordinal";
  r.range_used = range(r.h);
  if (r.range_used < 1e-6) {
    r.skip = true;
    r.warnings.push_back("ordinal h has no range: word skipped");
  }
  return r;
}

std::vector<double> slopes(const std::vector<double>& h, const std::vector<std::vector<double>>& sigma) {
  if (h.size() != sigma.size() || sigma.empty()) throw std::invalid_argument("slopes: h and profiles differ");
  std::vector<double> f;
  for (size_t l = 0; l < sigma.front().size(); ++l) {
    std::vector<double> y;
    for (const auto& s : sigma) y.push_back(s.at(l));
    f.push_back(analysis::linregress(h, y).slope);
  }
  return f;
}

Convergence convergence(const std::vector<double>& x, const std::vector<double>& y) {
  const auto lr = analysis::linregress(x, y);
  Convergence c;
  c.slope = lr.slope;
  c.intercept = lr.intercept;
  c.r2 = lr.r2;
  const size_t n = x.size();
  if (n < 3) {
    c.se_intercept = c.t = c.lower = c.upper = std::nan("");
    return c;
  }
  double rss = 0, sxx = 0;
  const double xm = analysis::mean(x);
  for (size_t i = 0; i < n; ++i) {
    const double r = y[i] - (lr.intercept + lr.slope * x[i]);
    rss += r * r;
    sxx += (x[i] - xm) * (x[i] - xm);
  }
  const double s = std::sqrt(rss / double(n - 2));
  c.se_intercept = s * std::sqrt(1.0 / n + xm * xm / sxx);
  c.t = analysis::student_t_quantile(0.975, double(n - 2));
  c.lower = c.intercept - c.t * c.se_intercept;
  c.upper = c.intercept + c.t * c.se_intercept;
  c.within = c.lower <= kSigmaPi && kSigmaPi <= c.upper;
  return c;
}

double scaling_eval(const ScalingFit& f, double L) {
  if (f.name == "constant_pi_sq_half") return kPi * kPi / 2;
  if (f.name == "sqrt_L") return f.params.at(0) * std::sqrt(L);
  if (f.name == "log_L") return f.params.at(0) * std::log(L);
  if (f.name == "linear") return f.params.at(0) * L + f.params.at(1);
  throw std::invalid_argument("scaling_eval: unknown model " + f.name);
}

ScalingFits scaling_fits(const std::vector<double>& L, const std::vector<double>& theta) {
  if (L.size() != theta.size() || L.empty()) throw std::invalid_argument("scaling_fits: L and Θ must be non-empty and aligned");
  const int n = static_cast<int>(L.size());
  ScalingFits out;
  struct Spec {
    const char* name;
    const char* formula;
    std::vector<double> p0;
  };
  const Spec specs[] = {{"constant_pi_sq_half", "Θ = π²/2", {}},
                        {"sqrt_L", "Θ = a·√L", {1.0}},
                        {"log_L", "Θ = a·ln L", {1.0}},
                        {"linear", "Θ = a·L + b", {0.1, 1.0}}};
  for (const auto& sp : specs) {
    ScalingFit f{sp.name, sp.formula, static_cast<int>(sp.p0.size()), {}, 0, 0};
    try {
      if (!sp.p0.empty()) {
        ScalingFit probe = f;
        const auto model = [probe](double x, const std::vector<double>& p) mutable {
          probe.params = p;
          return scaling_eval(probe, x);
        };
        f.params = analysis::curve_fit_lm(model, L, theta, sp.p0, 10000).params;
      }
    } catch (const std::exception& e) {
      out.dropped.push_back({sp.name, e.what()});
      continue;
    }
    for (int i = 0; i < n; ++i) f.rss += std::pow(theta[i] - scaling_eval(f, L[i]), 2);
    f.bic = bic(f.rss, n, f.n_params);
    out.fits.push_back(f);
  }
  std::stable_sort(out.fits.begin(), out.fits.end(), [](const ScalingFit& a, const ScalingFit& b) {
    return !std::isnan(a.bic) && (std::isnan(b.bic) || a.bic < b.bic);
  });
  return out;
}

}  // namespace spt::pi
