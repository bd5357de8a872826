// Unit tests of the torch-free analysis used by the exp10 reduce steps:
// special functions and p-values, the TRF port, the Zipf fit, the
// threshold rule, Python-style rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "analysis/special.h"
#include "analysis/stats.h"
#include "analysis/thresholds.h"
#include "analysis/trf.h"
#include "analysis/zipf.h"
#include "spt/util.h"

namespace spt::analysis {
namespace {

constexpr double kPi = 3.14159265358979323846;

TEST(Special, IncompleteBetaClosedForms) {
  for (double x : {0.01, 0.2, 0.5, 0.77, 0.999}) {
    EXPECT_NEAR(incomplete_beta(3.5, 1.0, x), std::pow(x, 3.5), 1e-14);
    EXPECT_NEAR(incomplete_beta(1.0, 2.25, x), 1.0 - std::pow(1.0 - x, 2.25), 1e-14);
  }
  EXPECT_NEAR(incomplete_beta(7.0, 7.0, 0.5), 0.5, 1e-14);
  EXPECT_EQ(incomplete_beta(2.0, 3.0, 0.0), 0.0);
  EXPECT_EQ(incomplete_beta(2.0, 3.0, 1.0), 1.0);
  EXPECT_THROW(incomplete_beta(0.0, 1.0, 0.5), std::domain_error);
}

TEST(Special, StudentTAgainstClosedForms) {
  for (double t : {0.1, 0.7, 1.0, 2.1213, 5.0, 40.0}) {
    EXPECT_NEAR(student_t_two_sided_p(t, 1), 1.0 - 2.0 / kPi * std::atan(t), 1e-13) << t;
    EXPECT_NEAR(student_t_two_sided_p(-t, 2), 1.0 - t / std::sqrt(2.0 + t * t), 1e-13) << t;
    const double u = t / std::sqrt(3.0);
    EXPECT_NEAR(student_t_two_sided_p(t, 3), 1.0 - 2.0 / kPi * (std::atan(u) + u / (1.0 + u * u)), 1e-13) << t;
  }
  EXPECT_EQ(student_t_two_sided_p(0.0, 10), 1.0);
}

TEST(Stats, PearsonMatchesScipyDocExample) {
  // scipy.stats.pearsonr([1, 2, 3, 4, 5], [10, 9, 2.5, 6, 4])
  const auto c = pearson({1, 2, 3, 4, 5}, {10, 9, 2.5, 6, 4});
  EXPECT_NEAR(c.r, -0.7426106572325057, 1e-13);
  EXPECT_NEAR(c.p, 0.1505558088534455, 1e-10);
  // r = 6/sqrt(60); t = 3/sqrt(2) with 3 d.o.f. (closed form above).
  const auto d = pearson({1, 2, 3, 4, 5}, {2, 4, 5, 4, 5});
  EXPECT_NEAR(d.r, 6.0 / std::sqrt(60.0), 1e-14);
  const double u = (3.0 / std::sqrt(2.0)) / std::sqrt(3.0);
  EXPECT_NEAR(d.p, 1.0 - 2.0 / kPi * (std::atan(u) + u / (1.0 + u * u)), 1e-12);
}

TEST(Stats, SpearmanWithTiesMatchesScipyDocExample) {
  // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
  const auto c = spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7});
  EXPECT_NEAR(c.r, 0.8207826816681233, 1e-13);
  EXPECT_NEAR(c.p, 0.08858700531354381, 1e-10);
  const auto ranks = average_ranks({10, 20, 20, 5, 20});
  EXPECT_EQ(ranks, (std::vector<double>{2, 4, 4, 1, 4}));
}

TEST(Stats, PerfectAndConstantInputs) {
  const auto c = pearson({1, 2, 3}, {2, 4, 6});
  EXPECT_DOUBLE_EQ(c.r, 1.0);
  EXPECT_EQ(c.p, 0.0);
  EXPECT_TRUE(std::isnan(pearson({1, 2, 3}, {1, 1, 1}).r));
  EXPECT_THROW(pearson({1, 2}, {1, 2}), std::invalid_argument);
  EXPECT_THROW(pearson({1, 2, 3}, {1, 2}), std::invalid_argument);
}

TEST(Stats, DescriptiveNumpySemantics) {
  EXPECT_DOUBLE_EQ(median({3, 1, 2, 10}), 2.5);
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2.0);
  EXPECT_DOUBLE_EQ(pstdev({1, 3}), 1.0);  // ddof = 0
  EXPECT_TRUE(std::isnan(mean({})));
  const auto h = histogram({0, 1, 2, 3, 4, 4}, 4);
  EXPECT_EQ(h.counts, (std::vector<int>{1, 1, 1, 3}));  // last bin closed
  EXPECT_DOUBLE_EQ(h.edges.front(), 0.0);
  EXPECT_DOUBLE_EQ(h.edges.back(), 4.0);
}

TEST(Trf, RecoversZipfParametersFromExactData) {
  std::vector<double> y;
  for (int r = 1; r <= 144; ++r) y.push_back(2.35 * std::pow(r, -1.37));
  const auto z = zipf_fit(y);
  ASSERT_TRUE(z.has_value());
  EXPECT_NEAR(z->C, 2.35, 1e-6);
  EXPECT_NEAR(z->alpha, 1.37, 1e-6);
  EXPECT_NEAR(z->r2, 1.0, 1e-9);
  EXPECT_EQ(z->n_points, 144);
}

TEST(Trf, NoisyFitIsALocalOptimum) {
  // Deterministic multiplicative noise; the answer must be stationary: no
  // small move of (C, α) lowers the residual sum of squares.
  std::vector<double> x, y;
  for (int r = 1; r <= 60; ++r) {
    x.push_back(r);
    y.push_back(1.8 * std::pow(r, -0.9) * (1.0 + 0.05 * std::sin(1.7 * r)));
  }
  auto model = [](double r, const std::vector<double>& p) { return p[0] * std::pow(r, -p[1]); };
  const double inf = std::numeric_limits<double>::infinity();
  const auto fit = curve_fit(model, x, y, {y[0], 1.0}, {0, 0.01}, {inf, 5});
  EXPECT_TRUE(fit.lsq.success());
  auto rss = [&](double C, double a) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += std::pow(model(x[i], {C, a}) - y[i], 2);
    return s;
  };
  const double best = rss(fit.params[0], fit.params[1]);
  EXPECT_NEAR(best, fit.rss, 1e-12);
  for (double dc : {-1e-4, 1e-4})
    for (double da : {-1e-4, 0.0, 1e-4}) EXPECT_GE(rss(fit.params[0] + dc, fit.params[1] + da), best);
  EXPECT_NEAR(fit.params[1], 0.9, 0.05);
}

TEST(Trf, StopsOnAnActiveBound) {
  // The unconstrained optimum has α = 7; the bound α <= 5 must hold and be
  // reported active.
  std::vector<double> y;
  for (int r = 1; r <= 20; ++r) y.push_back(3.0 * std::pow(r, -7.0));
  std::vector<double> x;
  for (int r = 1; r <= 20; ++r) x.push_back(r);
  const double inf = std::numeric_limits<double>::infinity();
  const auto fit = curve_fit([](double r, const std::vector<double>& p) { return p[0] * std::pow(r, -p[1]); }, x, y,
                             {3.0, 1.0}, {0, 0.01}, {inf, 5});
  EXPECT_LE(fit.params[1], 5.0);
  EXPECT_GT(fit.params[1], 4.99);
  EXPECT_EQ(fit.lsq.active_mask[1], 1);
}

TEST(Trf, LinearProblemAndBudget) {
  // y = a + b x is linear: TRF solves it to round-off in a few steps.
  const std::vector<double> x = {0, 1, 2, 3, 4}, y = {1, 3.1, 4.9, 7.2, 8.8};
  const double inf = std::numeric_limits<double>::infinity();
  const auto fit = curve_fit([](double t, const std::vector<double>& p) { return p[0] + p[1] * t; }, x, y, {0, 0},
                             {-inf, -inf}, {inf, inf});
  // Closed-form OLS: b = Sxy/Sxx = 19.7/10, a = ȳ − b·x̄.
  EXPECT_NEAR(fit.params[1], 1.97, 1e-7);
  EXPECT_NEAR(fit.params[0], 5.0 - 1.97 * 2.0, 1e-7);
  // A budget too small to converge is an error, as in scipy.
  EXPECT_THROW(curve_fit([](double t, const std::vector<double>& p) { return p[0] * std::exp(-p[1] * t); }, x,
                         {5, 3, 2, 1.2, 0.7}, {1, 5}, {0, 0}, {inf, inf}, 2),
               FitError);
}

TEST(Zipf, NeedsMoreThanFivePositivePoints) {
  std::string why;
  EXPECT_FALSE(zipf_fit({0.5, 0.2, 0.1, 0.05, 0.01, 0, 0, 0}, &why).has_value());
  EXPECT_NE(why.find("5"), std::string::npos);
  // Signs do not matter (|ΔPPL|), order does not matter.
  const auto z = zipf_fit({-0.1, 0.8, 0.05, -0.4, 0.2, 0.03, 0.0});
  ASSERT_TRUE(z.has_value());
  EXPECT_EQ(z->n_points, 6);
}

TEST(Thresholds, MaxMeasuredStepNotFirstRun) {
  // Ratio exceeds 1.1 at 10 but is back under it at 15: the rule takes 15.
  const std::vector<CurvePoint> c = {{0, 1.0}, {5, 1.05}, {10, 1.12}, {15, 1.08}, {20, 1.6}, {25, 2.5}};
  EXPECT_EQ(threshold_steps(c, 1.1), 15);
  EXPECT_EQ(threshold_steps(c, 1.5), 15);
  EXPECT_EQ(threshold_steps(c, 2.0), 20);
  EXPECT_EQ(threshold_steps(c, 3.0), 25);
  EXPECT_EQ(threshold_steps({{5, 1.3}, {10, 1.4}}, 1.1), 0);  // none: 0
  EXPECT_EQ(threshold_steps({{0, 1.0}, {5, 1.1}}, 1.1), 5);    // <= is inclusive
}

TEST(Rounding, PythonRoundSemantics) {
  // Values checked against CPython's round().
  EXPECT_EQ(round_to(2.675, 2), 2.67);     // binary value just below the tie
  EXPECT_EQ(round_to(0.125, 2), 0.12);     // exact tie → even
  EXPECT_EQ(round_to(0.375, 2), 0.38);     // exact tie → even
  EXPECT_EQ(round_to(1.00005, 4), 1.0001);
  EXPECT_EQ(round_to(24.26995, 4), 24.27);
  EXPECT_EQ(round_to(0.0000125, 6), 1.3e-05);
  EXPECT_EQ(round_to(2.5, 0), 2.0);
  EXPECT_TRUE(std::signbit(round_to(-0.0000005, 6)));  // -0.0, as Python
}

}  // namespace
}  // namespace spt::analysis
