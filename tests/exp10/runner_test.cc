// exp10 through the real runner: spt-server and two spt-worker processes on
// loopback, a tiny generated model. The distributed results must agree with
// an in-process run of the same plan, reports and figures must come back as
// artifacts, and a worker SIGKILLed during part A must not lose or repeat
// any head.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "client/connection.h"
#include "exp10/common.h"
#include "exp10/executors.h"
#include "exp10/local_run.h"
#include "exp10/orders.h"
#include "harness.h"
#include "report/gnuplot.h"
#include "sigma/executors.h"
#include "spt/plan.h"
#include "testmodel.h"

namespace spt::test {
namespace {

using nlohmann::json;
using spt::exp10::head_name;

std::map<std::string, std::string> tiny_params(const std::string& model, int layers, int heads, int max_tokens) {
  return {{"model", model},
          {"n_layer", std::to_string(layers)},
          {"n_head", std::to_string(heads)},
          {"dataset", std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"},
          {"max_tokens", std::to_string(max_tokens)},
          {"chunk_len", "64"}};
}

// exp10a tables agree to rounding plus fp32 summation-order noise.
void expect_same_table(const json& got, const json& want) {
  ASSERT_EQ(got.at("results").size(), want.at("results").size());
  EXPECT_NEAR(got.at("baseline_ppl").get<double>(), want.at("baseline_ppl").get<double>(),
              1.01e-4 + 1e-6 * want.at("baseline_ppl").get<double>());
  std::set<std::string> seen;
  for (size_t i = 0; i < want.at("results").size(); ++i) {
    const json& g = got.at("results")[i];
    const json& w = want.at("results")[i];
    EXPECT_EQ(g.at("layer"), w.at("layer"));
    EXPECT_EQ(g.at("head"), w.at("head"));
    EXPECT_TRUE(seen.insert(head_name(g.at("layer").get<int>(), g.at("head").get<int>())).second);
    EXPECT_NEAR(g.at("delta_ppl").get<double>(), w.at("delta_ppl").get<double>(), 2.01e-6) << i;
  }
}

class Exp10Runner : public ::testing::Test {
 protected:
  json in_process(const plan::Plan& p, const std::string& job, const std::string& scratch) {
    ExecutorRegistry reg;
    spt::exp10::register_executors(reg);
    spt::sigma::register_executors(reg);  // the exp3 + exp3ef sub-graph 10D reads
    ExecContext ctx;
    ctx.scratch_dir = scratch;
    const auto run = spt::exp10::run_plan_in_process(p, reg, ctx);
    return run.results.at(job);
  }
};

TEST_F(Exp10Runner, AbcdOnTwoWorkersMatchesInProcessRun) {
  TempDir dir;
  const std::string model = dir.file("tiny-gpt2");
  gpt2::TestModelSpec spec;
  spec.seed = 7;
  spec.std = 0.08f;
  gpt2::write_test_model(model, spec);
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .batch = 8});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .batch = 8});
  const auto params = tiny_params(model, 2, 4, 256);
  const int64_t id = submit_parts(server, "exp10", "abcd", params).experiment_id();
  const auto st = wait_finished(server, id, 240);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log() << "\n" << server.process()->log();
  const auto plan = plan::make_plan({"exp10", "abcd", params});
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));

  const auto R = reduce_results(server, id);
  ASSERT_TRUE(R.count("a/reduce") && R.count("c/reduce") && R.count("exp10/report"));
  expect_same_table(R.at("a/reduce"), in_process(plan, "a/reduce", dir.file("scratch")));
  // Ranking and cumulative order follow from the table (checked above);
  // the report agrees with its own exp10a input.
  const auto rank = spt::exp10::ranking_desc(spt::exp10::read_head_table(R.at("a/reduce")));
  const json& ranking = R.at("exp10/report").at("exp10b").at("ranking");
  for (size_t i = 0; i < rank.size(); ++i)
    EXPECT_EQ(head_name(ranking[i].at("layer"), ranking[i].at("head")), head_name(rank[i].id()));
  EXPECT_EQ(R.at("c/reduce").at("cumulative").size(), 3u);  // steps 0, 5, 8
  // 10D reads the exp3ef job of the same graph, run by the workers (this
  // 2-layer model is too shallow for the correlation itself: exec_test).
  EXPECT_EQ(R.at("exp10/report").at("exp10d").at("g_source"), "exp3ef/tiny-gpt2");
  ASSERT_TRUE(R.count("exp3ef/tiny-gpt2"));
  EXPECT_EQ(R.at("exp3ef/tiny-gpt2").at("g_mean").size(), 3u);
  // Provenance: both workers' devices, one model hash.
  EXPECT_FALSE(R.at("exp10/report").at("provenance").contains("conflicts"));

  std::set<std::string> artifacts;
  const v1::ResultsResponse res = results(server, id);
  for (const auto& a : res.artifacts()) artifacts.insert(a.name());
  for (const char* f : {"exp10a_tiny-gpt2.json", "exp10c_tiny-gpt2.json", "exp10_tiny-gpt2.json",
                        "exp10_results_tiny-gpt2.md", "exp10b_heatmap_tiny-gpt2.gp", "exp10b_heatmap_tiny-gpt2.dat"})
    EXPECT_TRUE(artifacts.count(f)) << f;
  if (!report::find_gnuplot().empty()) EXPECT_TRUE(artifacts.count("exp10c_pareto_tiny-gpt2.png"));

  // The σ sub-graph is the exp3ef submission's: exp3ef for this model now is
  // answered from the stored results, all but its report.
  int n_sigma = 0;
  for (const auto& j : plan.jobs) n_sigma += j.kind.rfind("sigma.", 0) == 0;
  grpc::ClientContext ctx;
  server.prepare(ctx, 60);
  v1::SubmitRequest req;
  req.set_experiment("exp3ef");
  for (const char* k : {"model", "n_layer", "n_head"}) (*req.mutable_params())[k] = params.at(k);
  v1::SubmitResponse resp;
  ASSERT_TRUE(server.control().Submit(&ctx, req, &resp).ok());
  EXPECT_GT(n_sigma, 0);
  EXPECT_EQ(resp.n_reused(), n_sigma);
  EXPECT_EQ(resp.n_jobs(), n_sigma + 1);  // + exp3ef/report
  EXPECT_EQ(wait_finished(server, resp.experiment_id(), 60).state(), "done");
}

TEST_F(Exp10Runner, MeanLinearAndValidationPartsMatchInProcessRun) {
  TempDir dir;
  const std::string model = dir.file("tiny-gpt2");
  gpt2::TestModelSpec spec;
  spec.seed = 11;
  spec.std = 0.08f;
  gpt2::write_test_model(model, spec);
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .batch = 8});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .batch = 8});
  auto params = tiny_params(model, 2, 4, 256);
  params["v_max_tokens"] = "512";
  const int64_t id = submit_parts(server, "exp10", "fhlv", params).experiment_id();
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log();
  const auto plan = plan::make_plan({"exp10", "fhlv", params});
  EXPECT_EQ(plan.parts, "aefhijklv");
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));

  ExecutorRegistry reg;
  spt::exp10::register_executors(reg);
  spt::sigma::register_executors(reg);
  ExecContext ctx;
  ctx.scratch_dir = dir.file("scratch");
  const auto local = spt::exp10::run_plan_in_process(plan, reg, ctx).results;
  const auto R = reduce_results(server, id);
  expect_same_table(R.at("e/reduce"), local.at("e/reduce"));
  EXPECT_EQ(R.at("j/reduce").at("best_method"), local.at("j/reduce").at("best_method"));
  EXPECT_EQ(R.at("j/reduce").at("method_counts_mixed"), local.at("j/reduce").at("method_counts_mixed"));
  EXPECT_EQ(R.at("h/reduce").at("harmful_zero"), local.at("h/reduce").at("harmful_zero"));
  EXPECT_NEAR(R.at("h/reduce").at("joint_zero_delta").get<double>(),
              local.at("h/reduce").at("joint_zero_delta").get<double>(), 2.01e-6);
  EXPECT_NEAR(R.at("k/reduce").at("cumulative_best").back().at("ratio").get<double>(),
              local.at("k/reduce").at("cumulative_best").back().at("ratio").get<double>(), 1.01e-4);
  EXPECT_EQ(R.at("l/reduce").at("seq_lengths"), local.at("l/reduce").at("seq_lengths"));
  const double pf = local.at("v/reduce").at("ppl_full").get<double>();
  EXPECT_NEAR(R.at("v/reduce").at("ppl_full").get<double>(), pf, 1.01e-4 + 1e-6 * pf);
  EXPECT_EQ(R.at("v/reduce").at("n_chunks"), 8);
  EXPECT_EQ(R.at("v/reduce").at("v5_comparison").at("thresholds_2k"),
            local.at("v/reduce").at("v5_comparison").at("thresholds_2k"));
  for (const char* r : {"exp10b/report", "exp10c/report", "v/reduce", "f/reduce"}) EXPECT_TRUE(R.count(r)) << r;
  std::set<std::string> artifacts;
  const v1::ResultsResponse res = results(server, id);
  for (const auto& a : res.artifacts()) artifacts.insert(a.name());
  for (const char* f : {"exp10b_results_tiny-gpt2.md", "exp10c_results_tiny-gpt2.md", "exp10d_results_tiny-gpt2.md",
                        "exp10v_validation_tiny-gpt2.json", "exp10l_cost_estimate_tiny-gpt2.json"})
    EXPECT_TRUE(artifacts.count(f)) << f;
}

TEST_F(Exp10Runner, WorkerKilledDuringPartAStillEvaluatesEveryHeadOnce) {
  TempDir dir;
  const std::string model = dir.file("small-gpt2");
  gpt2::TestModelSpec spec;
  spec.n_layer = 3;
  spec.n_head = 8;
  spec.d_model = 128;
  spec.seed = 3;
  gpt2::write_test_model(model, spec);
  Server server(dir, {.lease_ttl_ms = 1500, .heartbeat_ms = 300});
  ASSERT_TRUE(server.start()) << server.process()->log();
  const auto params = tiny_params(model, 3, 8, 512);
  const int64_t id = submit_parts(server, "exp10", "a", params).experiment_id();
  auto victim = start_worker(dir, server.address(), server.token(), {.name = "victim", .batch = 3});
  std::optional<v1::WorkerInfo> seen;
  ASSERT_TRUE(wait_until(
      [&] {
        seen = worker_named(server, "victim");
        if (!seen) return false;
        for (const auto& n : seen->current_job_names())
          if (n.rfind("a/head/", 0) == 0) return true;
        return false;
      },
      60))
      << victim->log();
  victim->signal(SIGKILL);
  ASSERT_TRUE(victim->wait(10).has_value());
  const std::set<int64_t> orphaned(seen->current_job_ids().begin(), seen->current_job_ids().end());
  ASSERT_FALSE(orphaned.empty());

  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .batch = 4});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .batch = 4});
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log();
  const auto plan = plan::make_plan({"exp10", "a", params});
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));
  EXPECT_EQ(st.counts().failed(), 0);
  expect_redone(server, orphaned);
  // Every head exactly once in the table, equal to an undisturbed run.
  const auto R = reduce_results(server, id);
  ASSERT_TRUE(R.count("a/reduce"));
  EXPECT_EQ(R.at("a/reduce").at("results").size(), 24u);
  expect_same_table(R.at("a/reduce"), in_process(plan, "a/reduce", dir.file("scratch")));
}

TEST_F(Exp10Runner, PhaseThreeOnTwoWorkersReproducesSeedsAndRunsTimingAlone) {
  // Part p through the real runner: P3's recorded seeds give the same tokens
  // on whichever worker ran them as in process, and the coordinator ran each
  // exclusive P1 unit alone (leased by itself, as its lease event says).
  TempDir dir;
  const std::string model = dir.file("tiny-gpt2");
  gpt2::TestModelSpec spec;
  spec.n_layer = 2;
  spec.n_head = 4;
  spec.seed = 13;
  spec.std = 0.08f;
  gpt2::write_test_model(model, spec);
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .slots = 2, .batch = 8});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .slots = 2, .batch = 8});
  auto params = tiny_params(model, 2, 4, 256);
  for (const auto& [k, v] : std::map<std::string, std::string>{{"exp3ef", "none"},
                                                               {"v_max_tokens", "512"},
                                                               {"p1_prompt_len", "8"},
                                                               {"p1_new_tokens", "8"},
                                                               {"p1_runs", "2"},
                                                               {"p_prompt_len", "16"},
                                                               {"p_new_tokens", "6"},
                                                               {"p_iterations", "2"},
                                                               {"p_prompts", "3"},
                                                               {"p3_candidates", "3"},
                                                               {"p4_max_tokens", "256"},
                                                               {"p4_chunk_lens", "32,64"}})
    params[k] = v;
  const int64_t id = submit_parts(server, "exp10", "p", params).experiment_id();
  const auto st = wait_finished(server, id, 300);
  ASSERT_EQ(st.state(), "done") << w1->log() << "\n" << w2->log();
  const auto plan = plan::make_plan({"exp10", "p", params});
  EXPECT_EQ(st.counts().done(), static_cast<int64_t>(plan.jobs.size()));

  ExecutorRegistry reg;
  spt::exp10::register_executors(reg);
  ExecContext ctx;
  ctx.scratch_dir = dir.file("scratch");
  const auto local = spt::exp10::run_plan_in_process(plan, reg, ctx).results;
  int compared = 0;
  for (const auto& spec_job : plan.jobs) {
    if (spec_job.name.rfind("p/best/", 0) != 0 && spec_job.name.rfind("p/speed/", 0) != 0) continue;
    const v1::LogsResponse resp = job_logs(server, id, spec_job.name);
    const json got = json::parse(resp.job().result_json());
    if (spec_job.name.rfind("p/best/", 0) == 0) {
      EXPECT_EQ(got.at("candidates"), local.at(spec_job.name).at("candidates")) << spec_job.name;
      ++compared;
    } else {
      bool alone = false;
      for (const auto& e : resp.events()) alone = alone || e.detail().find("exclusive") != std::string::npos;
      EXPECT_TRUE(alone) << spec_job.name << " was not leased as an exclusive job";
    }
  }
  EXPECT_EQ(compared, 9);  // 3 conditions x 3 prompts
}

}  // namespace
}  // namespace spt::test
