// Issue 12 through real processes on loopback: a job whose spt-worker is
// SIGKILLed while running it, again and again, fails saying so (with the
// workers' memory); a worker restarted under its name hands its old leases
// back at once; reduce inputs above --inline-inputs-max-bytes reach the
// real worker as a blob.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "harness.h"

namespace spt::test {
namespace {

// The id of job `name` of experiment `id`.
int64_t job_id(Server& s, int64_t id, const std::string& name) { return job_logs(s, id, name).job().job_id(); }

// Waits until worker `name`'s last heartbeat lists job `job` as running.
bool running_on(Server& s, const std::string& name, int64_t job, double timeout_s) {
  return wait_until(
      [&] {
        const auto w = worker_named(s, name);
        return w && std::count(w->running_job_ids().begin(), w->running_job_ids().end(), job) > 0;
      },
      timeout_s);
}

TEST(DyingWorkers, AJobWhoseWorkerIsKilledWhileRunningItFailsSayingSo) {
  TempDir dir;
  Server server(dir, {.lease_ttl_ms = 1500, .heartbeat_ms = 200, .max_attempts = 3, .backoff_ms = 50});
  ASSERT_TRUE(server.start()) << server.process()->log();
  // One map job that computes for seconds on every attempt.
  const int64_t id =
      submit(server, "selftest", {{"n", "1"}, {"work", "1000000000"}, {"tag", dir.path()}, {"max_attempts", "3"}});
  const int64_t map = job_id(server, id, "map/0");
  // Three workers in turn, each bigger than the last (after two deaths only
  // a bigger one may take the job), each SIGKILLed while running it.
  for (int k = 1; k <= 3; ++k) {
    const std::string name = "box-" + std::to_string(k);
    auto w = start_worker(dir, server.address(), server.token(),
                          {.name = name, .extra = {"--memory", std::to_string(k) + "G"}});
    ASSERT_TRUE(running_on(server, name, map, 60)) << w->log();
    w->signal(SIGKILL);
    ASSERT_TRUE(w->wait(10).has_value());
  }
  const auto st = wait_finished(server, id, 60);
  EXPECT_EQ(st.state(), "failed");
  const auto job = job_logs(server, id, "map/0").job();
  EXPECT_EQ(job.state(), "failed");
  EXPECT_EQ(job.error(),
            "workers box-1 (1.0 GiB), box-2 (2.0 GiB), box-3 (3.0 GiB) died while running it, 3 times: out of memory?");
}

TEST(DyingWorkers, ARestartedWorkerReleasesItsOldLeasesAtOnce) {
  TempDir dir;
  // Leases outlive the test: only the restart can hand them back in time.
  Server server(dir, {.lease_ttl_ms = 120000, .heartbeat_ms = 200});
  ASSERT_TRUE(server.start()) << server.process()->log();
  // The first attempt stalls for a minute; later ones finish at once.
  const int64_t id = submit(server, "selftest", {{"n", "1"}, {"stall", "1"}, {"stall_s", "60"}, {"tag", dir.path()}});
  const int64_t map = job_id(server, id, "map/0");
  auto w = start_worker(dir, server.address(), server.token(), {.name = "same"});
  ASSERT_TRUE(running_on(server, "same", map, 60)) << w->log();
  w->signal(SIGKILL);
  ASSERT_TRUE(w->wait(10).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  auto again = start_worker(dir, server.address(), server.token(), {.name = "same"});
  const auto st = wait_finished(server, id, 60);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60));
  EXPECT_EQ(st.state(), "done") << again->log();
  const auto logs = job_logs(server, id, "map/0");
  EXPECT_EQ(logs.job().attempt(), 2);
  bool said = false;
  for (const auto& e : logs.events())
    said |= e.event() == "died" && e.detail().find("registered again under its name") != std::string::npos;
  EXPECT_TRUE(said) << logs.DebugString();
}

TEST(DyingWorkers, LargeReduceInputsReachTheWorkerAsABlob) {
  TempDir dir;
  // Forty map results of ~250 bytes each pass 1 KiB: the reduce's inputs
  // travel as a blob; its checks (every i once, the digests) pass only if
  // the worker read them all back.
  Server server(dir, {.extra = {"--inline-inputs-max-bytes", "1024"}});
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto w = start_worker(dir, server.address(), server.token(), {.name = "w", .extra = {"--log-level", "debug"}});
  const int64_t id = submit(server, "selftest", {{"n", "40"}, {"tag", dir.path()}});
  expect_complete(server, id, 40, 120);
  EXPECT_NE(w->log().find("40 inputs ("), std::string::npos) << "the reduce's inputs did not come as a blob";
}

}  // namespace
}  // namespace spt::test
