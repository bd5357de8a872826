// exp6's sub-units through the real runner: spt-server and spt-worker
// processes on loopback, a generated model. Three workers must produce the
// in-process document; a worker SIGKILLed while it holds PPL sub-units must
// lose none and duplicate none (the report refuses ranges that overlap or
// leave gaps, and every variant must cover all planned chunks).
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <map>
#include <set>

#include "exp6/executors.h"
#include "harness.h"
#include "platform/local_run.h"
#include "spt/plan.h"
#include "testmodel.h"

namespace spt::test {
namespace {

using nlohmann::json;

std::map<std::string, std::string> params_for(const std::string& model, int64_t per_unit) {
  return {{"model", model},
          {"n_layer", "2"},
          {"n_head", "4"},
          {"dataset", std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"},
          {"max_tokens", "1024"},
          {"chunk_len", "64"},
          {"chunks_per_unit", std::to_string(per_unit)}};
}

std::string write_model(const TempDir& dir, uint64_t seed) {
  gpt2::TestModelSpec spec;
  spec.seed = seed;
  spec.std = 0.08f;
  const std::string m = dir.file("tiny-gpt2");
  gpt2::write_test_model(m, spec);
  return m;
}

json in_process(const plan::Plan& p, const std::string& scratch) {
  ExecutorRegistry reg;
  spt::exp6::register_executors(reg);
  ExecContext ctx;
  ctx.scratch_dir = scratch;
  return spt::platform::run_plan_in_process(p, reg, ctx).results.at("report");
}

// Same sub-units, same code: the sums agree to the last bits; 1e-9 relative
// leaves room for nothing but a different summation order of the reduce.
void expect_same_document(const json& got, const json& want) {
  auto near = [](const json& g, const json& w, const std::string& what) {
    EXPECT_NEAR(g.get<double>(), w.get<double>(), 1e-9 * std::abs(w.get<double>())) << what;
  };
  near(got.at("exp6b").at("baseline"), want.at("exp6b").at("baseline"), "baseline");
  EXPECT_EQ(got.at("exp6a").at("thresholds"), want.at("exp6a").at("thresholds"));
  EXPECT_EQ(got.at("chunks").at("n_chunks"), want.at("chunks").at("n_chunks"));
  for (const char* part : {"exp6b", "exp6c"}) {
    ASSERT_EQ(got.contains(part), want.contains(part)) << part;
    if (!want.contains(part)) continue;
    const char* key = part == std::string("exp6b") ? "K_values" : "k_values";
    ASSERT_EQ(got.at(part).at(key).size(), want.at(part).at(key).size()) << part;
    for (const auto& [k, w] : want.at(part).at(key).items()) {
      const json& g = got.at(part).at(key).at(k);
      near(g.at("perplexity"), w.at("perplexity"), std::string(part) + " " + k);
      EXPECT_EQ(g.at("n_tokens"), w.at("n_tokens")) << part << " " << k;
      EXPECT_EQ(g.at("n_chunks"), want.at("chunks").at("n_chunks")) << part << " " << k;
      if (w.contains("labels")) EXPECT_EQ(g.at("labels"), w.at("labels"));  // seeded: same on every machine
    }
  }
}

TEST(Exp6Runner, SubUnitsOnThreeWorkersMatchTheInProcessRun) {
  TempDir dir;
  const std::string model = write_model(dir, 21);
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  std::vector<std::unique_ptr<Process>> ws;
  for (const char* n : {"w1", "w2", "w3"})
    ws.push_back(start_worker(dir, server.address(), server.token(), {.name = n, .batch = 4}));
  const auto params = params_for(model, 2);
  const int64_t id = submit_parts(server, "exp6", "abc", params).experiment_id();
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << ws[0]->log() << "\n" << server.process()->log();
  const auto plan = plan::make_plan({"exp6", "abc", params});
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));
  const auto R = reduce_results(server, id);
  ASSERT_TRUE(R.count("report"));
  expect_same_document(R.at("report"), in_process(plan, dir.file("scratch")));
  std::set<std::string> artifacts;
  const v1::ResultsResponse res = results(server, id);  // the loop must not outlive it
  for (const auto& a : res.artifacts()) artifacts.insert(a.name());
  for (const char* f : {"exp6_tiny-gpt2.json", "exp6_results_tiny-gpt2.md", "exp6b_ppl_vs_K_tiny-gpt2.gp"})
    EXPECT_TRUE(artifacts.count(f)) << f;
}

TEST(Exp6Runner, WorkerKilledMidRunLosesAndDuplicatesNothing) {
  TempDir dir;
  const std::string model = write_model(dir, 22);
  Server server(dir, {.lease_ttl_ms = 1500, .heartbeat_ms = 300});
  ASSERT_TRUE(server.start()) << server.process()->log();
  const auto params = params_for(model, 1);  // 15 sub-units per variant
  const int64_t id = submit_parts(server, "exp6", "ab", params).experiment_id();
  auto victim = start_worker(dir, server.address(), server.token(), {.name = "victim", .batch = 3});
  std::optional<v1::WorkerInfo> seen;
  ASSERT_TRUE(wait_until(
      [&] {
        seen = worker_named(server, "victim");
        if (!seen) return false;
        for (const auto& n : seen->current_job_names())
          if (n.rfind("b/ppl/k", 0) == 0) return true;  // holding sub-units of an injected variant
        return false;
      },
      120))
      << victim->log();
  victim->signal(SIGKILL);
  ASSERT_TRUE(victim->wait(10).has_value());
  const std::set<int64_t> orphaned(seen->current_job_ids().begin(), seen->current_job_ids().end());
  ASSERT_FALSE(orphaned.empty());

  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .batch = 4});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .batch = 4});
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log();
  const auto plan = plan::make_plan({"exp6", "ab", params});
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));
  EXPECT_EQ(st.counts().failed(), 0);
  expect_redone(server, orphaned);
  const auto R = reduce_results(server, id);
  ASSERT_TRUE(R.count("report"));
  expect_same_document(R.at("report"), in_process(plan, dir.file("scratch")));
}

}  // namespace
}  // namespace spt::test
