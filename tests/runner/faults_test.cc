// Fault tolerance with real processes: a worker SIGKILLed mid-job, the
// server SIGKILLed mid-run and restarted on its database, a worker drained
// with SIGTERM.
#include <signal.h>

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "client/connection.h"
#include "harness.h"

namespace spt::test {
namespace {

TEST(Faults, KilledWorkersJobsFinishElsewhereExactlyOnce) {
  TempDir dir;
  Server server(dir, {.lease_ttl_ms = 1500, .heartbeat_ms = 300});
  ASSERT_TRUE(server.start()) << server.process()->log();
  // Every first attempt stalls 0.5 s, so the victim dies holding running jobs.
  const int64_t n = 40;
  const int64_t id = submit(server, "selftest", {{"n", "40"}, {"work", "100"}, {"stall", "1"}, {"stall_s", "0.5"}});
  auto victim = start_worker(dir, server.address(), server.token(), {.name = "victim", .slots = 2, .batch = 4});
  std::optional<v1::WorkerInfo> seen;
  ASSERT_TRUE(wait_until(
      [&] {
        seen = worker_named(server, "victim");
        return seen && seen->current_job_ids_size() > 0;
      },
      30))
      << victim->log();
  victim->signal(SIGKILL);
  ASSERT_TRUE(victim->wait(10).has_value());
  const std::set<int64_t> orphaned(seen->current_job_ids().begin(), seen->current_job_ids().end());

  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .slots = 2, .batch = 4});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .slots = 2, .batch = 4});
  expect_complete(server, id, n, 120);

  // The victim's jobs were finished by a later attempt.
  expect_redone(server, orphaned);
  const auto v = worker_named(server, "victim");
  ASSERT_TRUE(v.has_value());
  EXPECT_FALSE(v->alive());
}

TEST(Faults, ServerKilledMidRunRestartsFromItsDatabase) {
  TempDir dir;
  Server server(dir, {.lease_ttl_ms = 3000, .heartbeat_ms = 300});
  ASSERT_TRUE(server.start()) << server.process()->log();
  auto w1 = start_worker(dir, server.address(), server.token(), {.name = "w1", .slots = 2, .batch = 8});
  auto w2 = start_worker(dir, server.address(), server.token(), {.name = "w2", .slots = 2, .batch = 8});
  const int64_t n = 400;
  const int64_t id = submit(server, "selftest", {{"n", "400"}, {"work", "100"}, {"stall", "1"}, {"stall_s", "0.04"}});
  ASSERT_TRUE(wait_until([&] { return experiment_status(server, id).counts().done() >= 60; }, 60));
  server.kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(server.start()) << server.process()->log();
  expect_complete(server, id, n, 180);
  for (auto* w : {w1.get(), w2.get()}) {
    EXPECT_TRUE(w->running()) << w->log();
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait(30).value_or(-999), 0) << w->log();
  }
}

TEST(Faults, DrainedWorkerHandsLeasesBackAndExitsZero) {
  TempDir dir;
  // A long lease ttl: only Release can explain the leases coming back soon.
  Server server(dir, {.lease_ttl_ms = 120000, .heartbeat_ms = 300});
  ASSERT_TRUE(server.start()) << server.process()->log();
  const int64_t id = submit(server, "selftest", {{"n", "4"}, {"stall", "1"}, {"stall_s", "3600"}});
  auto w = start_worker(dir, server.address(), server.token(),
                        {.name = "drainee", .slots = 1, .batch = 4, .drain_timeout_s = 1});
  ASSERT_TRUE(wait_until([&] { return experiment_status(server, id).counts().leased() == 4; }, 30)) << w->log();
  w->signal(SIGTERM);
  const auto code = w->wait(30);
  ASSERT_TRUE(code.has_value()) << w->log();
  EXPECT_EQ(*code, 0) << w->log();
  const auto st = experiment_status(server, id);
  EXPECT_EQ(st.counts().leased(), 0) << st.DebugString();
  EXPECT_EQ(st.counts().pending(), 4) << st.DebugString();
  EXPECT_EQ(st.counts().failed(), 0) << st.DebugString();
}

}  // namespace
}  // namespace spt::test
