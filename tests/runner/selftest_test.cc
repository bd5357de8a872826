// The selftest executor and the executor registry, in process.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "spt/job.h"
#include "spt/plan.h"
#include "spt/selftest.h"

namespace spt {
namespace {

nlohmann::json map_params(int64_t i, int64_t work = 10, double fail = 0, double stall = 0, double stall_s = 0,
                          int64_t n = 4, int64_t seed = 7) {
  return {{"n", n}, {"work", work}, {"fail", fail}, {"stall", stall}, {"stall_s", stall_s}, {"seed", seed}, {"i", i}};
}

JobSpec job(const std::string& kind, nlohmann::json params, int attempt = 1) {
  JobSpec j;
  j.id = 1;
  j.name = kind == "selftest.map" ? "map/" + std::to_string(params.value("i", 0)) : "reduce";
  j.kind = kind;
  j.params = std::move(params);
  j.attempt = attempt;
  return j;
}

// Runs one batch and returns outcomes in job order (asserting one per job).
std::vector<Outcome> run(Executor& ex, const std::vector<JobSpec>& jobs, ExecContext* ctx = nullptr) {
  ExecContext local;
  std::vector<Outcome> out(jobs.size());
  std::vector<int> calls(jobs.size(), 0);
  ex.run(jobs, ctx ? *ctx : local, [&](size_t i, Outcome o) {
    ++calls.at(i);
    out[i] = std::move(o);
  });
  for (int c : calls) EXPECT_EQ(c, 1);
  return out;
}

TEST(Registry, RoutesKindsAndRejectsDuplicates) {
  ExecutorRegistry reg;
  register_all_executors(reg);
  ASSERT_NE(reg.find("selftest.map"), nullptr);
  EXPECT_EQ(reg.find("selftest.map"), reg.find("selftest.reduce"));
  EXPECT_EQ(reg.find("nope"), nullptr);
  const auto kinds = reg.kinds();
  EXPECT_TRUE(std::is_sorted(kinds.begin(), kinds.end()));
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "selftest.reduce"), kinds.end());
  // The union over executors: selftest's fp32, plus exp10's when the
  // worker is built with LibTorch.
  const std::vector<std::string> want =
      reg.find("exp10.ppl") ? std::vector<std::string>{"bf16", "fp32", "tf32"} : std::vector<std::string>{"fp32"};
  EXPECT_EQ(reg.precisions(), want);
  EXPECT_THROW(reg.add(selftest::make_executor()), std::logic_error);
}

TEST(JobSpecHelpers, InputLookup) {
  JobSpec j;
  j.name = "r";
  j.inputs = {{"a/1", "k", 1}, {"b/1", "k", 2}, {"a/2", "k", 3}};
  EXPECT_EQ(j.input("b/1").result, 2);
  EXPECT_THROW(j.input("c"), std::runtime_error);
  const auto a = j.inputs_with_prefix("a/");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0]->name, "a/1");
  EXPECT_EQ(a[1]->name, "a/2");
}

TEST(Selftest, MapIsDeterministic) {
  auto ex = selftest::make_executor();
  auto a = run(*ex, {job("selftest.map", map_params(3))});
  auto b = run(*ex, {job("selftest.map", map_params(3))});
  ASSERT_TRUE(a[0].ok) << a[0].error;
  EXPECT_EQ(a[0].result, b[0].result);
  EXPECT_EQ(a[0].result["i"], 3);
  EXPECT_EQ(a[0].result["value"], 3);
  EXPECT_EQ(a[0].result["digest"], selftest::hex64(selftest::digest(7, 3, 10)));
  // More work, another digest; another seed, another digest.
  EXPECT_NE(run(*ex, {job("selftest.map", map_params(3, 11))})[0].result["digest"], a[0].result["digest"]);
  EXPECT_NE(run(*ex, {job("selftest.map", map_params(3, 10, 0, 0, 0, 4, 8))})[0].result["digest"],
            a[0].result["digest"]);
}

TEST(Selftest, FailureRateFollowsParamAndIsDeterministic) {
  auto ex = selftest::make_executor();
  std::vector<JobSpec> jobs;
  for (int i = 0; i < 400; ++i) jobs.push_back(job("selftest.map", map_params(i, 0, 0.25)));
  const auto out = run(*ex, jobs);
  int failed = 0;
  for (const auto& o : out)
    if (!o.ok) {
      ++failed;
      EXPECT_TRUE(o.retryable);
      EXPECT_NE(o.error.find("injected failure"), std::string::npos);
    }
  EXPECT_GT(failed, 60);
  EXPECT_LT(failed, 140);
  const auto again = run(*ex, jobs);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].ok, again[i].ok);
  // The decision depends on the attempt, so retries eventually succeed.
  int still_failing = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (!out[i].ok) still_failing += !run(*ex, {job("selftest.map", map_params(i, 0, 0.25), 2)})[0].ok;
  EXPECT_LT(still_failing, failed);
  EXPECT_FALSE(run(*ex, {job("selftest.map", map_params(0, 0, 1.0))})[0].ok);
}

TEST(Selftest, StallHonoursShouldStopAndOnlyHitsFirstAttempt) {
  auto ex = selftest::make_executor();
  std::atomic<bool> stop{false};
  ExecContext ctx;
  ctx.should_stop = [&] { return stop.load(); };
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  auto out = run(*ex, {job("selftest.map", map_params(0, 0, 0, 1.0, 3600))}, &ctx);
  stopper.join();
  ASSERT_FALSE(out[0].ok);
  EXPECT_NE(out[0].error.find("stopped"), std::string::npos);
  // Attempt 2 does not stall.
  out = run(*ex, {job("selftest.map", map_params(0, 0, 0, 1.0, 3600), 2)});
  EXPECT_TRUE(out[0].ok);
}

TEST(Selftest, MapRejectsMissingParams) {
  auto ex = selftest::make_executor();
  auto p = map_params(0);
  p.erase("work");
  const auto out = run(*ex, {job("selftest.map", p)});
  ASSERT_FALSE(out[0].ok);
  EXPECT_FALSE(out[0].retryable);
  EXPECT_NE(out[0].error.find("work"), std::string::npos);
}

// Map outcomes for i in [0, n) as reduce inputs.
std::vector<JobInput> map_inputs(Executor& ex, int64_t n, int64_t work = 10) {
  std::vector<JobInput> in;
  for (int64_t i = 0; i < n; ++i) {
    auto o = run(ex, {job("selftest.map", map_params(i, work, 0, 0, 0, n))});
    in.push_back({"map/" + std::to_string(i), "selftest.map", o[0].result});
  }
  return in;
}

nlohmann::json reduce_params(int64_t n, int64_t work = 10) {
  auto p = map_params(0, work, 0, 0, 0, n);
  p.erase("i");
  return p;
}

TEST(Selftest, ReduceAcceptsCompleteInputs) {
  auto ex = selftest::make_executor();
  auto r = job("selftest.reduce", reduce_params(50));
  r.inputs = map_inputs(*ex, 50);
  const auto out = run(*ex, {r});
  ASSERT_TRUE(out[0].ok) << out[0].error;
  EXPECT_EQ(out[0].result["n"], 50);
  EXPECT_EQ(out[0].result["sum"], 50 * 49 / 2);
  EXPECT_EQ(out[0].result["expected"], 50 * 49 / 2);
  EXPECT_EQ(out[0].result["ok"], true);
  EXPECT_EQ(out[0].result["digests_checked"], true);
}

TEST(Selftest, ReduceNamesWhatIsWrong) {
  auto ex = selftest::make_executor();
  auto base = job("selftest.reduce", reduce_params(20));
  base.inputs = map_inputs(*ex, 20);
  struct Case {
    const char* what;
    std::function<void(std::vector<JobInput>&)> edit;
  } cases[] = {
      {"missing", [](auto& in) { in.erase(in.begin() + 5); }},
      {"more than once", [](auto& in) { in.push_back(in[3]); }},
      {"outside", [](auto& in) { in[0].result["i"] = 20; }},
      {"wrong digest", [](auto& in) { in[2].result["digest"] = "0000000000000000"; }},
      {"no integer", [](auto& in) { in[1].result.erase("value"); }},
  };
  for (const auto& c : cases) {
    auto r = base;
    c.edit(r.inputs);
    const auto out = run(*ex, {r});
    ASSERT_FALSE(out[0].ok) << c.what;
    EXPECT_FALSE(out[0].retryable) << c.what;
    EXPECT_NE(out[0].error.find(c.what), std::string::npos) << out[0].error;
  }
  // A wrong value with a consistent set of i's shows up in the sum.
  auto r = base;
  r.inputs[4].result["value"] = 5;
  const auto out = run(*ex, {r});
  ASSERT_FALSE(out[0].ok);
  EXPECT_NE(out[0].error.find("sum"), std::string::npos) << out[0].error;
}

TEST(Selftest, PlanAndExecutorAgree) {
  plan::Request req;
  req.experiment = "selftest";
  req.params = {{"n", "30"}, {"work", "5"}, {"seed", "3"}};
  const plan::Plan p = plan::make_plan(req);
  ASSERT_EQ(p.jobs.size(), 31u);
  auto ex = selftest::make_executor();
  JobSpec reduce;
  for (const auto& j : p.jobs) {
    if (j.kind == "selftest.reduce") {
      auto inputs = std::move(reduce.inputs);
      reduce = job(j.kind, plan::job_params(p, j));
      reduce.inputs = std::move(inputs);
      continue;
    }
    auto o = run(*ex, {job(j.kind, plan::job_params(p, j))});
    ASSERT_TRUE(o[0].ok) << o[0].error;
    reduce.inputs.push_back({j.name, j.kind, o[0].result});
  }
  const auto out = run(*ex, {reduce});
  ASSERT_TRUE(out[0].ok) << out[0].error;
  EXPECT_EQ(out[0].result["sum"], 30 * 29 / 2);
}


TEST(Selftest, ExclusiveEveryMarksEveryKthMapJobAndResultsSayWhereAndWhen) {
  plan::Request req;
  req.experiment = "selftest";
  req.params = {{"n", "9"}, {"work", "5"}, {"exclusive_every", "3"}};
  const plan::Plan p = plan::make_plan(req);
  ASSERT_EQ(p.jobs.size(), 10u);
  std::vector<std::string> exclusive;
  for (const auto& j : p.jobs)
    if (j.exclusive) exclusive.push_back(j.name);
  EXPECT_EQ(exclusive, (std::vector<std::string>{"map/2", "map/5", "map/8"}));
  EXPECT_EQ(p.params["exclusive_every"], 3);

  auto ex = selftest::make_executor();
  ExecContext ctx;
  ctx.worker_name = "box";
  const auto out = run(*ex, {job("selftest.map", plan::job_params(p, p.jobs[5])),
                                job("selftest.map", plan::job_params(p, p.jobs[4]))}, &ctx);
  ASSERT_TRUE(out[0].ok && out[1].ok);
  EXPECT_EQ(out[0].result["worker"], "box");
  EXPECT_EQ(out[0].result["exclusive"], true);
  EXPECT_EQ(out[1].result["exclusive"], false);
  EXPECT_LE(out[0].result["t0"].get<double>(), out[0].result["t1"].get<double>());
  EXPECT_LE(out[0].result["t1"].get<double>(), out[1].result["t0"].get<double>());  // run one after another

  // Without the param nothing changes: no exclusive jobs, no timing in results,
  // the same params (so the same content keys) as before it existed.
  req.params = {{"n", "9"}, {"work", "5"}};
  const plan::Plan plain = plan::make_plan(req);
  for (const auto& j : plain.jobs) EXPECT_FALSE(j.exclusive) << j.name;
  EXPECT_FALSE(plain.params.contains("exclusive_every"));
  const auto o = run(*ex, {job("selftest.map", plan::job_params(plain, plain.jobs[5]))}, &ctx);
  EXPECT_FALSE(o[0].result.contains("worker"));
  req.params = {{"n", "9"}, {"exclusive_every", "-1"}};
  EXPECT_THROW(plan::make_plan(req), plan::PlanError);
}

}  // namespace
}  // namespace spt
