// spt-worker (the real binary) against an in-process fake coordinator:
// leasing, reporting, lost leases, timeouts, re-registration, outages,
// drain, and blob transfer.
#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "fake_coordinator.h"
#include "harness.h"
#include "spt/hash.h"

namespace spt::test {
namespace {

v1::Job map_job(int64_t id, nlohmann::json extra = {}) {
  nlohmann::json p = {{"n", 1000}, {"work", 10}, {"fail", 0.0}, {"stall", 0.0},
                      {"stall_s", 0.0}, {"seed", 1}, {"i", id}};
  for (auto& [k, v] : extra.items()) p[k] = v;
  v1::Job j;
  j.set_job_id(id);
  j.set_experiment_id(1);
  j.set_experiment("selftest");
  j.set_name("map/" + std::to_string(id));
  j.set_kind("selftest.map");
  j.set_params_json(p.dump());
  return j;
}

std::optional<v1::JobResult> result_of(FakeCoordinator& f, int64_t id) {
  for (const auto& r : f.results())
    if (r.job_id() == id) return r;
  return std::nullopt;
}

int count_results(FakeCoordinator& f, int64_t id) {
  int n = 0;
  for (const auto& r : f.results()) n += r.job_id() == id;
  return n;
}

class WorkerProtocol : public ::testing::Test {
 protected:
  void SetUp() override { fake.start(); }
  std::unique_ptr<Process> worker(WorkerOptions o) {
    if (o.name.empty()) o.name = "w";
    o.extra.push_back("--lease-wait-ms");
    o.extra.push_back("1000");
    return start_worker(dir, fake.address(), "", o);
  }
  void stop(Process& w) {
    w.signal(SIGTERM);
    const auto code = w.wait(60);
    ASSERT_TRUE(code.has_value()) << w.log();
    EXPECT_EQ(*code, 0) << w.log();
  }
  TempDir dir;
  FakeCoordinator fake{200};
};

TEST_F(WorkerProtocol, LeasesInBatchesAndReportsEveryJob) {
  for (int i = 0; i < 300; ++i) fake.add_job(map_job(i));
  auto w = worker({.name = "batcher", .slots = 2, .batch = 16});
  ASSERT_TRUE(wait_until([&] { return fake.results().size() >= 300; }, 60)) << w->log();
  stop(*w);
  for (int i = 0; i < 300; ++i) {
    auto r = result_of(fake, i);
    ASSERT_TRUE(r && r->ok()) << i;
    const auto j = nlohmann::json::parse(r->result_json());
    EXPECT_EQ(j["i"], i);
    EXPECT_EQ(count_results(fake, i), 1);
  }
  // 300 jobs in batches of <= 16: at least 19 leases; long-polls, not a spin.
  EXPECT_GE(fake.lease_calls(), 19);
  EXPECT_LT(fake.lease_calls(), 200);
  EXPECT_EQ(fake.secret_mismatches(), 0);  // every lease, heartbeat and report carried the worker secret
  const auto caps = fake.capabilities();
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].device_kind(), "cpu");
  EXPECT_EQ(caps[0].slots(), 2);
  EXPECT_FALSE(caps[0].version().empty());
  EXPECT_NE(std::find(caps[0].job_kinds().begin(), caps[0].job_kinds().end(), "selftest.reduce"),
            caps[0].job_kinds().end());
}

TEST_F(WorkerProtocol, ThousandsOfTrivialJobsEachReportedOnce) {
  const int n = 20000;
  for (int i = 0; i < n; ++i) fake.add_job(map_job(i, {{"work", 0}}));
  const auto t0 = std::chrono::steady_clock::now();
  auto w = worker({.name = "fast", .slots = 1, .batch = 256});
  ASSERT_TRUE(wait_until([&] { return fake.results().size() >= n; }, 120, 0.01)) << w->log();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop(*w);
  std::set<int64_t> ids;
  for (const auto& r : fake.results()) {
    EXPECT_TRUE(r.ok());
    ids.insert(r.job_id());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(n));
  EXPECT_EQ(fake.results().size(), static_cast<size_t>(n));
  std::printf("[ info ] %d trivial jobs through one worker and the fake coordinator in %.2f s (%.0f/s)\n", n, s, n / s);
}

TEST_F(WorkerProtocol, LostLeaseStopsTheJobAndDropsItsResult) {
  fake.add_job(map_job(1, {{"stall", 1.0}, {"stall_s", 3600.0}}));
  auto w = worker({.name = "loser", .slots = 1, .batch = 1});
  ASSERT_TRUE(wait_until([&] { return !fake.lease_of(1).empty(); }, 20)) << w->log();
  fake.add_job(map_job(2));
  fake.lose_job(1);
  // One slot: job 2 can only run once the stalled job has stopped.
  ASSERT_TRUE(wait_until([&] { return result_of(fake, 2).has_value(); }, 30)) << w->log();
  EXPECT_TRUE(result_of(fake, 2)->ok());
  stop(*w);
  EXPECT_FALSE(result_of(fake, 1).has_value()) << "a lost lease's result was reported";
  EXPECT_NE(w->log().find("leases lost"), std::string::npos);
}

TEST_F(WorkerProtocol, TimedOutJobIsReportedAsRetryableFailure) {
  auto j = map_job(1, {{"stall", 1.0}, {"stall_s", 3600.0}});
  j.set_timeout_s(1);
  fake.add_job(j);
  fake.add_job(map_job(2));
  auto w = worker({.name = "slow", .slots = 1, .batch = 1});
  ASSERT_TRUE(wait_until([&] { return result_of(fake, 1) && result_of(fake, 2); }, 30)) << w->log();
  stop(*w);
  const auto r = *result_of(fake, 1);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.retryable());
  EXPECT_EQ(r.error(), "timed out after 1 s");
  EXPECT_EQ(count_results(fake, 1), 1);  // the executor's late outcome is dropped
  EXPECT_TRUE(result_of(fake, 2)->ok());
}

TEST_F(WorkerProtocol, ReregistersWhenTheServerForgetsIt) {
  fake.add_job(map_job(1));
  auto w = worker({.name = "amnesia"});
  ASSERT_TRUE(wait_until([&] { return result_of(fake, 1).has_value(); }, 20)) << w->log();
  fake.forget_workers();
  fake.add_job(map_job(2));
  ASSERT_TRUE(wait_until([&] { return result_of(fake, 2).has_value(); }, 30)) << w->log();
  EXPECT_EQ(fake.registrations(), 2);
  EXPECT_EQ(fake.secret_mismatches(), 0);  // the new id went with its new secret (issue 12)
  stop(*w);
}

TEST_F(WorkerProtocol, KeepsFinishedResultsThroughAnOutage) {
  fake.add_job(map_job(1, {{"stall", 1.0}, {"stall_s", 2.0}}));
  auto w = worker({.name = "patient"});
  ASSERT_TRUE(wait_until([&] { return !fake.lease_of(1).empty(); }, 20)) << w->log();
  fake.stop();
  // The job finishes while the coordinator is away; the report must wait.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(result_of(fake, 1).has_value());
  fake.start();
  ASSERT_TRUE(wait_until([&] { return result_of(fake, 1).has_value(); }, 30)) << w->log();
  EXPECT_TRUE(result_of(fake, 1)->ok());
  stop(*w);
}

TEST_F(WorkerProtocol, DrainFinishesRunningJobs) {
  fake.add_job(map_job(1, {{"stall", 1.0}, {"stall_s", 1.0}}));
  auto w = worker({.name = "finisher", .drain_timeout_s = 60});
  ASSERT_TRUE(wait_until([&] { return !fake.lease_of(1).empty(); }, 20)) << w->log();
  stop(*w);
  ASSERT_TRUE(result_of(fake, 1).has_value()) << w->log();
  EXPECT_TRUE(result_of(fake, 1)->ok());
  EXPECT_TRUE(fake.released().empty());
}

TEST_F(WorkerProtocol, DrainDeadlineHandsBackUnfinishedJobs) {
  for (int i = 1; i <= 4; ++i) fake.add_job(map_job(i, {{"stall", 1.0}, {"stall_s", 3600.0}}));
  auto w = worker({.name = "quitter", .slots = 1, .batch = 4, .drain_timeout_s = 1});
  ASSERT_TRUE(wait_until([&] { return !fake.lease_of(4).empty(); }, 20)) << w->log();
  stop(*w);
  auto released = fake.released();
  std::sort(released.begin(), released.end());
  std::vector<std::string> want;
  for (int i = 1; i <= 4; ++i) want.push_back(fake.lease_of(i));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(released, want) << w->log();
  EXPECT_TRUE(fake.results().empty());
}

TEST_F(WorkerProtocol, FetchesBlobsAndUploadsArtifacts) {
  std::string model(5000, '\0');
  for (size_t i = 0; i < model.size(); ++i) model[i] = static_cast<char>(i * 7);
  fake.put_blob("model.bin", model);
  const std::string model_sha = sha256_hex(model);
  fake.add_job(map_job(1, {{"fetch", "model.bin"}, {"artifact_bytes", 3000}}));
  fake.add_job(map_job(2, {{"fetch", model_sha}}));
  auto w = worker({.name = "blobby", .batch = 1});
  ASSERT_TRUE(wait_until([&] { return result_of(fake, 1) && result_of(fake, 2); }, 30)) << w->log();
  stop(*w);
  const auto r1 = *result_of(fake, 1);
  ASSERT_TRUE(r1.ok()) << r1.error();
  const auto j1 = nlohmann::json::parse(r1.result_json());
  EXPECT_EQ(j1["fetched_sha256"], model_sha);
  ASSERT_EQ(r1.artifacts_size(), 1);
  EXPECT_EQ(r1.artifacts(0).name(), "selftest-1.bin");
  EXPECT_EQ(r1.artifacts(0).sha256(), j1["artifact_sha256"]);
  EXPECT_EQ(r1.artifacts(0).size(), 3000);
  EXPECT_EQ(r1.artifacts(0).media_type(), "application/octet-stream");
  const auto blobs = fake.blobs();
  ASSERT_TRUE(blobs.count(r1.artifacts(0).sha256()));
  EXPECT_EQ(sha256_hex(blobs.at(r1.artifacts(0).sha256())), r1.artifacts(0).sha256());
  const auto r2 = *result_of(fake, 2);
  ASSERT_TRUE(r2.ok()) << r2.error();
  EXPECT_EQ(nlohmann::json::parse(r2.result_json())["fetched_sha256"], model_sha);
}

TEST_F(WorkerProtocol, UnrunnableJobsFailClearly) {
  auto bad_json = map_job(1);
  bad_json.set_params_json("{not json");
  auto bad_kind = map_job(2);
  bad_kind.set_kind("nope.kind");
  fake.add_job(bad_json);
  fake.add_job(bad_kind);
  fake.add_job(map_job(3));
  auto w = worker({.name = "picky"});
  ASSERT_TRUE(wait_until([&] { return fake.results().size() >= 3; }, 30)) << w->log();
  stop(*w);
  const auto r1 = *result_of(fake, 1), r2 = *result_of(fake, 2);
  EXPECT_FALSE(r1.ok());
  EXPECT_FALSE(r1.retryable());
  EXPECT_NE(r1.error().find("malformed"), std::string::npos) << r1.error();
  EXPECT_FALSE(r2.ok());
  EXPECT_NE(r2.error().find("nope.kind"), std::string::npos) << r2.error();
  EXPECT_TRUE(result_of(fake, 3)->ok());
}


// A coordinator that (unlike spt-server) batches exclusive jobs with others
// and would lease more while one runs: the worker itself still runs each
// exclusive job with nothing beside it, and leases nothing meanwhile.
TEST_F(WorkerProtocol, ExclusiveJobRunsAloneEvenInAMixedBatch) {
  const int n = 60, k = 6;
  for (int i = 0; i < n; ++i) {
    auto j = map_job(i, {{"exclusive_every", k}, {"stall", 1.0}, {"stall_s", 0.02}});
    j.set_exclusive((i + 1) % k == 0);
    fake.add_job(std::move(j));
  }
  auto w = worker({.name = "solo", .slots = 2, .batch = 4});
  ASSERT_TRUE(wait_until([&] { return fake.results().size() >= static_cast<size_t>(n); }, 60)) << w->log();
  stop(*w);
  struct Span {
    int i;
    double t0, t1;
  };
  std::vector<Span> spans;
  for (int i = 0; i < n; ++i) {
    auto r = result_of(fake, i);
    ASSERT_TRUE(r && r->ok()) << i;
    EXPECT_EQ(count_results(fake, i), 1);
    const auto j = nlohmann::json::parse(r->result_json());
    spans.push_back({i, j["t0"].get<double>(), j["t1"].get<double>()});
  }
  int side_by_side = 0;
  for (const auto& a : spans)
    for (const auto& b : spans) {
      if (a.i >= b.i || !(a.t0 < b.t1 && b.t0 < a.t1)) continue;
      EXPECT_FALSE((a.i + 1) % k == 0 || (b.i + 1) % k == 0) << "map/" << a.i << " overlapped map/" << b.i;
      ++side_by_side;
    }
  EXPECT_GT(side_by_side, 0);  // the two slots did run shared jobs together
}

}  // namespace
}  // namespace spt::test
