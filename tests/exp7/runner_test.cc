// exp7 through the real runner: spt-server and two spt-worker processes on
// loopback. The Δφ capture and the PCA bases travel between jobs (and
// workers) as blob-store artifacts named by sha256 in the results; the
// document must equal the in-process run of the same plan.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "exp7/executors.h"
#include "harness.h"
#include "platform/local_run.h"
#include "spt/plan.h"
#include "testmodel.h"

namespace spt::test {
namespace {

using nlohmann::json;

TEST(Exp7Runner, TwoWorkersMatchInProcessRunAndPassArraysAsArtifacts) {
  TempDir dir;
  gpt2::TestModelSpec spec;
  spec.n_layer = 2;
  spec.n_head = 4;
  spec.d_model = 32;
  spec.n_ctx = 128;
  spec.seed = 31;
  spec.std = 0.1f;
  const std::string model = dir.file("tiny-gpt2");
  gpt2::write_test_model(model, spec);
  const std::map<std::string, std::string> params = {
      {"model", model},       {"n_layer", "2"},
      {"n_head", "4"},        {"dataset", std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"},
      {"max_tokens", "1000"}, {"chunk_len", "64"},
      {"max_samples", "48"},  {"ks", "4,32"},
      {"recon_ks", "2,8"},    {"chunks_per_unit", "5"}};

  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .batch = 8});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .batch = 8});
  const int64_t id = submit_parts(server, "exp7", "abcde", params).experiment_id();
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log() << "\n" << server.process()->log();
  const auto plan = plan::make_plan({"exp7", "abcde", params});
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));

  ExecutorRegistry reg;
  spt::exp7::register_executors(reg);
  ExecContext ctx;
  ctx.scratch_dir = dir.file("scratch");
  const auto local = platform::run_plan_in_process(plan, reg, ctx).results;
  const json& want = local.at("report");
  const auto R = reduce_results(server, id);
  ASSERT_TRUE(R.count("report"));
  const json& got = R.at("report");

  EXPECT_EQ(got.at("exp7b"), want.at("exp7b"));
  EXPECT_EQ(got.at("exp7e"), want.at("exp7e"));
  EXPECT_EQ(got.at("exp7c").at("shared_thresholds"), want.at("exp7c").at("shared_thresholds"));
  const json& gd = got.at("exp7d");
  const json& wd = want.at("exp7d");
  EXPECT_EQ(gd.at("n_tokens"), wd.at("n_tokens"));
  EXPECT_NEAR(gd.at("baseline").get<double>(), wd.at("baseline").get<double>(), 1e-6 * wd.at("baseline").get<double>());
  for (const char* kind : {"individual", "shared"})
    for (const char* k : {"4", "32"}) {
      const double w = wd.at(kind).at(k).at("perplexity").get<double>();
      EXPECT_NEAR(gd.at(kind).at(k).at("perplexity").get<double>(), w, 1e-6 * w) << kind << k;
    }
  EXPECT_NEAR(gd.at("individual").at("32").at("ratio").get<double>(), 1.0, 1e-5);
  for (const auto& [b, m] : want.at("exp7a").at("mean_norms").items())
    EXPECT_NEAR(got.at("exp7a").at("mean_norms").at(b).get<double>(), m.get<double>(), 1e-6 * m.get<double>());

  std::set<std::string> artifacts;
  const v1::ResultsResponse res = results(server, id);
  for (const auto& a : res.artifacts()) artifacts.insert(a.name());
  for (const char* f : {"exp7_7a_dphi_tiny-gpt2.f32", "exp7_7e_attn_mlp_tiny-gpt2.f32", "exp7b_basis_tiny-gpt2_b0.f32",
                        "exp7b_basis_tiny-gpt2_b1.f32", "exp7c_basis_tiny-gpt2_shared.f32", "exp7_tiny-gpt2.json",
                        "exp7_results_tiny-gpt2.md", "exp7d_ppl_vs_K_tiny-gpt2.gp"})
    EXPECT_TRUE(artifacts.count(f)) << f;
}

}  // namespace
}  // namespace spt::test
