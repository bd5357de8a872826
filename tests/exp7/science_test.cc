// exp7's PCA-derived numbers against scikit-learn/numpy golden values
// (scripts/golden/make_exp7_golden.py → tests/data/golden/sklearn_exp7.json):
// per-block explained variance and thresholds, the shared PCA's thresholds,
// the 7C reconstruction metrics (computed there from the definition, here
// through the score identities of exp7/science.cc), and the norm statistics.
// Also the array file format round trip.
#include "exp7/science.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "analysis/pca.h"
#include "exp7/arrays.h"
#include "spt/util.h"

namespace spt::exp7 {
namespace {

using nlohmann::json;

const json& golden() {
  static const json g = json::parse(read_file(std::string(SPT_TEST_DATA) + "/golden/sklearn_exp7.json"));
  return g;
}

F32Array capture() {
  F32Array a;
  a.shape = golden().at("shape").get<std::vector<int64_t>>();
  a.data = golden().at("data").get<std::vector<float>>();
  return a;
}

void expect_vec_near(const json& want, const std::vector<double>& got, double tol, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i].get<double>(), tol) << what << " [" << i << "]";
}

TEST(Exp7Science, PerBlockPcaMatchesSklearn) {
  const F32Array a = capture();
  ASSERT_EQ(slab_count(a), 3);
  for (int b = 0; b < 3; ++b) {
    const json& w = golden().at("blocks").at(b);
    const analysis::Pca p = analysis::pca(slab(a, b));
    expect_vec_near(w.at("explained_variance_ratio"), p.explained_variance_ratio, 1e-10, "block " + std::to_string(b));
    EXPECT_EQ(thresholds_json(p.explained_variance_ratio), w.at("thresholds")) << b;
    const auto& x = a.data;
    const NormStats ns = row_norms(x.data() + b * 40 * 12, 40, 12);
    EXPECT_NEAR(ns.mean, w.at("norm_mean").get<double>(), 1e-9 * ns.mean);
    EXPECT_NEAR(ns.std, w.at("norm_std").get<double>(), 1e-9 * ns.mean);
  }
}

TEST(Exp7Science, SharedReconstructionMatchesDirectComputation) {
  const F32Array a = capture();
  const analysis::Pca p = analysis::pca(stacked(a, 3));
  const json& s = golden().at("shared");
  expect_vec_near(s.at("explained_variance_ratio"), p.explained_variance_ratio, 1e-10, "shared");
  EXPECT_EQ(thresholds_json(p.explained_variance_ratio), s.at("thresholds"));
  for (const auto& [k, per] : s.at("eval").items())
    for (int b = 0; b < 3; ++b) {
      const Recon r = reconstruction(slab(a, b), p, b * 40, std::stoll(k));
      const json& w = per.at(b);
      EXPECT_NEAR(r.cos_sim, w.at("cos_sim").get<double>(), 1e-9) << "K " << k << " block " << b;
      EXPECT_NEAR(r.l2_error, w.at("l2_error").get<double>(), 1e-9 * (1 + r.l2_error)) << "K " << k << " block " << b;
      EXPECT_NEAR(r.relative_l2, w.at("relative_l2").get<double>(), 1e-9) << "K " << k << " block " << b;
    }
}

TEST(Exp7Science, ThresholdNeverReachedStoresComponentCount) {
  // Rounding can leave the cumulative sum just below 0.95 of a tiny tail.
  EXPECT_EQ(thresholds_json({0.4, 0.3, 0.2})["0.95"], 3);
  EXPECT_EQ(thresholds_json({0.4, 0.3, 0.2})["0.5"], 2);
}

TEST(Exp7Science, ReconstructionRejectsBadK) {
  const F32Array a = capture();
  const analysis::Pca p = analysis::pca(stacked(a, 3));
  EXPECT_THROW(reconstruction(slab(a, 0), p, 0, 0), std::invalid_argument);
  EXPECT_THROW(reconstruction(slab(a, 0), p, 0, 13), std::invalid_argument);
  EXPECT_THROW(reconstruction(slab(a, 2), p, 100, 2), std::invalid_argument);  // rows beyond the scores
}

TEST(Exp7Arrays, RoundTripAndErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("spt_exp7_arrays_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  F32Array a;
  a.shape = {2, 3};
  a.data = {1, -2, 3.5f, 0, 1e-30f, 7};
  a.meta = {{"what", "test"}};
  const std::string path = (dir / "a.f32").string();
  write_f32(path, a);
  const F32Array b = read_f32(path);
  EXPECT_EQ(b.shape, a.shape);
  EXPECT_EQ(b.data, a.data);
  EXPECT_EQ(b.meta, a.meta);
  write_file_atomic(path, read_file(path).substr(0, read_file(path).size() - 2));
  EXPECT_THROW(read_f32(path), std::runtime_error);  // truncated
  write_file_atomic(path, "not an array");
  EXPECT_THROW(read_f32(path), std::runtime_error);
  a.shape = {4, 3};
  EXPECT_THROW(write_f32(path, a), std::runtime_error);  // shape vs data
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace spt::exp7
