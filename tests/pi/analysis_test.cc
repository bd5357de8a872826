// The π family's statistics against scipy goldens (tests/data/golden/
// scipy_pi.json, made by scripts/golden/make_pi_golden.py): χ² survival,
// t quantiles, exp8 A's free/fixed erf fits and likelihood ratio, exp8 B's π
// models (TRF), exp9 A's convergence CI, exp9 B's unbounded scaling fits
// and a three-parameter fit (MINPACK LM, as curve_fit without bounds) — plus
// the rotation statistics and the h fallbacks on hand-made inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/distributions.h"
#include "analysis/lm.h"
#include "pi/science.h"

namespace spt::pi {
namespace {

using nlohmann::json;

const json& golden() {
  static const json g = [] {
    std::ifstream f(std::string(SPT_TEST_DATA) + "/golden/scipy_pi.json");
    std::stringstream ss;
    ss << f.rdbuf();
    return json::parse(ss.str());
  }();
  return g;
}

std::vector<double> vec(const json& j) { return j.get<std::vector<double>>(); }

// Relative closeness with an absolute floor.
void near(double got, double want, double rel, const std::string& what, double abs_floor = 1e-300) {
  EXPECT_NEAR(got, want, std::max(rel * std::abs(want), abs_floor)) << what;
}

// Boost's special functions agree with scipy's (cephes) to ~1e-14.
TEST(PiAnalysis, Chi2SurvivalMatchesScipy) {
  for (const auto& c : golden().at("chi2_sf"))
    near(analysis::chi2_sf(c["x"], c["df"]), c["sf"], 1e-12, "chi2.sf(" + c["x"].dump() + ", " + c["df"].dump() + ")");
  EXPECT_EQ(analysis::chi2_sf(INFINITY, 1), 0.0);
  EXPECT_THROW(analysis::chi2_sf(-1, 1), std::domain_error);
  EXPECT_THROW(analysis::chi2_sf(1, 0), std::domain_error);
}

// scipy's t.ppf (cephes stdtrit) is itself accurate to only ~1e-10
// relative: at df = 1 and 2, where closed forms exist, Boost is exact to
// ~1e-15 and scipy is off by 2e-11 and 4e-11. Hence 1e-9 against scipy,
// 1e-14 against the closed forms.
TEST(PiAnalysis, StudentTQuantileMatchesScipy) {
  for (const auto& c : golden().at("t_ppf"))
    near(analysis::student_t_quantile(c["p"], c["df"]), c["q"], 1e-9,
         "t.ppf(" + c["p"].dump() + ", " + c["df"].dump() + ")", 1e-15);
  near(analysis::student_t_quantile(0.975, 1), std::tan(kPi * 0.475), 1e-14, "Cauchy quantile");
  const double a = 4 * 0.975 * 0.025;
  near(analysis::student_t_quantile(0.975, 2), 0.95 * std::sqrt(2 / a), 1e-14, "df 2 closed form");
  EXPECT_THROW(analysis::student_t_quantile(1.0, 3), std::domain_error);
  EXPECT_THROW(analysis::student_t_quantile(0.5, -1), std::domain_error);
}

TEST(PiAnalysis, LikelihoodRatioGuardsAsTheOriginal) {
  EXPECT_NEAR(analysis::lr_statistic(13, 0.0664, 0.0684), 13 * std::log(0.0684 / 0.0664), 1e-15);
  EXPECT_EQ(analysis::lr_statistic(13, 0.0, 0.1), 0.0);    // RSS_free = 0
  EXPECT_EQ(analysis::lr_statistic(13, 0.2, 0.1), 0.0);    // fixed better than free (a failed fit)
  EXPECT_THROW(analysis::lr_statistic(0, 1, 2), std::domain_error);
}

// exp8 A: the bounded 1-parameter fit converges to scipy's optimum to the
// TRF tolerances (xtol 1e-8 → ~1e-7 relative on σ); RSS/R² are flat at the
// optimum (second order), Λ and p follow.
TEST(PiAnalysis, Exp8ErfWidthTestMatchesScipy) {
  for (const auto& c : golden().at("exp8")) {
    const ErfTest t = erf_width_test(vec(c["x"]), vec(c["g"]));
    const json& a = c["a"];
    near(t.sigma_free, a["sigma_free"], 1e-6, "sigma_free");
    near(t.rss_free, a["rss_free"], 1e-8, "rss_free");
    near(t.rss_fixed, a["rss_fixed"], 1e-12, "rss_fixed");
    near(t.r2_free, a["r2_free"], 1e-9, "r2_free");
    near(t.r2_fixed, a["r2_fixed"], 1e-12, "r2_fixed");
    near(t.lr_statistic, a["lr_statistic"], 1e-6, "lr_statistic");
    near(t.p_value, a["p_value"], 1e-6, "p_value");
    EXPECT_EQ(t.reject, a["p_value"].get<double>() < 0.05);
    EXPECT_NEAR(t.sigma_diff_pct, std::abs(t.sigma_free - kSigmaPi) / kSigmaPi * 100, 1e-12);
  }
}

TEST(PiAnalysis, Exp8PiModelsMatchScipy) {
  for (const auto& c : golden().at("exp8")) {
    const ModelFits m = pi_models(vec(c["x"]), vec(c["g"]));
    ASSERT_TRUE(m.dropped.empty());
    ASSERT_EQ(m.fits.size(), 4u);
    std::map<std::string, const analysis::FitResult*> by;
    for (const auto& f : m.fits) by[f.model] = &f;
    EXPECT_EQ(m.fits[0].model, "cos_pi_0p");
    EXPECT_EQ(m.fits[3].model, "sin_pi_1p");
    for (auto it = c["b"].begin(); it != c["b"].end(); ++it) {
      ASSERT_TRUE(by.count(it.key())) << it.key();
      const auto& f = *by.at(it.key());
      const bool fitted = it->contains("alpha");
      near(f.rss, (*it)["rss"], fitted ? 1e-8 : 1e-12, it.key() + " rss");
      near(f.r2, (*it)["r2"], fitted ? 1e-9 : 1e-12, it.key() + " r2");
      near(f.bic, (*it)["bic"], 1e-8, it.key() + " bic");
      EXPECT_EQ(f.n_params, fitted ? 1 : 0) << it.key();
      if (fitted) near(f.params.at(0), (*it)["alpha"], 1e-6, it.key() + " alpha");
    }
  }
}

TEST(PiAnalysis, Exp9ConvergenceCiMatchesScipy) {
  const json& c = golden().at("convergence");
  const Convergence cv = convergence(vec(c["x"]), vec(c["y"]));
  near(cv.slope, c["slope"], 1e-12, "slope");
  near(cv.intercept, c["intercept"], 1e-12, "intercept");
  near(cv.r2, c["r2"], 1e-12, "r2");
  near(cv.se_intercept, c["se_intercept"], 1e-12, "se_intercept");
  near(cv.t, c["t"], 1e-9, "t");  // scipy's t.ppf: ~1e-10 (see above)
  near(cv.lower, c["ci_lower"], 1e-10, "lower");
  near(cv.upper, c["ci_upper"], 1e-10, "upper");
  EXPECT_EQ(cv.within, c["ci_lower"].get<double>() <= kSigmaPi && kSigmaPi <= c["ci_upper"].get<double>());
  const Convergence two = convergence({1.0 / 12, 1.0 / 24}, {0.55, 0.59});  // no dof left
  EXPECT_TRUE(std::isnan(two.lower));
  EXPECT_FALSE(two.within);
}

// exp9 B: LM (MINPACK lmdif) against curve_fit's method="lm". The linear
// and 1-parameter problems have unique optima both solvers reach to ~1e-9.
TEST(PiAnalysis, Exp9ScalingFitsMatchScipyLm) {
  const json& s = golden().at("scaling");
  const ScalingFits sf = scaling_fits(vec(s["L"]), vec(s["theta"]));
  ASSERT_TRUE(sf.dropped.empty());
  ASSERT_EQ(sf.fits.size(), 4u);
  for (size_t i = 1; i < sf.fits.size(); ++i) EXPECT_LE(sf.fits[i - 1].bic, sf.fits[i].bic);  // BIC order
  for (const auto& f : sf.fits) {
    const json& w = s["fits"].at(f.name);
    near(f.rss, w["rss"], 1e-7, f.name + " rss");
    near(f.bic, w["bic"], 1e-8, f.name + " bic", 1e-9);
    const auto p = vec(w.value("params", json::array()));
    ASSERT_EQ(f.params.size(), p.size()) << f.name;
    for (size_t i = 0; i < p.size(); ++i) near(f.params[i], p[i], 1e-7, f.name + " param");
  }
  EXPECT_THROW(scaling_fits({12, 24}, {1.0}), std::invalid_argument);
}

// A nonlinear 3-parameter problem started far from its optimum: MINPACK's
// path is scipy's (same library, same defaults), so parameters agree to
// the convergence tolerance.
TEST(PiAnalysis, LevenbergMarquardtMatchesCurveFitWithoutBounds) {
  const json& h = golden().at("hard_lm");
  const auto f = [](double x, const std::vector<double>& p) { return p[0] * std::exp(-p[1] * x) + p[2]; };
  const auto r = analysis::curve_fit_lm(f, vec(h["x"]), vec(h["y"]), vec(h["p0"]));
  const auto want = vec(h["params"]);
  for (size_t i = 0; i < want.size(); ++i) near(r.params[i], want[i], 1e-7, "param " + std::to_string(i));
  near(r.rss, h["rss"], 1e-7, "rss");
  EXPECT_GE(r.info, 1);
  EXPECT_LE(r.info, 4);
  EXPECT_THROW(analysis::curve_fit_lm(f, {1.0, 2.0}, {1.0, 2.0}, {1, 1, 1}), std::invalid_argument);  // m < n
  EXPECT_THROW(analysis::curve_fit_lm(f, vec(h["x"]), vec(h["y"]), vec(h["p0"]), 3), analysis::FitError);  // budget
}

TEST(PiAnalysis, RotationAnglesAndStatistics) {
  // Three depths in 2-D: rotate by 90°, then by 45°; a zero vector gives 0.
  const float rows[] = {1, 0, 0, 2, 1, 1};
  const auto th = rotation_angles(rows, 3, 2);
  ASSERT_EQ(th.size(), 2u);
  EXPECT_NEAR(th[0], kPi / 2, 1e-7);
  EXPECT_NEAR(th[1], kPi / 4, 1e-7);
  const float zero[] = {0, 0, 1, 0};
  EXPECT_EQ(rotation_angles(zero, 2, 2)[0], 0.0);
  // Θ/π = 1.0, 1.05, 1.2, 0.95 → nearest 1 (mean 1.05); 3 of 4 within 0.1.
  std::vector<std::vector<double>> s = {{kPi / 2, kPi / 2}, {kPi / 2, 0.55 * kPi}, {kPi, 0.2 * kPi}, {0.95 * kPi, 0}};
  const RotationStats st = rotation_stats(s);
  EXPECT_EQ(st.n_samples, 4);
  EXPECT_NEAR(st.over_pi_mean, 1.05, 1e-12);
  EXPECT_EQ(st.nearest, 1);
  EXPECT_NEAR(st.deviation, 0.05, 1e-12);
  EXPECT_NEAR(st.fraction_within, 0.75, 1e-12);
  EXPECT_FALSE(st.success);
  EXPECT_NEAR(st.theta_mean[0], (0.5 + 0.5 + 1 + 0.95) * kPi / 4, 1e-12);
  EXPECT_NEAR(st.over_pi_sq_half, 1.05 * kPi / (kPi * kPi / 2), 1e-12);
  EXPECT_THROW(rotation_stats({{1.0}, {1.0, 2.0}}), std::invalid_argument);
}

TEST(PiAnalysis, HFallbacksAreRecordedAndLoud) {
  // 3 A + 2 B prompts over depths 0..4 (L = 4, floor(0.75 L) = 3).
  std::vector<std::vector<double>> s = {
      {0, 0.1, 0.2, 0.3, 0.5}, {0, 0.2, 0.3, 0.4, 0.9}, {0, 0.3, 0.4, 0.5, 1.0}, {0, -0.1, -0.2, -0.3, -0.4}, {0, 0, 0, 0, 0.1}};
  HValues h = h_with_fallbacks(s, 3);
  EXPECT_EQ(h.source, "final_sigma");
  EXPECT_TRUE(h.warnings.empty());
  EXPECT_NEAR(h.h[1], 0.9, 1e-15);
  EXPECT_NEAR(h.range_final, 1.4, 1e-12);
  // Collapse the final depth: fallback 1 (depth 3).
  for (auto& p : s) p[4] = 0.7;
  h = h_with_fallbacks(s, 3);
  EXPECT_EQ(h.source, "sigma_at_0.75L");
  EXPECT_EQ(h.warnings.size(), 1u);
  EXPECT_NEAR(h.h[2], 1.0, 1e-15);
  EXPECT_NEAR(h.h[3], -0.6, 1e-15);
  // Collapse depth 3 too: ordinal (A i/(n_A−1), B −i/(n_B−1)).
  for (auto& p : s) p[3] = 0.2;
  h = h_with_fallbacks(s, 3);
  EXPECT_EQ(h.source, "ordinal");
  EXPECT_EQ(h.warnings.size(), 2u);
  EXPECT_EQ(h.h, (std::vector<double>{0, 0.5, 1, 0, -1}));
  EXPECT_FALSE(h.skip);
  // Slopes over ordinal h: a profile exactly linear in h gives its slope.
  std::vector<std::vector<double>> lin;
  for (double v : h.h) lin.push_back({2 * v + 1, -v});
  const auto f = slopes(h.h, lin);
  EXPECT_NEAR(f[0], 2, 1e-12);
  EXPECT_NEAR(f[1], -1, 1e-12);
}

}  // namespace
}  // namespace spt::pi
