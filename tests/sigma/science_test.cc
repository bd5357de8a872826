// The σ family's science on hand-made vectors: each expectation is computed
// here from the spec's formula, not by calling the code under test twice.
#include <gtest/gtest.h>

#include <cmath>

#include "sigma/science.h"

namespace spt::sigma {
namespace {

TEST(SigmaScience, DirectionIsTheNormalisedMeanDifference) {
  const std::vector<Vec> A = {{1, 0, 0}, {3, 0, 0}}, B = {{0, 2, 0}, {0, 2, 2}};
  const Direction d = make_direction(A, B);  // m_A = (2,0,0), m_B = (0,2,1)
  EXPECT_NEAR(d.e_A[0], 1.0, 1e-7);
  EXPECT_NEAR(d.e_B[1], 2 / std::sqrt(5.0), 1e-7);
  EXPECT_NEAR(d.cos_AB, 0.0, 1e-12);
  const double n = std::sqrt(4.0 + 4.0 + 1.0);
  EXPECT_NEAR(d.e_diff[0], 2 / n, 1e-7);
  EXPECT_NEAR(d.e_diff[1], -2 / n, 1e-7);
  EXPECT_NEAR(d.e_diff[2], -1 / n, 1e-7);
  EXPECT_THROW(make_direction({{1, 0}}, {{1, 0}}), std::invalid_argument);  // m_A − m_B = 0
  EXPECT_THROW(make_direction({}, B), std::invalid_argument);
}

TEST(SigmaScience, OrderParameters) {
  const Vec e_diff = {0.6f, 0.8f, 0};
  const Vec phi = {3, 4, 0, /*depth 1*/ 0, 0, 5};
  const auto s = sigma_contrastive(phi, 2, e_diff);
  EXPECT_NEAR(s[0], 1.0, 1e-7);
  EXPECT_NEAR(s[1], 0.0, 1e-7);
  const auto v1 = sigma_v1(phi, 2, {1, 0, 0}, {0, 1, 0});
  EXPECT_NEAR(v1[0], 0.6 - 0.8, 1e-7);
  EXPECT_THROW(sigma_contrastive(phi, 3, e_diff), std::invalid_argument);
}

TEST(SigmaScience, SummaryTakesTheFirstLargestJump) {
  const SigmaSummary s = summarize({0.0, 0.1, 0.2, 0.1, -0.05});
  EXPECT_DOUBLE_EQ(s.sigma_final, -0.05);
  EXPECT_NEAR(s.sigma_range, 0.25, 1e-15);
  EXPECT_EQ(s.max_jump_layer, 3);
  EXPECT_NEAR(s.max_jump_value, -0.15, 1e-15);
  const SigmaSummary t = summarize({0.0, 0.1, 0.2});  // equal jumps: first index (numpy argmax)
  EXPECT_EQ(t.max_jump_layer, 0);
}

TEST(SigmaScience, ResponseNormalisesByTheStrongConditions) {
  const std::vector<std::string> labels = {"neutral", "weak_A", "strong_A", "strong_B"};
  const std::vector<std::vector<double>> sigma = {{0.0, 0.21}, {0.1, 0.4}, {0.2, 0.6}, {-0.1, -0.2}};
  const Response r = response(labels, sigma);
  ASSERT_TRUE(r.valid);
  // mid = 0.2, half = 0.4
  EXPECT_NEAR(r.h[0], 0.025, 1e-12);  // |h| <= 0.05: dropped (A23)
  EXPECT_NEAR(r.h[1], 0.5, 1e-12);
  EXPECT_NEAR(r.h[2], 1.0, 1e-12);
  EXPECT_NEAR(r.h[3], -1.0, 1e-12);
  EXPECT_FALSE(r.kept[0]);
  // kept curves f = σ/h: (0.2, 0.8), (0.2, 0.6), (0.1, 0.2)
  EXPECT_NEAR(r.f_mean[0], 0.5 / 3, 1e-12);
  EXPECT_NEAR(r.f_mean[1], 1.6 / 3, 1e-12);
  auto pvar = [](std::vector<double> v) {
    double m = 0, s = 0;
    for (double x : v) m += x / v.size();
    for (double x : v) s += (x - m) * (x - m) / v.size();
    return s;
  };
  EXPECT_NEAR(r.collapse_variance, (pvar({0.2, 0.2, 0.1}) + pvar({0.8, 0.6, 0.2})) / 2, 1e-12);
  EXPECT_FALSE(response({"strong_A", "strong_B"}, {{0, 0.3}, {0, 0.3}}).valid);
  EXPECT_THROW(response({"a", "b"}, {{0}, {1}}), std::invalid_argument);
}

TEST(SigmaScience, LinearResponseRecoversSlopesAndThresholds) {
  // σ_p(l) = l·h_p·0.5 + 0.1 at depth 0..1, exact line at depth 2 (= final).
  const std::vector<double> hs = {-1, -0.5, 0, 0.25, 1};
  std::vector<std::vector<double>> sigma;
  for (double h : hs) sigma.push_back({0.1 + (h == 0.25 ? 0.3 : 0.0), 0.5 * h + 0.1, h});
  const Linearity lin = linear_response(sigma);
  EXPECT_DOUBLE_EQ(lin.M, 1.0);
  EXPECT_EQ(lin.h_sorted, hs);
  EXPECT_NEAR(lin.f[1], 0.5, 1e-12);
  EXPECT_NEAR(lin.f[2], 1.0, 1e-12);
  EXPECT_NEAR(lin.depths[2].r2, 1.0, 1e-12);
  EXPECT_NEAR(lin.f_max, 1.0, 1e-12);
  EXPECT_FALSE(lin.depths[1].hstar.has_value());  // exact line
  // depth 0: one outlier at h = 0.25 → regression residuals; every residual
  // above 5 % of the range 0.3 counts, h* = the smallest such |h|.
  ASSERT_TRUE(lin.depths[0].hstar.has_value());
  double mean_h = 0, mean_y = 0, sxy = 0, sxx = 0;
  for (size_t i = 0; i < hs.size(); ++i) {
    mean_h += hs[i] / 5;
    mean_y += sigma[i][0] / 5;
  }
  for (size_t i = 0; i < hs.size(); ++i) {
    sxy += (hs[i] - mean_h) * (sigma[i][0] - mean_y);
    sxx += (hs[i] - mean_h) * (hs[i] - mean_h);
  }
  const double b = sxy / sxx, a = mean_y - b * mean_h;
  double want = INFINITY;
  for (size_t i = 0; i < hs.size(); ++i)
    if (std::fabs(sigma[i][0] - (a + b * hs[i])) / 0.3 > 0.05) want = std::min(want, std::fabs(hs[i]));
  EXPECT_NEAR(*lin.depths[0].hstar, want, 1e-12);
  EXPECT_NEAR(lin.depths[0].slope, b, 1e-12);
}

TEST(SigmaScience, FmaxIsTheSignedMaximum) {
  // Slopes −0.8 (depth 0), then +0.2: max |f| would pick −0.8; the spec's
  // f_max is the signed maximum.
  const std::vector<double> hs = {-1, 0, 1};
  std::vector<std::vector<double>> sigma;
  for (double h : hs) sigma.push_back({-0.8 * h, 0.2 * h, h});
  const Linearity lin = linear_response(sigma);
  EXPECT_NEAR(lin.f[0], -0.8, 1e-12);
  EXPECT_NEAR(lin.f_max, 1.0, 1e-12);
  std::vector<std::vector<double>> neg;
  for (double h : hs) neg.push_back({-0.8 * h, 0.2 * h, 0.1 * h});
  EXPECT_NEAR(linear_response(neg).f_max, 0.2, 1e-12);
}

TEST(SigmaScience, UniversalGSkipsFlatWordsAndAverages) {
  const UniversalG u = universal_g({"a", "flat", "b"}, {{0, 1, 2}, {0, 0, 0}, {0, 2, 1}});
  EXPECT_EQ(u.words, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(u.skipped, std::vector<std::string>{"flat"});
  EXPECT_NEAR(u.g_mean[1], 0.75, 1e-12);
  EXPECT_NEAR(u.g_std[1], 0.25, 1e-12);
  EXPECT_NEAR(u.resid_max_abs[0], 0.25, 1e-12);
  EXPECT_NEAR(u.l_norm[1], 0.5, 1e-15);
  const Peak p = peak_of(u.g_mean);  // g_mean = 0, .75, .75 → first max
  EXPECT_EQ(p.depth, 1);
  EXPECT_NEAR(p.drop, 0.0, 1e-12);
}

TEST(SigmaScience, CompareCurvesInterpolatesTheFinerCurve) {
  // A cubic is reproduced exactly by a not-a-knot spline.
  auto f = [](double x) { return 0.2 + x - 0.5 * x * x * x; };
  std::vector<double> fine, coarse;
  for (int i = 0; i < 25; ++i) fine.push_back(f(i / 24.0));
  for (int i = 0; i < 13; ++i) coarse.push_back(f(i / 12.0) + (i == 6 ? 0.01 : 0.0));
  const CurveCompare c = compare_curves(coarse, fine);
  EXPECT_NEAR(c.max_diff, 0.01, 1e-12);
  EXPECT_NEAR(c.rmse, 0.01 / std::sqrt(13.0), 1e-12);
  EXPECT_GT(c.correlation, 0.999);
}

}  // namespace
}  // namespace spt::sigma
