// The σ family through the real runner: spt-server and spt-worker
// processes on loopback, two generated models of different depth. A
// multi-model exp3ef must equal the in-process run of the same plan, and a
// worker SIGKILLed while it holds σ jobs must change nothing.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <map>
#include <set>

#include "client/connection.h"
#include "harness.h"
#include "platform/local_run.h"
#include "sigma/executors.h"
#include "spt/plan.h"
#include "testmodel.h"

namespace spt::test {
namespace {

using nlohmann::json;

struct TwoModels {
  std::string a, b;
  std::map<std::string, std::string> params;
};

// Models of 4 and 6 layers, so G interpolates the finer curve (7 depths)
// onto the coarser grid (5 depths).
TwoModels write_models(const TempDir& dir) {
  TwoModels m{dir.file("g-small"), dir.file("g-deep"), {}};
  gpt2::TestModelSpec spec;
  spec.n_layer = 4;
  spec.n_head = 4;
  spec.d_model = 64;
  spec.seed = 5;
  spec.std = 0.08f;
  gpt2::write_test_model(m.a, spec);
  spec.n_layer = 6;
  spec.seed = 6;
  gpt2::write_test_model(m.b, spec);
  m.params = {{"model", m.a + "," + m.b}, {"n_layer", "4,6"}, {"n_head", "4,4"}};
  return m;
}

std::map<std::string, json> in_process(const plan::Plan& p, const std::string& scratch) {
  ExecutorRegistry reg;
  spt::sigma::register_executors(reg);
  ExecContext ctx;
  ctx.scratch_dir = scratch;
  return spt::platform::run_plan_in_process(p, reg, ctx).results;
}

void expect_near_arrays(const json& got, const json& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i].get<double>(), want[i].get<double>(), tol) << what << i;
}

// Distributed and in-process documents agree to fp32 batching noise: the
// probes batch prompts differently on each side.
void expect_same_exp3ef(const json& got, const json& want) {
  expect_near_arrays(got.at("g_mean"), want.at("g_mean"), 1e-5, "g_mean");
  expect_near_arrays(got.at("g_std"), want.at("g_std"), 1e-5, "g_std");
  EXPECT_EQ(got.at("words"), want.at("words"));
  for (auto it = want.at("fmax").begin(); it != want.at("fmax").end(); ++it)
    EXPECT_NEAR(got.at("fmax").at(it.key()).get<double>(), it->get<double>(), 1e-5) << it.key();
  ASSERT_EQ(got.at("fit_order").size(), want.at("fit_order").size());
  for (const auto& name : want.at("fit_order")) {
    const std::string n = name.get<std::string>();
    EXPECT_NEAR(got.at("fits").at(n).at("r2").get<double>(), want.at("fits").at(n).at("r2").get<double>(), 1e-4) << n;
  }
}

TEST(SigmaRunner, MultiModelExp3efOnTwoWorkersMatchesInProcessRun) {
  TempDir dir;
  const TwoModels m = write_models(dir);
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .batch = 16});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .batch = 16});
  const int64_t id = submit_parts(server, "exp3ef", "", m.params).experiment_id();
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log() << "\n" << server.process()->log();
  const auto plan = plan::make_plan({"exp3ef", "", m.params});
  EXPECT_EQ(plan.parts, "efg");
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));

  const auto R = reduce_results(server, id);
  const auto local = in_process(plan, dir.file("scratch"));
  for (const char* job : {"exp3ef/g-small", "exp3ef/g-deep"}) {
    ASSERT_TRUE(R.count(job)) << job;
    expect_same_exp3ef(R.at(job), local.at(job));
  }
  const json& g = R.at("exp3ef/cross");
  EXPECT_EQ(g.at("coarse"), "g-small");
  EXPECT_EQ(g.at("fine"), "g-deep");
  for (const char* k : {"g_mean_correlation", "g_mean_rmse", "g_mean_max_diff"})
    EXPECT_NEAR(g.at(k).get<double>(), local.at("exp3ef/cross").at(k).get<double>(), 1e-4) << k;
  std::set<std::string> artifacts;
  const v1::ResultsResponse res = results(server, id);
  for (const auto& a : res.artifacts()) artifacts.insert(a.name());
  for (const char* f : {"exp3ef_g-small.json", "exp3ef_g-deep.json", "exp3g_cross_model.json", "exp3ef_results.md",
                        "exp3_g-deep.json", "exp3g_cross_model_g.gp", "exp3g_cross_model_g_1.dat"})
    EXPECT_TRUE(artifacts.count(f)) << f;

  // exp3 of one model alone: every unit but its report is answered from
  // the store (same names and params as inside the multi-model exp3ef).
  const auto again = submit_parts(server, "exp3", "", {{"model", m.a}, {"n_layer", "4"}, {"n_head", "4"}});
  EXPECT_EQ(again.n_jobs(), 4 + 80 + 4 + 1 + 1);
  EXPECT_EQ(again.n_reused(), again.n_jobs() - 1);
  ASSERT_EQ(wait_finished(server, again.experiment_id(), 120).state(), "done");
}

TEST(SigmaRunner, WorkerKilledHoldingSigmaJobsChangesNothing) {
  TempDir dir;
  const TwoModels m = write_models(dir);
  Server server(dir, {.lease_ttl_ms = 1500, .heartbeat_ms = 300});
  ASSERT_TRUE(server.start()) << server.process()->log();
  const int64_t id = submit_parts(server, "exp3ef", "", m.params).experiment_id();
  auto victim = start_worker(dir, server.address(), server.token(), {.name = "victim", .batch = 8});
  // Freeze the victim while the coordinator says it holds σ model jobs, so
  // the kill lands with leases outstanding.
  std::set<int64_t> orphaned;
  ASSERT_TRUE(wait_until(
      [&] {
        const auto w = worker_named(server, "victim");
        if (!w || w->current_job_ids().empty()) return false;
        victim->signal(SIGSTOP);
        const auto held = worker_named(server, "victim");
        if (held)
          for (int64_t j : held->current_job_ids()) orphaned.insert(j);
        if (!orphaned.empty()) return true;
        victim->signal(SIGCONT);
        return false;
      },
      60, 0.01))
      << victim->log();
  victim->signal(SIGKILL);
  ASSERT_TRUE(victim->wait(10).has_value());

  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .batch = 8});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .batch = 8});
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log();
  const auto plan = plan::make_plan({"exp3ef", "", m.params});
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));
  EXPECT_EQ(st.counts().failed(), 0);
  expect_redone(server, orphaned);
  const auto R = reduce_results(server, id);
  const auto local = in_process(plan, dir.file("scratch"));
  for (const char* job : {"exp3ef/g-small", "exp3ef/g-deep"}) expect_same_exp3ef(R.at(job), local.at(job));
  EXPECT_NEAR(R.at("exp3ef/cross").at("g_mean_rmse").get<double>(),
              local.at("exp3ef/cross").at("g_mean_rmse").get<double>(), 1e-4);
}

}  // namespace
}  // namespace spt::test
