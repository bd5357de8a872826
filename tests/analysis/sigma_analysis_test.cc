// The σ-family analysis (fit catalogues + BIC ranking, linregress, corrcoef,
// cubic spline, linspace) against scipy/numpy goldens from an independent
// implementation: tests/data/golden/scipy_sigma.json, written by
// scripts/golden/make_sigma_golden.py (scipy 1.10.1, numpy 1.24.2).
//
// Tolerances and why (measured agreement on these inputs in brackets):
//  * exp3ef fits (1–2 parameters, well conditioned): parameters 1e-6
//    relative [≤ 7e-9]. scipy stops at xtol/ftol = 1e-8, so two faithful
//    TRF runs whose iterates differ by rounding can stop one iteration
//    apart; either stop is within ~1e-8 of the optimum, and 1e-6 leaves
//    room for a conditioning factor of ~100. RSS 1e-6 relative, R², AIC,
//    BIC 1e-6 absolute [≤ 4e-12]; y_fit 1e-7 absolute.
//  * exp2 fits (3–5 parameters, multimodal, optima on bounds): RSS 1e-6
//    relative [≤ 2e-12] — the objective both implementations minimise — and
//    parameters 1e-4 × max(1, |p|) [≤ 3e-6 absolute]: along the flat
//    directions of a two_stage fit the parameters are fixed only to
//    ~sqrt(ftol) of their scale, and a different compiler/libm may walk
//    them differently. A different local optimum misses both by far. R²
//    1e-6; AIC/BIC 1e-4 absolute, what the RSS tolerance allows (n·ΔRSS/RSS
//    with n = 24) [≤ 4e-11].
//  * BIC order: identical names in identical order (golden BIC gaps are
//    ≥ 0.5, far above the agreement); p0 and bounds equal to what scipy got.
//  * linregress: 1e-10 absolute on every field [≤ 1e-16], p-values 1e-9
//    relative [≤ 2e-13] (same t, same incomplete beta up to its ~1e-14
//    accuracy) — except the y = c·h exact fit, where r is within an ulp of
//    1 and the standard errors and p are rounding noise (checked as tiny).
//  * corrcoef, pearson/spearman r: 1e-12 absolute [≤ 3e-16], their p 1e-9
//    relative; spline: 1e-12 absolute [≤ 4e-13, on values up to ~160 far
//    out in extrapolation; the interpolant is unique, only the
//    representation's rounding differs]; linspace:
//    bit-exact (numpy's formula).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "analysis/fit_models.h"
#include "analysis/regress.h"
#include "analysis/spline.h"
#include "analysis/stats.h"

namespace spt::analysis {
namespace {

using json = nlohmann::json;
using Vec = std::vector<double>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const json& golden() {
  static const json g = [] {
    const std::string path = std::string(SPT_TEST_DATA) + "/golden/scipy_sigma.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return g;
}

// The generator writes NaN as null and ±inf as "inf"/"-inf".
double num(const json& j) {
  if (j.is_null()) return kNaN;
  if (j.is_string()) return j.get<std::string>() == "inf" ? kInf : -kInf;
  return j.get<double>();
}
Vec vec(const json& j) {
  Vec v;
  for (const auto& e : j) v.push_back(num(e));
  return v;
}

void expect_rel(double got, double want, double rel, const std::string& what) {
  if (std::isinf(want)) {
    EXPECT_EQ(got, want) << what;
    return;
  }
  EXPECT_NEAR(got, want, rel * std::fabs(want)) << what;
}

std::vector<std::string> names(const FitRanking& r) {
  std::vector<std::string> n;
  for (const auto& f : r.fits) n.push_back(f.model);
  return n;
}

// The catalogue entry's p0 and bounds are the ones scipy was given.
void expect_same_setup(const std::vector<FitModel>& catalogue, const json& want, const std::string& w) {
  const std::string name = want.at("model");
  const auto it = std::find_if(catalogue.begin(), catalogue.end(), [&](const FitModel& m) { return m.name == name; });
  ASSERT_NE(it, catalogue.end()) << w;
  EXPECT_EQ(it->param_names, want.at("param_names").get<std::vector<std::string>>()) << w;
  EXPECT_EQ(it->p0, vec(want.at("p0"))) << w;
  EXPECT_EQ(it->lb, vec(want.at("lb"))) << w;
  EXPECT_EQ(it->ub, vec(want.at("ub"))) << w;
}

// ---- exp3ef Part F: five well-conditioned models ---------------------------

TEST(SigmaGolden, Exp3efFitsMatchScipy) {
  const json& cases = golden().at("exp3ef");
  ASSERT_GE(cases.size(), 3u);
  for (const json& c : cases) {
    const std::string cn = c.at("name");
    const Vec x = vec(c.at("x")), y = vec(c.at("y"));
    const FitRanking r = fit_and_rank(exp3ef_models(), x, y, golden().at("maxfev"), InfoCriterion::fitting_py);
    ASSERT_EQ(r.dropped.size(), c.at("dropped").size()) << cn;
    std::vector<std::string> want_order;
    for (const json& f : c.at("fits")) want_order.push_back(f.at("model"));
    ASSERT_EQ(names(r), want_order) << cn << ": BIC order differs";
    for (size_t i = 0; i < r.fits.size(); ++i) {
      const FitResult& got = r.fits[i];
      const json& want = c.at("fits")[i];
      const std::string w = cn + "/" + got.model;
      expect_same_setup(exp3ef_models(), want, w);
      EXPECT_EQ(got.param_names, want.at("param_names").get<std::vector<std::string>>()) << w;
      EXPECT_EQ(got.n_params, want.at("n_params").get<int>()) << w;
      const Vec wp = vec(want.at("params"));
      ASSERT_EQ(got.params.size(), wp.size()) << w;
      for (size_t k = 0; k < wp.size(); ++k) expect_rel(got.params[k], wp[k], 1e-6, w + " param " + std::to_string(k));
      expect_rel(got.rss, num(want.at("rss")), 1e-6, w + " rss");
      EXPECT_NEAR(got.r2, num(want.at("r2")), 1e-6) << w;
      EXPECT_NEAR(got.aic, num(want.at("aic")), 1e-6) << w;
      EXPECT_NEAR(got.bic, num(want.at("bic")), 1e-6) << w;
      const Vec wy = vec(want.at("y_fit"));
      ASSERT_EQ(got.y_fit.size(), wy.size()) << w;
      for (size_t k = 0; k < wy.size(); ++k) EXPECT_NEAR(got.y_fit[k], wy[k], 1e-7) << w << " y_fit " << k;
    }
  }
}

// ---- exp2 Part B: multimodal models, optima on bounds ----------------------

TEST(SigmaGolden, Exp2FitsMatchScipy) {
  const json& cases = golden().at("exp2");
  ASSERT_GE(cases.size(), 4u);
  bool saw_negative = false;
  for (const json& c : cases) {
    const std::string cn = c.at("name");
    const Vec x = vec(c.at("x")), y = vec(c.at("y"));
    const double my = mean(y);
    EXPECT_NEAR(my, num(c.at("mean_y")), 1e-15) << cn;
    saw_negative |= my < 0;
    const FitRanking r = fit_and_rank(exp2_models(my), x, y, golden().at("maxfev"), InfoCriterion::fitting_py);
    ASSERT_EQ(r.dropped.size(), c.at("dropped").size()) << cn;
    std::vector<std::string> want_order;
    for (const json& f : c.at("fits")) want_order.push_back(f.at("model"));
    ASSERT_EQ(names(r), want_order) << cn << ": BIC order differs";
    for (size_t i = 0; i < r.fits.size(); ++i) {
      const FitResult& got = r.fits[i];
      const json& want = c.at("fits")[i];
      const std::string w = cn + "/" + got.model;
      expect_same_setup(exp2_models(my), want, w);
      expect_rel(got.rss, num(want.at("rss")), 1e-6, w + " rss");
      const Vec wp = vec(want.at("params"));
      ASSERT_EQ(got.params.size(), wp.size()) << w;
      for (size_t k = 0; k < wp.size(); ++k)
        EXPECT_NEAR(got.params[k], wp[k], 1e-4 * std::max(1.0, std::fabs(wp[k]))) << w << " param " << k;
      EXPECT_NEAR(got.r2, num(want.at("r2")), 1e-6) << w;
      EXPECT_NEAR(got.aic, num(want.at("aic")), 1e-4) << w;  // n·ΔRSS/RSS with n = 24, ΔRSS/RSS ≤ 1e-6
      EXPECT_NEAR(got.bic, num(want.at("bic")), 1e-4) << w;
    }
  }
  EXPECT_TRUE(saw_negative) << "golden lacks a mean(y) < 0 case";
}

TEST(SigmaModels, Exp2FlipsAmplitudeGuessForNegativeMean) {
  const auto pos = exp2_models(0.1), neg = exp2_models(-0.1);
  ASSERT_EQ(pos.size(), 4u);
  ASSERT_EQ(neg.size(), 4u);
  for (size_t i = 0; i < pos.size(); ++i) {
    EXPECT_GT(pos[i].p0[0], 0) << pos[i].name;
    EXPECT_EQ(neg[i].p0[0], -pos[i].p0[0]) << neg[i].name;
    for (size_t k = 1; k < pos[i].p0.size(); ++k) EXPECT_EQ(neg[i].p0[k], pos[i].p0[k]) << neg[i].name;
  }
  EXPECT_EQ(exp2_models(0.0)[0].p0[0], 0.5);  // only strictly negative flips
}

TEST(SigmaModels, CataloguesAreTheSpecTables) {
  const auto e2 = exp2_models(1.0);
  std::vector<std::string> n2;
  for (const auto& m : e2) n2.push_back(m.name);
  EXPECT_EQ(n2, (std::vector<std::string>{"power_law", "tanh", "sigmoid", "two_stage"}));
  EXPECT_EQ(e2[3].lb, (Vec{-5, 0.01, -5, 0.5, 1}));
  EXPECT_EQ(e2[3].ub, (Vec{5, 5, 5, 1, 100}));
  const auto e3 = exp3ef_models();
  std::vector<std::string> n3;
  for (const auto& m : e3) n3.push_back(m.name);
  EXPECT_EQ(n3, (std::vector<std::string>{"power_law", "exponential", "sigmoid", "erf", "log"}));
  // The clips: finite at x = 0 and at a parameter of 0.
  EXPECT_EQ(e3[0].f(0.0, {0.5}), std::pow(1e-10, 0.5));
  EXPECT_TRUE(std::isfinite(e3[1].f(0.5, {0.0})));
  EXPECT_TRUE(std::isfinite(e3[3].f(0.5, {0.0})));
  EXPECT_TRUE(std::isfinite(e3[4].f(0.5, {-1.0})));
  EXPECT_DOUBLE_EQ(e3[4].f(1.0, {0.3}), 1.0);
  EXPECT_DOUBLE_EQ(e2[0].f(0.0, {2.0, 1.0}), 2e-10);
}

// ---- scoring and ranking ---------------------------------------------------

TEST(SigmaRanking, InfoCriteriaEdgeCases) {
  // n = 3, k = 2: fitting.py gives +inf (n <= k + 1), exp8/9 a number.
  EXPECT_EQ(info_criteria(0.1, 3, 2, InfoCriterion::fitting_py).bic, kInf);
  const auto c = info_criteria(0.1, 3, 2, InfoCriterion::rss_only);
  EXPECT_NEAR(c.aic, 3 * std::log(0.1 / 3) + 4, 1e-14);
  EXPECT_NEAR(c.bic, 3 * std::log(0.1 / 3) + 2 * std::log(3.0), 1e-14);
  EXPECT_EQ(info_criteria(0.0, 10, 1, InfoCriterion::rss_only).aic, kInf);
  EXPECT_EQ(info_criteria(0.0, 10, 1, InfoCriterion::fitting_py).bic, kInf);
  EXPECT_EQ(r_squared({1, 1, 1}, {1, 2, 3}), 0.0);  // SS_tot = 0
  EXPECT_NEAR(r_squared({0, 1, 2}, {0, 1, 1}), 1.0 - 1.0 / 2.0, 1e-15);
}

TEST(SigmaRanking, DropsFailingModelsAndSortsStably) {
  const Vec x = linspace(0, 1, 8);
  Vec y;
  for (size_t i = 0; i < x.size(); ++i) y.push_back(0.2 + 0.5 * x[i] + 0.01 * std::sin(3.0 * i));
  auto line = [](double xv, const Vec& p) { return p[0] + p[1] * xv; };
  std::vector<FitModel> models = {
      {"nan_at_start", {"a"}, [](double, const Vec&) { return kNaN; }, {1.0}, {0.0}, {2.0}},
      {"line_b", {"a", "b"}, line, {0.0, 0.0}, {-5, -5}, {5, 5}},
      {"const", {"a"}, [](double, const Vec& p) { return p[0]; }, {0.1}, {-5}, {5}},
      {"line_a", {"a", "b"}, line, {0.0, 0.0}, {-5, -5}, {5, 5}},
  };
  const FitRanking r = fit_and_rank(models, x, y, 0, InfoCriterion::fitting_py);
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0].model, "nan_at_start");
  EXPECT_NE(r.dropped[0].reason.find("not finite"), std::string::npos) << r.dropped[0].reason;
  // The two lines are the same fit (equal BIC): catalogue order is kept;
  // both beat the constant.
  ASSERT_EQ(names(r), (std::vector<std::string>{"line_b", "line_a", "const"}));
  EXPECT_EQ(r.fits[0].bic, r.fits[1].bic);
  EXPECT_LT(r.fits[1].bic, r.fits[2].bic);
  EXPECT_NEAR(r.fits[0].params[1], 0.5, 0.05);
  EXPECT_GT(r.fits[0].r2, 0.99);
  EXPECT_EQ(r.fits[0].param_names, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(r.fits[0].y_fit.size(), x.size());

  // An exhausted evaluation budget is scipy's RuntimeError → FitError → dropped.
  const FitModel expo{"budget", {"a", "k"}, [](double xv, const Vec& p) { return p[0] * std::exp(p[1] * xv); },
                      {1.0, 3.0}, {-5, -5}, {5, 5}};
  const FitRanking rb = fit_and_rank({expo, models[2]}, x, y, 2, InfoCriterion::fitting_py);
  ASSERT_EQ(rb.dropped.size(), 2u);
  EXPECT_EQ(rb.dropped[0].model, "budget");
  EXPECT_NE(rb.dropped[0].reason.find("Optimal parameters not found"), std::string::npos) << rb.dropped[0].reason;
  EXPECT_TRUE(rb.fits.empty());
  EXPECT_THROW(fit_and_rank(models, x, Vec(3, 0.0), 0, InfoCriterion::fitting_py), std::invalid_argument);
}

// ---- linregress, correlations ----------------------------------------------

TEST(SigmaGolden, LinregressMatchesScipy) {
  const json& cases = golden().at("linregress");
  ASSERT_GE(cases.size(), 6u);
  for (const json& c : cases) {
    const std::string cn = c.at("name");
    const LinRegress r = linregress(vec(c.at("x")), vec(c.at("y")));
    EXPECT_NEAR(r.slope, num(c.at("slope")), 1e-10) << cn;
    EXPECT_NEAR(r.intercept, num(c.at("intercept")), 1e-10) << cn;
    EXPECT_NEAR(r.r, num(c.at("r")), 1e-10) << cn;
    EXPECT_NEAR(r.r2, num(c.at("r")) * num(c.at("r")), 1e-10) << cn;
    const double wp = num(c.at("p_value"));
    if (cn == "exact20") {
      // y = 0.373·h: r is within an ulp or two of 1 in both implementations
      // (which ulp depends on summation order), so sqrt(1 − r²) in the
      // standard errors (~1e-9) and p (~1e-139) are rounding noise; require
      // only that they are that small.
      EXPECT_LT(r.std_err, 1e-8) << cn;
      EXPECT_LT(r.intercept_stderr, 1e-8) << cn;
      EXPECT_LT(r.p_value, 1e-100) << cn;
    } else {
      EXPECT_NEAR(r.std_err, num(c.at("std_err")), 1e-10) << cn;
      EXPECT_NEAR(r.intercept_stderr, num(c.at("intercept_stderr")), 1e-10) << cn;
      expect_rel(r.p_value, wp, 1e-9, cn + " p_value");
    }
  }
}

TEST(SigmaGolden, LinregressExactFitKeepsScipysTinyP) {
  // y = 2 − x/2 on six points: r = −1 exactly; scipy's TINY gives p = 1.5e-40.
  const LinRegress r = linregress({0, 1, 2, 3, 4, 5}, {2, 1.5, 1, 0.5, 0, -0.5});
  EXPECT_EQ(r.r, -1.0);
  EXPECT_EQ(r.std_err, 0.0);
  EXPECT_EQ(r.intercept_stderr, 0.0);
  EXPECT_GT(r.p_value, 0.0);
  EXPECT_NEAR(r.p_value, 1.5e-40, 1e-9 * 1.5e-40);
}

TEST(SigmaGolden, PearsonSpearmanMatchScipy) {
  const json& cases = golden().at("correlation");
  ASSERT_GE(cases.size(), 3u);
  for (const json& c : cases) {
    const std::string cn = c.at("name");
    const Vec x = vec(c.at("x")), y = vec(c.at("y"));
    const Correlation p = pearson(x, y), s = spearman(x, y);
    EXPECT_NEAR(p.r, num(c.at("pearson_r")), 1e-12) << cn;
    expect_rel(p.p, num(c.at("pearson_p")), 1e-9, cn + " pearson p");
    EXPECT_NEAR(s.r, num(c.at("spearman_r")), 1e-12) << cn;
    expect_rel(s.p, num(c.at("spearman_p")), 1e-9, cn + " spearman p");
  }
}

TEST(SigmaGolden, CorrcoefMatchesNumpy) {
  const json& cases = golden().at("corrcoef");
  ASSERT_GE(cases.size(), 2u);
  int nan_seen = 0;
  for (const json& c : cases) {
    std::vector<Vec> rows;
    for (const json& r : c.at("rows")) rows.push_back(vec(r));
    const auto got = corrcoef(rows);
    const json& want = c.at("r");
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const Vec w = vec(want[i]);
      ASSERT_EQ(got[i].size(), w.size());
      for (size_t j = 0; j < w.size(); ++j) {
        if (std::isnan(w[j])) {
          ++nan_seen;
          EXPECT_TRUE(std::isnan(got[i][j])) << c.at("name") << " " << i << "," << j;
        } else {
          EXPECT_NEAR(got[i][j], w[j], 1e-12) << c.at("name") << " " << i << "," << j;
        }
      }
    }
  }
  EXPECT_EQ(nan_seen, 9);  // the constant row and column of a 5×5 matrix
}

// ---- spline, linspace -------------------------------------------------------

TEST(SigmaGolden, CubicSplineMatchesInterp1d) {
  const json& cases = golden().at("spline");
  ASSERT_GE(cases.size(), 4u);
  for (const json& c : cases) {
    const CubicSpline s(vec(c.at("x")), vec(c.at("y")));
    const Vec xe = vec(c.at("x_eval")), ye = vec(c.at("y_eval"));
    const Vec got = s(xe);
    ASSERT_EQ(got.size(), ye.size());
    for (size_t i = 0; i < ye.size(); ++i)
      EXPECT_NEAR(got[i], ye[i], 1e-12) << c.at("name") << " at x = " << xe[i];
  }
}

TEST(SigmaSpline, InterpolatesKnotsAndReproducesCubics) {
  // Not-a-knot reproduces any cubic exactly, inside and outside the range.
  auto cubic = [](double v) { return 0.3 - 1.2 * v + 0.7 * v * v + 2.1 * v * v * v; };
  const Vec x = {0.0, 0.1, 0.35, 0.4, 0.8, 1.0};
  Vec y;
  for (double v : x) y.push_back(cubic(v));
  const CubicSpline s(x, y);
  for (double v : {-0.5, 0.0, 0.05, 0.37, 0.9, 1.0, 1.6}) EXPECT_NEAR(s(v), cubic(v), 1e-12) << v;
  EXPECT_TRUE(std::isnan(s(kNaN)));
}

TEST(SigmaSpline, RejectsBadInput) {
  EXPECT_THROW(CubicSpline({0, 1, 2}, {0, 1, 0}), std::invalid_argument);          // < 4 points
  EXPECT_THROW(CubicSpline({0, 2, 1, 3}, {0, 1, 0, 1}), std::invalid_argument);    // unsorted
  EXPECT_THROW(CubicSpline({0, 1, 1, 3}, {0, 1, 0, 1}), std::invalid_argument);    // duplicate x
  EXPECT_THROW(CubicSpline({0, 1, 2, 3}, {0, 1, 0}), std::invalid_argument);       // sizes
  EXPECT_THROW(CubicSpline({0, 1, 2, 3}, {0, kNaN, 0, 1}), std::invalid_argument); // non-finite
  EXPECT_NO_THROW(CubicSpline({0, 1, 2, 3}, {0, 1, 0, 1}));
}

TEST(SigmaRegress, RejectsBadInput) {
  EXPECT_THROW(linregress({1, 1, 1}, {0, 1, 2}), std::invalid_argument);  // constant x
  EXPECT_THROW(linregress({1}, {0}), std::invalid_argument);              // too few
  EXPECT_THROW(linregress({1, 2}, {0, 1, 2}), std::invalid_argument);     // sizes
  EXPECT_THROW(corrcoef({{1, 2, 3}, {1, 2}}), std::invalid_argument);
  EXPECT_THROW(corrcoef({}), std::invalid_argument);
  EXPECT_THROW(linspace(0, 1, -1), std::invalid_argument);
}

TEST(SigmaGolden, LinspaceIsNumpyBitForBit) {
  const json& cases = golden().at("linspace");
  ASSERT_GE(cases.size(), 5u);
  for (const json& c : cases) {
    const Vec got = linspace(c.at("a"), c.at("b"), c.at("n"));
    const Vec want = vec(c.at("v"));
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << c.dump() << " i=" << i;
  }
  EXPECT_TRUE(linspace(0, 1, 0).empty());
}

}  // namespace
}  // namespace spt::analysis
