// The π family through the real runner: spt-server and two spt-worker
// processes on loopback, two generated models of different depth. exp9
// (all parts) must equal the in-process run of the same plan; a repeat of
// exp8 C on one model is answered from the store for the shared rotation
// unit (exp9 B planned it under the same name and params).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "harness.h"
#include "pi/executors.h"
#include "platform/local_run.h"
#include "sigma/executors.h"
#include "spt/plan.h"
#include "testmodel.h"

namespace spt::test {
namespace {

using nlohmann::json;

std::map<std::string, std::string> write_models(const TempDir& dir) {
  gpt2::TestModelSpec spec;
  spec.n_layer = 4;
  spec.n_head = 4;
  spec.d_model = 64;
  spec.seed = 31;
  spec.std = 0.08f;
  gpt2::write_test_model(dir.file("pi-a"), spec);
  spec.n_layer = 6;
  spec.seed = 32;
  gpt2::write_test_model(dir.file("pi-b"), spec);
  return {{"model", dir.file("pi-a") + "," + dir.file("pi-b")},
          {"n_layer", "4,6"},
          {"n_head", "4,4"},
          {"dataset", std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"},
          {"chunk_len", "64"},
          {"max_samples", "32"}};
}

std::map<std::string, json> in_process(const plan::Plan& p, const std::string& scratch) {
  ExecutorRegistry reg;
  spt::sigma::register_executors(reg);
  spt::pi::register_executors(reg);
  ExecContext ctx;
  ctx.scratch_dir = scratch;
  return spt::platform::run_plan_in_process(p, reg, ctx).results;
}

TEST(PiRunner, Exp9OnTwoWorkersMatchesInProcessRun) {
  TempDir dir;
  const auto params = write_models(dir);
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .batch = 16});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .batch = 16});
  const int64_t id = submit_parts(server, "exp9", "", params).experiment_id();
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log() << "\n" << server.process()->log();
  const auto plan = plan::make_plan({"exp9", "", params});
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));

  const auto R = reduce_results(server, id);
  const auto local = in_process(plan, dir.file("scratch"));
  // Probes batch prompts differently on each side: fp32 round-off only.
  for (const char* m : {"pi-a", "pi-b"}) {
    const std::string a = std::string("exp9/") + m + "/a";
    ASSERT_TRUE(R.count(a)) << a;
    EXPECT_NEAR(R.at(a).at("sigma_free").get<double>(), local.at(a).at("sigma_free").get<double>(), 1e-4) << m;
    EXPECT_EQ(R.at(a).at("source"), "exp3ef");
    const std::string c = std::string("exp9/") + m + "/c";
    EXPECT_NEAR(R.at(c).at("cos_pi_0p").at("bic").get<double>(), local.at(c).at("cos_pi_0p").at("bic").get<double>(), 1e-3);
  }
  const json& conv = R.at("exp9/convergence").at("convergence");
  EXPECT_NEAR(conv.at("linear_intercept").get<double>(),
              local.at("exp9/convergence").at("convergence").at("linear_intercept").get<double>(), 1e-3);
  EXPECT_TRUE(conv.at("ci_95_lower").is_null());  // two models: no degrees of freedom for a CI
  const json& b = R.at("exp9/b");
  for (const char* m : {"pi-a", "pi-b"})
    EXPECT_NEAR(b.at("models").at(m).at("cumulative_mean").get<double>(),
                local.at("exp9/b").at("models").at(m).at("cumulative_mean").get<double>(), 1e-4);
  std::set<std::string> artifacts;
  const v1::ResultsResponse res = results(server, id);
  for (const auto& a : res.artifacts()) artifacts.insert(a.name());
  for (const char* f : {"exp9_convergence.json", "exp9_results.md", "exp9_part_a_pi-a.json", "exp9_part_b_pi-b.json",
                        "exp3ef_pi-b.json", "exp9b_theta_scaling.gp"})
    EXPECT_TRUE(artifacts.count(f)) << f;

  // exp8 C on one model: its WikiText rotation unit is exp9 B's, reused.
  std::map<std::string, std::string> one = params;
  one["model"] = dir.file("pi-a");
  one["n_layer"] = "4";
  one["n_head"] = "4";
  const auto again = submit_parts(server, "exp8", "c", one);
  EXPECT_EQ(again.n_jobs(), 4);  // wikitext + prompts rotation units, exp8/pi-a, exp8/report
  EXPECT_EQ(again.n_reused(), 1);
  ASSERT_EQ(wait_finished(server, again.experiment_id(), 120).state(), "done");
}

}  // namespace
}  // namespace spt::test
