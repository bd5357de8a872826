// Memory-aware scheduling and numerics canaries through real processes on
// loopback: spt-server, spt-worker (with --memory and the test-only
// SPT_CANARY_PERTURB switch) and spt-client.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "harness.h"

namespace spt::test {
namespace {

using nlohmann::json;

// spt-client <args> against `s`; exit code checked, stdout returned.
std::string client(Server& s, std::vector<std::string> args) {
  args.insert(args.begin(), client_bin());
  const auto r = run(args, {{"SPT_SERVER", s.address()}, {"SPT_TOKEN_FILE", s.token_file()}});
  EXPECT_EQ(r.code, 0) << r.err;
  return r.out;
}

// Every "leased by <name>" / "done by <name>" of a job.
std::vector<std::string> events_by(Server& s, int64_t id, const std::string& job, const std::string& event) {
  std::vector<std::string> out;
  const v1::LogsResponse logs = job_logs(s, id, job);
  for (const auto& e : logs.events())
    if (e.event() == event) out.push_back(e.detail());
  return out;
}

TEST(Sched, TooBigForEveryWorkerIsShownThenABiggerWorkerTakesIt) {
  TempDir dir;
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto small = start_worker(dir, server.address(), server.token(), {.name = "small", .extra = {"--memory", "1G"}});
  ASSERT_TRUE(wait_until([&] { return worker_named(server, "small").has_value(); }, 30)) << small->log();
  EXPECT_EQ(worker_named(server, "small")->capabilities().memory_bytes(), int64_t{1} << 30);
  // Map jobs planned as if on gpt2-xl (~7.7 GB); the reduce needs nothing.
  const int n = 4;
  const int64_t id = submit(server, "selftest", {{"n", std::to_string(n)}, {"footprint_model", "gpt2-xl"}});
  // The small worker never takes them; status says why, in JSON and for humans.
  ASSERT_TRUE(wait_until(
      [&] {
        const json st = json::parse(client(server, {"status", "--json"}), nullptr, false);
        return st.contains("unschedulable") && st["unschedulable"].size() == 1;
      },
      20));
  const json st = json::parse(client(server, {"status", "--json"}));
  const json& u = st["unschedulable"][0];
  EXPECT_EQ(u["experiment_id"], id);
  EXPECT_EQ(u["n_jobs"], n);
  EXPECT_GT(u["mem_bytes"].get<int64_t>(), int64_t{7'000'000'000});
  EXPECT_EQ(u["largest_worker_bytes"], int64_t{1} << 30);
  const std::string reason = u["reason"];
  EXPECT_NE(reason.find("largest live worker has 1.0 GiB"), std::string::npos) << reason;
  const std::string human = client(server, {"status"});
  EXPECT_NE(human.find("UNSCHEDULABLE " + std::to_string(n) + " pending jobs"), std::string::npos) << human;
  EXPECT_NE(human.find(reason), std::string::npos) << human;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(experiment_status(server, id).counts().done(), 0);
  EXPECT_EQ(experiment_status(server, id).counts().pending(), n);

  // A worker that can hold them joins and takes every one.
  auto big = start_worker(dir, server.address(), server.token(), {.name = "big", .extra = {"--memory", "64G"}});
  const auto fin = wait_finished(server, id, 60);
  ASSERT_EQ(fin.state(), "done") << big->log();
  for (int i = 0; i < n; ++i) {
    const auto leased = events_by(server, id, "map/" + std::to_string(i), "leased");
    ASSERT_EQ(leased.size(), 1u);
    EXPECT_EQ(leased[0].rfind("by big ", 0), 0u) << leased[0];
  }
  const json after = json::parse(client(server, {"status", "--json"}));
  EXPECT_TRUE(after["unschedulable"].empty()) << after.dump();
  const std::string workers = client(server, {"workers"});
  EXPECT_NE(workers.find("64.0 GiB"), std::string::npos) << workers;
}

TEST(Sched, FailingCanaryQuarantinesAndLeasedJobsGoElsewhere) {
  TempDir dir;
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  const std::string perturb = dir.file("perturb");
  auto a = start_worker(dir, server.address(), server.token(),
                        {.name = "wa", .slots = 1, .batch = 4, .extra = {"--canary-every-s", "0.3"},
                         .env = {{"SPT_CANARY_PERTURB", "0.5@" + perturb}}});
  ASSERT_TRUE(wait_until([&] { return worker_named(server, "wa").has_value(); }, 30)) << a->log();
  const auto wa = *worker_named(server, "wa");
  if (wa.canaries_size() == 0) GTEST_SKIP() << "this spt-worker has no canary (built without LibTorch)";
  for (const auto& c : wa.canaries()) {
    EXPECT_TRUE(c.pass()) << c.DebugString();
    EXPECT_EQ(c.unit(), "canary-v1");
  }
  EXPECT_EQ(wa.quarantined(), "");

  // Four jobs that stall 3 s on their first attempt: wa leases them all.
  const int n = 4;
  const int64_t id = submit(server, "selftest",
                            {{"n", std::to_string(n)}, {"stall", "1"}, {"stall_s", "3"}, {"seed", "5"}});
  ASSERT_TRUE(wait_until([&] { return worker_named(server, "wa")->current_job_ids_size() == n; }, 20)) << a->log();
  // Its device starts computing wrong numbers.
  std::ofstream(perturb) << "on\n";
  ASSERT_TRUE(wait_until([&] { return !worker_named(server, "wa")->quarantined().empty(); }, 10)) << a->log();
  const auto q = *worker_named(server, "wa");
  EXPECT_EQ(q.current_job_ids_size(), 0);  // its leases were released
  EXPECT_NE(q.quarantined().find("drifted"), std::string::npos) << q.quarantined();
  bool failed_fp32 = false;
  for (const auto& c : q.canaries()) failed_fp32 |= c.precision() == "fp32" && !c.pass() && c.abs_diff() > 0.4;
  EXPECT_TRUE(failed_fp32) << q.DebugString();
  const std::string table = client(server, {"workers"});
  EXPECT_NE(table.find("QUARANTINED"), std::string::npos) << table;
  EXPECT_NE(table.find("fp32 FAIL"), std::string::npos) << table;

  // A healthy worker takes the jobs (one per lease, so its slots run them
  // side by side); the quarantined one finishes none.
  auto b = start_worker(dir, server.address(), server.token(), {.name = "wb", .slots = n, .batch = 1});
  const auto fin = wait_finished(server, id, 60);
  ASSERT_EQ(fin.state(), "done") << b->log();
  for (int i = 0; i < n; ++i) {
    const std::string job = "map/" + std::to_string(i);
    const auto done = events_by(server, id, job, "done");
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].rfind("by wb ", 0), 0u) << done[0];
    bool released = false;
    for (const auto& d : events_by(server, id, job, "released")) released |= d.find("quarantined") != std::string::npos;
    EXPECT_TRUE(released) << job;
    // The result carries the canary of the device that computed it.
    const json r = json::parse(job_logs(server, id, job).job().result_json());
    ASSERT_TRUE(r.contains("provenance") && r["provenance"].contains("canary")) << r.dump();
    const json& c = r["provenance"]["canary"];
    EXPECT_EQ(c["unit"], "canary-v1");
    EXPECT_EQ(c["precision"], "fp32");
    EXPECT_TRUE(c["pass"].get<bool>());
    EXPECT_LE(c["abs_diff"].get<double>(), c["tolerance"].get<double>());
  }
  EXPECT_EQ(worker_named(server, "wa")->jobs_done(), 0);
}

}  // namespace
}  // namespace spt::test
