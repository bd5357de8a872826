// exp7 end to end in process on a generated GPT-2 (2 layers, d_model 32,
// real vocab and tokenizer) over tests/data/tiny_wiki.raw (chunker T,
// chunk_len 64, 15 chunks): the plan (parts, dependencies, sub-units), the
// capture against a direct forward (positions 0… of chunk 0 then chunk 1),
// 7D's summed sub-units against direct NLL computations, K = d_model as the
// identity, arrays only as artifacts, and the report files.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "exp7/arrays.h"
#include "exp7/executors.h"
#include "exp7/plan.h"
#include "platform/plan_builder.h"
#include "platform/local_run.h"
#include "platform/model_host.h"
#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"
#include "spt/job.h"
#include "spt/plan.h"
#include "spt/util.h"
#include "testmodel.h"

namespace spt::exp7 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kLayers = 2, kD = 32;

std::map<std::string, std::string> tiny_params(const std::string& model) {
  return {{"model", model},       {"n_layer", std::to_string(kLayers)},
          {"n_head", "4"},        {"dataset", std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"},
          {"max_tokens", "1000"}, {"chunk_len", "64"},
          {"max_samples", "80"},  {"ks", "4,8,32"},
          {"recon_ks", "2,4,8"},  {"chunks_per_unit", "4"}};
}

TEST(Exp7Plan, PartsUnitsAndErrors) {
  EXPECT_EQ(plan::t_chunk_count(200000, 1024), 195);  // T200K (spec §2.1)
  EXPECT_EQ(plan::t_chunk_count(2048, 1024), 1);      // N − L a multiple of L: the last full chunk dropped
  EXPECT_EQ(plan::t_chunk_count(1000, 64), 15);
  EXPECT_EQ(plan::t_chunk_count(64, 64), 0);
  const auto p = plan::make_plan({"exp7", "d", tiny_params("./m")});
  EXPECT_EQ(p.parts, "abcd");
  std::map<std::string, int> kinds;
  for (const auto& j : p.jobs) ++kinds[j.kind];
  // 7 variants (baseline, 3 individual, 3 shared) × 4 chunk ranges of 15 chunks.
  EXPECT_EQ(kinds["exp7.ppl"], 28);
  EXPECT_EQ(kinds["exp7.capture"], 1);
  EXPECT_EQ(kinds["exp7.reduce"], kLayers + 1 + 1);
  for (const auto& j : p.jobs) EXPECT_EQ(j.mem_bytes == 0, j.kind == "exp7.reduce") << j.name;
  const auto full = plan::make_plan({"exp7", "", tiny_params("./m")});
  EXPECT_EQ(full.parts, "abcde");
  EXPECT_EQ(plan::make_plan({"exp7", "e", tiny_params("./m")}).parts, "e");
  const auto gpt2 = plan::make_plan({"exp7", "d", {}});  // defaults: T200K, 13 chunks per unit
  int ppl = 0;
  for (const auto& j : gpt2.jobs) ppl += j.kind == "exp7.ppl";
  EXPECT_EQ(ppl, 17 * 15);
  // Two models: each gets its own units under "<label>/", inputs named in full.
  auto two = tiny_params("./m1");
  two["model"] = "./m1,./m2";
  two["n_layer"] = "2,3";
  two["n_head"] = "4,4";
  const auto pm = plan::make_plan({"exp7", "d", two});
  std::set<std::string> names;
  for (const auto& j : pm.jobs) names.insert(j.name);
  EXPECT_TRUE(names.count("m1/b/pca/1") && names.count("m2/b/pca/2") && !names.count("m1/b/pca/2"));
  for (const auto& j : pm.jobs)
    if (j.name == "m2/d/ppl/individual/8/c000-004") {
      EXPECT_EQ(j.params.at("scope"), "m2/");
      EXPECT_EQ(j.deps, (std::vector<std::string>{"m2/b/pca/0", "m2/b/pca/1", "m2/b/pca/2"}));
    }
  EXPECT_TRUE(names.count("m2/d/ppl/individual/8/c000-004"));
  EXPECT_THROW(plan::make_plan({"exp7", "x", {}}), plan::PlanError);
  EXPECT_THROW(plan::make_plan({"exp7", "a", {{"ks", "8,zero"}}}), plan::PlanError);
  EXPECT_THROW(plan::make_plan({"exp7", "d", {{"max_tokens", "1000"}, {"chunk_len", "1024"}}}), plan::PlanError);
}

class Exp7Family : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("spt_exp7_family_" + std::to_string(::getpid())));
    gpt2::TestModelSpec spec;
    spec.n_layer = kLayers;
    spec.n_head = 4;
    spec.d_model = kD;
    spec.n_ctx = 128;
    spec.seed = 21;
    spec.std = 0.1f;
    gpt2::write_test_model(model_dir(), spec);
    ExecutorRegistry reg;
    register_executors(reg);
    ExecContext ctx;
    ctx.scratch_dir = (*dir_ / "scratch").string();
    const auto p = plan::make_plan({"exp7", "", tiny_params(model_dir())});
    run_ = new platform::LocalRun(platform::run_plan_in_process(p, reg, ctx));
    // The chunk set as the executors saw it, through the same host.
    const json jp = {{"model", model_dir()},
                     {"dataset", std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"},
                     {"split", "test"},
                     {"max_tokens", 1000},
                     {"chunk_len", 64}};
    auto& host = platform::shared_model_host();
    lm_ = host.model_for(jp, ctx);
    cs_ = host.chunks_for(platform::ChunkKey::from_params(jp), *lm_, ctx);
  }
  static void TearDownTestSuite() {
    delete run_;
    lm_.reset();
    cs_.reset();
    if (!std::getenv("SPT_TEST_KEEP")) fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string model_dir() { return (*dir_ / "tiny-gpt2").string(); }
  static const json& doc() { return run_->results.at("report"); }

  static fs::path* dir_;
  static platform::LocalRun* run_;
  static std::shared_ptr<platform::LoadedModel> lm_;
  static std::shared_ptr<const platform::ChunkSet> cs_;
};
fs::path* Exp7Family::dir_ = nullptr;
platform::LocalRun* Exp7Family::run_ = nullptr;
std::shared_ptr<platform::LoadedModel> Exp7Family::lm_;
std::shared_ptr<const platform::ChunkSet> Exp7Family::cs_;

TEST_F(Exp7Family, CaptureIsTheFirstPositionsOfChunkZeroThenOne) {
  ASSERT_EQ(cs_->chunks.size(), 15u);
  const auto& files = run_->files.at("a/capture");
  ASSERT_EQ(files.size(), 1u);
  const F32Array a = read_f32(files[0].path);
  ASSERT_EQ(a.shape, (std::vector<int64_t>{kLayers, 80, kD}));
  EXPECT_EQ(run_->results.at("a/capture").at("artifact").at("shape"), json(a.shape));
  gpt2::RunOptions o;
  o.logits = false;
  for (int l = 0; l < kLayers; ++l) {
    o.cache.insert(gpt2::hook_name(l, "hook_resid_pre"));
    o.cache.insert(gpt2::hook_name(l, "hook_resid_post"));
  }
  double max_diff = 0, scale = 0;
  for (int c = 0; c < 2; ++c) {
    const auto r = gpt2::run(*lm_->model, gpt2::tokens_tensor(cs_->chunks[c]), o);
    for (int l = 0; l < kLayers; ++l) {
      const at::Tensor d =
          (r.cache.at(gpt2::hook_name(l, "hook_resid_post")) - r.cache.at(gpt2::hook_name(l, "hook_resid_pre")))[0];
      for (int t = 0; t < (c == 0 ? 64 : 16); ++t)
        for (int i = 0; i < kD; ++i) {
          const double want = d[t][i].item<double>();
          const double got = a.data[(l * 80 + c * 64 + t) * kD + i];
          max_diff = std::max(max_diff, std::abs(got - want));
          scale = std::max(scale, std::abs(want));
        }
    }
  }
  EXPECT_GT(scale, 0);
  EXPECT_LE(max_diff, 1e-6 * scale);
  EXPECT_LE(run_->results.at("a/capture").at("max_abs_dphi_minus_attn_mlp").get<double>(), 1e-5 * scale);
  // 7E's capture holds [attn, mlp] × blocks at the same positions.
  EXPECT_EQ(read_f32(run_->files.at("e/capture").at(0).path).shape, (std::vector<int64_t>{2, kLayers, 80, kD}));
}

TEST_F(Exp7Family, ProjectedPerplexityEqualsDirectComputation) {
  const json& d = doc().at("exp7d");
  EXPECT_EQ(d.at("n_chunks"), 15);
  const gpt2::NllSum base = lm_->model->nll(cs_->chunks, {});
  EXPECT_EQ(d.at("n_tokens").get<int64_t>(), base.count);
  EXPECT_NEAR(d.at("baseline").get<double>(), base.ppl(), 1e-6 * base.ppl());
  // K = d_model: a complete basis, the identity up to rounding.
  EXPECT_NEAR(d.at("individual").at("32").at("ratio").get<double>(), 1.0, 1e-5);
  EXPECT_NEAR(d.at("shared").at("32").at("ratio").get<double>(), 1.0, 1e-5);
  // K = 4 with block b's own basis (from its basis artifact), over all chunks at once.
  gpt2::Variant v;
  for (int l = 0; l < kLayers; ++l) {
    const auto& f = run_->files.at("b/pca/" + std::to_string(l));
    ASSERT_EQ(f.size(), 1u);
    const F32Array b = read_f32(f[0].path);
    ASSERT_EQ(b.shape, (std::vector<int64_t>{1 + kD, kD}));
    gpt2::ResidualProjection p;
    p.layer = l;
    p.k = 4;
    p.mean.assign(b.data.begin(), b.data.begin() + kD);
    p.basis.assign(b.data.begin() + kD, b.data.begin() + 5 * kD);
    v.projections.push_back(p);
  }
  const double want = lm_->model->nll(cs_->chunks, v).ppl();
  EXPECT_NEAR(d.at("individual").at("4").at("perplexity").get<double>(), want, 1e-6 * want);
  EXPECT_GT(std::abs(want / base.ppl() - 1), 1e-3);
}

TEST_F(Exp7Family, DocumentHasEveryPartAndArraysOnlyAsArtifacts) {
  const json& D = doc();
  for (const char* k : {"exp7a", "exp7b", "exp7c", "exp7d", "exp7e"}) EXPECT_TRUE(D.contains(k)) << k;
  EXPECT_EQ(D.at("d_model"), kD);
  EXPECT_EQ(D.at("exp7a").at("n_samples"), 80);
  EXPECT_EQ(D.at("exp7b").at("thresholds").size(), static_cast<size_t>(kLayers));
  for (const char* t : {"0.5", "0.8", "0.9", "0.95"}) {
    const int64_t k = D.at("exp7b").at("thresholds").at("1").at(t).get<int64_t>();
    EXPECT_GE(k, 1);
    EXPECT_LE(k, kD);
  }
  EXPECT_EQ(D.at("exp7c").at("eval").size(), 3u);
  EXPECT_EQ(D.at("exp7e").at("ffn_thresholds").size(), static_cast<size_t>(kLayers));
  // Reconstruction improves with K.
  const json& ev = D.at("exp7c").at("eval");
  EXPECT_LT(ev.at("8").at("0").at("relative_l2").get<double>(), ev.at("2").at("0").at("relative_l2").get<double>());
  for (const auto& [name, r] : run_->results) EXPECT_LT(r.dump().size(), 32000u) << name;
  std::set<std::string> names;
  for (const auto& f : run_->files.at("report")) {
    names.insert(f.name);
    if (f.name.rfind("exp7_results_", 0) == 0) {
      const std::string md = read_file(f.path);
      EXPECT_NE(md.find("RANDOM WEIGHTS"), std::string::npos);
      EXPECT_NE(md.find("| block | ‖Δφ‖ mean |"), std::string::npos);
      EXPECT_NE(md.find("| K | individual PPL | ratio | shared PPL | ratio |"), std::string::npos);
    }
  }
  for (const std::string f : {"exp7_", "exp7_results_", "exp7b_cumvar_per_layer_", "exp7c_shared_vs_individual_",
                              "exp7d_ppl_vs_K_", "exp7e_attn_vs_ffn_cumvar_"}) {
    bool found = false;
    for (const auto& n : names) found |= n.rfind(f, 0) == 0;
    EXPECT_TRUE(found) << f;
  }
}

}  // namespace
}  // namespace spt::exp7
