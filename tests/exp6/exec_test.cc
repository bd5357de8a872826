// exp6 on generated models: the injection (spec §6 B) makes W_Qᵀ·W_K equal
// its target to float32 precision without touching the shared model, K =
// all reproduces the baseline, cluster targets are the representatives'
// original W_QK, sub-unit sums detect gaps and overlaps, and the family
// runs in process with the baseline equal to a direct engine evaluation.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "exp6/executors.h"
#include "exp6/reduce.h"
#include "exp6/wqk.h"
#include "model/testmodel.h"
#include "model/tokenizer.h"
#include "model/wikitext.h"
#include "platform/local_run.h"
#include "spt/gpt2_hooks.h"
#include "spt/plan.h"

namespace spt::exp6 {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct TempDir {
  fs::path p;
  TempDir() {
    p = fs::temp_directory_path() / ("exp6_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(p);
  }
  ~TempDir() {
    if (!std::getenv("SPT_KEEP_TEST_DIRS")) fs::remove_all(p);
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

std::string write_model(const TempDir& d, uint64_t seed) {
  gpt2::TestModelSpec s;
  s.seed = seed;
  s.std = 0.08f;  // 2 layers × 4 heads, d_model 64, d_head 16
  const std::string dir = (d.p / "model").string();
  gpt2::write_test_model(dir, s);
  return dir;
}

gpt2::Chunks random_chunks(int n, int len, uint64_t seed) {
  gpt2::Chunks c(static_cast<size_t>(n));
  uint64_t x = seed;
  for (auto& ch : c)
    for (int t = 0; t < len; ++t) ch.push_back(static_cast<int32_t>((x = x * 6364136223846793005ULL + 1) >> 40) % 50257);
  return c;
}

TEST(Exp6Injection, QkEqualsTargetAndSharedModelIsUntouched) {
  TempDir d;
  auto m = gpt2::load_model(write_model(d, 3), {});
  const WFlat w = extract_wflat(*m);
  ASSERT_EQ(w.n_total(), 8);
  ASSERT_EQ(w.w.cols, 256);
  const at::Tensor wqkv_before = gpt2::weights(*m).blocks[1].W_QKV.clone();
  const auto pca = wflat_pca(w);
  for (int64_t k : {1, 3, 8}) {
    SCOPED_TRACE(k);
    const auto edits = pca_edits(w, pca, k);
    ASSERT_EQ(edits.size(), 8u);
    const EditedModel em = edited_model(*m, edits);
    // In the new model's own weights (what its forward multiplies with).
    const gpt2::Weights& nw = gpt2::weights(*em.model);
    double worst = 0, scale = 0;
    for (const auto& e : edits) {
      const at::Tensor t = at::from_blob(const_cast<float*>(e.target.data()), {16, 16}, at::kFloat);
      worst = std::max(worst, (gpt2::qk_matrix(nw, e.layer, e.head) - t).abs().max().item<double>());
      scale = std::max(scale, t.abs().max().item<double>());
      // Only W_Q moved: W_K, W_V and the biases are the shared model's.
      const auto& ob = gpt2::weights(*m).blocks[static_cast<size_t>(e.layer)];
      const auto& nb = nw.blocks[static_cast<size_t>(e.layer)];
      EXPECT_TRUE(at::equal(nb.W_K, ob.W_K));
      EXPECT_TRUE(at::equal(nb.W_V, ob.W_V));
      EXPECT_TRUE(at::equal(nb.b_QKV, ob.b_QKV));
    }
    // float32: the product of 64-term sums after a 16×16 inverse; 1e-5 of
    // the largest entry is a few ulps of accumulated rounding [~1e-6 seen].
    EXPECT_LE(worst, 1e-5 * scale);
    EXPECT_NEAR(em.max_abs_error, worst, 1e-6 * scale);
    // W_rec of K < n_total really differs from the original W_QK.
    if (k < 8) {
      double moved = 0;
      for (int64_t j = 0; j < 256; ++j) moved = std::max(moved, std::abs(edits[0].target[j] - w.w.at(0, j)));
      EXPECT_GT(moved, 1e-3 * scale);
    }
  }
  EXPECT_TRUE(at::equal(gpt2::weights(*m).blocks[1].W_QKV, wqkv_before)) << "the shared model was modified";
}

TEST(Exp6Injection, KAllReproducesTheBaselineAndLowKDoesNot) {
  TempDir d;
  auto m = gpt2::load_model(write_model(d, 5), {});
  const WFlat w = extract_wflat(*m);
  const auto pca = wflat_pca(w);
  const gpt2::Chunks chunks = random_chunks(3, 48, 11);
  const double base = m->nll(chunks, {}).ppl();
  const double all = edited_model(*m, pca_edits(w, pca, 8)).model->nll(chunks, {}).ppl();
  EXPECT_LT(std::abs(all - base) / base, 1e-3);
  EXPECT_LT(std::abs(all - base) / base, 1e-5);  // in fact: float32 round-off of Δ ≈ 0
  const double k1 = edited_model(*m, pca_edits(w, pca, 1)).model->nll(chunks, {}).ppl();
  EXPECT_GT(std::abs(k1 - base) / base, 1e-4) << "K = 1 should change the model";
  EXPECT_THROW(pca_edits(w, pca, 9), std::invalid_argument);
  EXPECT_THROW(pca_edits(w, pca, 0), std::invalid_argument);
}

TEST(Exp6Injection, ClusterTargetsAreTheRepresentativesOriginals) {
  TempDir d;
  auto m = gpt2::load_model(write_model(d, 7), {});
  const WFlat w = extract_wflat(*m);
  const std::vector<int64_t> labels = {0, 0, 1, 1, 1, 0, 2, 1}, reps = {5, 3, 6};
  const auto edits = cluster_edits(w, labels, reps);
  EXPECT_EQ(edits.size(), 5u);  // 8 heads − 3 representatives
  for (const auto& e : edits) {
    const int64_t i = e.layer * 4 + e.head;
    const int64_t r = reps[static_cast<size_t>(labels[static_cast<size_t>(i)])];
    EXPECT_NE(i, r);
    for (int64_t j = 0; j < 256; ++j) ASSERT_EQ(e.target[static_cast<size_t>(j)], static_cast<float>(w.w.at(r, j)));
  }
  const EditedModel em = edited_model(*m, edits);
  EXPECT_LE(em.max_abs_error, 1e-5 * em.max_abs_target);
  EXPECT_THROW(cluster_edits(w, {0, 0, 1}, reps), std::invalid_argument);
  EXPECT_THROW(cluster_edits(w, labels, {5, 0, 6}), std::invalid_argument);  // head 0 is not in cluster 1
}

TEST(Exp6Injection, QkEditJsonRoundTripsAndRejectsBadInput) {
  const gpt2::QkEdit e{1, 2, {0.5f, 1.5f, 2.5f, 3.5f}, "test"};
  const gpt2::QkEdit back = gpt2::qk_edit_from_json(gpt2::to_json(e));
  EXPECT_EQ(back.layer, 1);
  EXPECT_EQ(back.head, 2);
  EXPECT_EQ(back.target, e.target);
  EXPECT_EQ(back.source, "test");
  EXPECT_FALSE(gpt2::to_json(gpt2::QkEdit{0, 0, {}, "wqk_pca k=3"}).contains("target"));
  EXPECT_THROW(gpt2::qk_edit_from_json(json{{"layer", -1}, {"head", 0}}), std::invalid_argument);
  EXPECT_THROW(gpt2::qk_edit_from_json(json::array()), std::invalid_argument);
  TempDir d;
  auto m = gpt2::load_model(write_model(d, 1), {});
  gpt2::Weights w = gpt2::weights(*m).clone();
  EXPECT_THROW(gpt2::apply_qk_edits(w, {gpt2::QkEdit{2, 0, std::vector<float>(256), ""}}), std::invalid_argument);
  EXPECT_THROW(gpt2::apply_qk_edits(w, {gpt2::QkEdit{0, 4, std::vector<float>(256), ""}}), std::invalid_argument);
  EXPECT_THROW(gpt2::apply_qk_edits(w, {gpt2::QkEdit{0, 0, std::vector<float>(255), ""}}), std::invalid_argument);
}

TEST(Exp6Reduce, SubUnitSumsNeedAnExactTiling) {
  auto unit = [](int64_t a, int64_t b, double nll, int64_t n) {
    return json{{"chunk_begin", a}, {"chunk_end", b}, {"nll_sum", nll}, {"n_tokens", n}, {"n_chunks", b - a}};
  };
  const json u1 = unit(0, 2, 10.0, 20), u2 = unit(2, 5, 5.5, 30), u3 = unit(1, 3, 1, 1), u4 = unit(3, 5, 1, 1);
  const VariantSum s = sum_units({&u2, &u1}, "v");  // any order
  EXPECT_DOUBLE_EQ(s.nll, 15.5);
  EXPECT_EQ(s.count, 50);
  EXPECT_EQ(s.n_chunks, 5);
  EXPECT_DOUBLE_EQ(s.ppl(), std::exp(15.5 / 50));
  EXPECT_THROW(sum_units({&u1, &u3}, "v"), std::runtime_error);  // overlap
  EXPECT_THROW(sum_units({&u1, &u4}, "v"), std::runtime_error);  // gap
  EXPECT_THROW(sum_units({&u2}, "v"), std::runtime_error);       // missing start
}

TEST(Exp6Family, InProcessRunProducesTheDocumentAndFigures) {
  TempDir d;
  const std::string model = write_model(d, 9);
  const std::map<std::string, std::string> params = {
      {"model", model}, {"n_layer", "2"}, {"n_head", "4"}, {"dataset", std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"},
      {"max_tokens", "1024"}, {"chunk_len", "64"}, {"chunks_per_unit", "4"}};
  const plan::Plan p = plan::make_plan({"exp6", "abc", params});
  ExecutorRegistry reg;
  register_executors(reg);
  ExecContext ctx;
  ctx.scratch_dir = (d.p / "scratch").string();
  const auto run = platform::run_plan_in_process(p, reg, ctx);
  for (const auto& [name, n] : run.reports) EXPECT_EQ(n, 1) << name;
  const json& doc = run.results.at("report");
  EXPECT_EQ(doc.at("n_heads_total"), 8);
  EXPECT_EQ(doc.at("exp6a").at("explained_variance_ratio").size(), 8u);
  EXPECT_NEAR(doc.at("exp6a").at("cumulative_variance").back().get<double>(), 1.0, 1e-12);
  EXPECT_EQ(doc.at("chunks").at("n_chunks"), 15);
  // The baseline is the engine's PPL over the same T chunks, in one call.
  auto m = gpt2::load_model(model, {});
  const Tokenizer tok = Tokenizer::default_gpt2();
  const auto ts = data::load_wikitext(std::string(SPT_TEST_DATA) + "/tiny_wiki.raw", "test", tok, false);
  const gpt2::Chunks t = data::chunk_t(ts.tokens, 1024, 64);
  ASSERT_EQ(t.size(), 15u);
  const double direct = m->nll(t, {}).ppl();
  const double base = doc.at("exp6b").at("baseline").get<double>();
  EXPECT_NEAR(base, direct, 1e-6 * direct);
  const json& kall = doc.at("exp6b").at("K_all_verification");
  EXPECT_EQ(kall.at("K"), 8);
  EXPECT_TRUE(kall.at("ok").get<bool>());
  EXPECT_LT(kall.at("abs_diff").get<double>() / base, 1e-3);
  EXPECT_EQ(doc.at("exp6b").at("K_values").size(), 5u);  // 1, 2, 3, 5, 8
  const json& c4 = doc.at("exp6c").at("k_values").at("4");
  EXPECT_EQ(c4.at("labels").size(), 8u);
  EXPECT_EQ(c4.at("n_replaced").get<int64_t>(), 8 - c4.at("n_clusters").get<int64_t>());
  EXPECT_EQ(c4.at("seed"), 42);
  EXPECT_NE(c4.at("perplexity").get<double>(), base);
  // One injection per variant: every other sub-unit of it reused the copy.
  std::map<std::string, int> built, units;
  for (const auto& [name, r] : run.results)
    if (name.find("/ppl/") != std::string::npos && r.at("variant") != "baseline") {
      ++units[r.at("variant")];
      built[r.at("variant")] += r.at("variant_cache") == "built";
    }
  EXPECT_EQ(units.size(), 6u);  // k1, k2, k3, k5, k8, cluster4
  for (const auto& [v, n] : units) {
    EXPECT_EQ(n, 4) << v;  // 15 chunks in ranges of 4
    EXPECT_EQ(built[v], 1) << v;
  }
  std::set<std::string> files;
  for (const auto& f : run.files.at("report")) files.insert(fs::path(f.path).filename().string());
  for (const char* f : {"exp6_model.json", "exp6_results_model.md", "exp6a_cumvar_model.gp",
                        "exp6b_ppl_vs_K_model.gp", "exp6c_cluster_ppl_model.gp", "exp6c_cluster_viz_model.gp"})
    EXPECT_TRUE(files.count(f)) << f;
}

}  // namespace
}  // namespace spt::exp6
