// The coordinator's store, driven directly (no gRPC) against a real SQLite
// file in a temp dir. Time is an injected clock, so expiry and backoff are
// exercised without sleeping.
#include "store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "schema.h"
#include "spt/plan.h"

namespace spt::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

plan::JobSpec J(std::string name, std::vector<std::string> deps = {}, std::string kind = "k", std::string model = "",
                json params = json::object()) {
  plan::JobSpec s;
  s.name = name;
  s.kind = std::move(kind);
  s.deps = std::move(deps);
  s.model = std::move(model);
  if (params.empty()) params = {{"job", name}};
  s.params = std::move(params);
  return s;
}

plan::JobSpec X(std::string name, std::string kind = "k") {
  plan::JobSpec s = J(std::move(name), {}, std::move(kind));
  s.exclusive = true;
  return s;
}

plan::Plan P(std::vector<plan::JobSpec> jobs, std::string experiment = "t") {
  plan::Plan p;
  p.experiment = std::move(experiment);
  p.params = json::object();
  p.jobs = std::move(jobs);
  return p;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/spt_store_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/spt.db";
    open();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  void open() {
    StoreOptions o;
    o.lease_ttl_ms = 15000;
    o.heartbeat_ms = 3000;
    o.max_attempts = 3;
    o.backoff_base_ms = 500;
    o.backoff_cap_ms = 60000;
    o.clock = [this] { return now_.load(); };
    store_ = Store::open(path_, o);
  }
  void advance(int64_t ms) { now_ += ms; }

  std::string worker(std::vector<std::string> kinds = {}, const std::string& name = "w") {
    v1::Capabilities caps;
    for (auto& k : kinds) caps.add_job_kinds(k);
    caps.set_device_kind("cpu");
    return store_->register_worker(name, caps).worker_id();
  }
  v1::LeaseResponse lease(const std::string& w, int max = 10, std::vector<std::string> loaded = {}) {
    v1::LeaseRequest r;
    r.set_worker_id(w);
    r.set_max_jobs(max);
    r.set_wait_ms(0);
    for (auto& m : loaded) r.add_loaded_models(m);
    return store_->lease(r);
  }
  v1::ReportResponse ok(const std::string& w, const v1::Job& j, const std::string& result = R"({"v":1})") {
    v1::ReportRequest r;
    r.set_worker_id(w);
    auto* x = r.add_results();
    x->set_job_id(j.job_id());
    x->set_lease_id(j.lease_id());
    x->set_ok(true);
    x->set_result_json(result);
    return store_->report(r);
  }
  v1::ReportResponse fail(const std::string& w, const v1::Job& j, const std::string& error, bool retryable) {
    v1::ReportRequest r;
    r.set_worker_id(w);
    auto* x = r.add_results();
    x->set_job_id(j.job_id());
    x->set_lease_id(j.lease_id());
    x->set_ok(false);
    x->set_error(error);
    x->set_retryable(retryable);
    return store_->report(r);
  }
  v1::JobSummary job(int64_t exp, const std::string& name) { return store_->logs(store_->find_job(exp, name)).job(); }
  std::string state(int64_t exp, const std::string& name) { return job(exp, name).state(); }
  v1::ExperimentStatus status(int64_t exp) { return store_->experiment_status(exp); }
  // Leases and completes everything leasable, repeatedly, until idle.
  void drain(const std::string& w) {
    for (;;) {
      auto l = lease(w, 100);
      if (l.jobs_size() == 0) return;
      for (const auto& j : l.jobs()) ok(w, j);
    }
  }

  std::string dir_, path_;
  std::atomic<int64_t> now_{1'700'000'000'000};
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, SubmitMakesRootsPendingAndDependentsBlocked) {
  auto r = store_->submit(P({J("a"), J("b"), J("c", {"a", "b"})}), 0, false);
  EXPECT_EQ(r.n_jobs, 3);
  EXPECT_EQ(r.n_reused, 0);
  EXPECT_EQ(state(r.experiment_id, "a"), "pending");
  EXPECT_EQ(state(r.experiment_id, "b"), "pending");
  EXPECT_EQ(state(r.experiment_id, "c"), "blocked");
  auto s = status(r.experiment_id);
  EXPECT_EQ(s.state(), "running");
  EXPECT_EQ(s.counts().pending(), 2);
  EXPECT_EQ(s.counts().blocked(), 1);
  EXPECT_EQ(s.counts().total(), 3);
}

TEST_F(StoreTest, LeaseReleasesDependentsWithInputs) {
  auto r = store_->submit(P({J("a"), J("b"), J("c", {"a", "b"})}), 0, false);
  auto w = worker();
  auto l = lease(w);
  ASSERT_EQ(l.jobs_size(), 2);  // c is blocked
  EXPECT_EQ(l.jobs(0).name(), "a");
  EXPECT_EQ(l.jobs(0).attempt(), 1);
  EXPECT_EQ(l.jobs(0).lease_id().size(), 32u);
  EXPECT_NE(l.jobs(0).lease_id(), l.jobs(1).lease_id());
  EXPECT_EQ(l.jobs(0).experiment(), "t");
  EXPECT_EQ(l.lease_expires_unix_ms(), now_ + 15000);
  EXPECT_EQ(state(r.experiment_id, "a"), "leased");
  EXPECT_EQ(lease(w).jobs_size(), 0);

  EXPECT_EQ(ok(w, l.jobs(0), R"({"x":1})").accepted_size(), 1);
  EXPECT_EQ(state(r.experiment_id, "c"), "blocked");  // one dep left
  EXPECT_EQ(ok(w, l.jobs(1), R"({"x":2})").accepted_size(), 1);
  EXPECT_EQ(state(r.experiment_id, "c"), "pending");

  auto l2 = lease(w);
  ASSERT_EQ(l2.jobs_size(), 1);
  const auto& c = l2.jobs(0);
  ASSERT_EQ(c.inputs_size(), 2);
  EXPECT_EQ(c.inputs(0).name(), "a");
  EXPECT_EQ(c.inputs(0).kind(), "k");
  EXPECT_EQ(c.inputs(0).result_json(), R"({"x":1})");
  EXPECT_EQ(c.inputs(1).result_json(), R"({"x":2})");
  ok(w, c);
  auto s = status(r.experiment_id);
  EXPECT_EQ(s.state(), "done");
  EXPECT_EQ(s.finished_unix_ms(), now_.load());
  EXPECT_EQ(s.counts().done(), 3);
}

TEST_F(StoreTest, HeartbeatRenewsLeasesAndNamesLostOnes) {
  auto r = store_->submit(P({J("a")}), 0, false);
  auto w = worker();
  auto l = lease(w);
  ASSERT_EQ(l.jobs_size(), 1);
  advance(10000);
  v1::HeartbeatRequest hb;
  hb.set_worker_id(w);
  hb.add_lease_ids(l.jobs(0).lease_id());
  hb.add_lease_ids("not-a-lease");
  auto resp = store_->heartbeat(hb);
  ASSERT_EQ(resp.lost_lease_ids_size(), 1);
  EXPECT_EQ(resp.lost_lease_ids(0), "not-a-lease");
  EXPECT_EQ(resp.lease_expires_unix_ms(), now_ + 15000);
  advance(10000);  // 20 s after the lease, 10 s after the renewal
  EXPECT_EQ(store_->reap_expired(), 0);
  EXPECT_EQ(state(r.experiment_id, "a"), "leased");
  advance(5001);
  EXPECT_EQ(store_->reap_expired(), 1);
  EXPECT_EQ(state(r.experiment_id, "a"), "pending");
  // The lease is gone: a later heartbeat reports it lost.
  resp = store_->heartbeat(hb);
  EXPECT_EQ(resp.lost_lease_ids_size(), 2);
}

TEST_F(StoreTest, ExpiredLeaseRequeuesAfterBackoffThenFailsAtLimit) {
  auto r = store_->submit(P({J("a"), J("b", {"a"})}), 0, false);
  auto w = worker();
  ASSERT_EQ(lease(w).jobs(0).attempt(), 1);
  advance(15001);
  EXPECT_EQ(store_->reap_expired(), 1);
  EXPECT_EQ(state(r.experiment_id, "a"), "pending");
  EXPECT_EQ(lease(w).jobs_size(), 0);  // backing off 500 ms
  advance(499);
  EXPECT_EQ(lease(w).jobs_size(), 0);
  advance(1);
  auto l = lease(w);
  ASSERT_EQ(l.jobs_size(), 1);
  EXPECT_EQ(l.jobs(0).attempt(), 2);

  advance(15001);
  EXPECT_EQ(store_->reap_expired(), 1);
  advance(999);  // second backoff is 1000 ms
  EXPECT_EQ(lease(w).jobs_size(), 0);
  advance(1);
  l = lease(w);
  ASSERT_EQ(l.jobs_size(), 1);
  EXPECT_EQ(l.jobs(0).attempt(), 3);

  advance(15001);
  EXPECT_EQ(store_->reap_expired(), 1);
  auto a = job(r.experiment_id, "a");
  EXPECT_EQ(a.state(), "failed");
  EXPECT_EQ(a.attempt(), 3);
  EXPECT_NE(a.error().find("lease expired 3 time(s)"), std::string::npos) << a.error();
  EXPECT_EQ(state(r.experiment_id, "b"), "failed");
  EXPECT_EQ(job(r.experiment_id, "b").error(), "dependency a failed");
  EXPECT_EQ(status(r.experiment_id).state(), "failed");
}

TEST_F(StoreTest, RetryableFailuresBackOffAndStopAtTheLimitWithTheLastError) {
  auto spec = J("a");
  spec.max_attempts = 2;
  auto r = store_->submit(P({spec}), 0, false);
  auto w = worker();
  auto l = lease(w);
  EXPECT_EQ(fail(w, l.jobs(0), "boom 1", true).accepted_size(), 1);
  EXPECT_EQ(state(r.experiment_id, "a"), "pending");
  EXPECT_EQ(lease(w).jobs_size(), 0);
  advance(500);
  l = lease(w);
  ASSERT_EQ(l.jobs_size(), 1);
  EXPECT_EQ(l.jobs(0).attempt(), 2);
  fail(w, l.jobs(0), "boom 2", true);
  auto a = job(r.experiment_id, "a");
  EXPECT_EQ(a.state(), "failed");
  EXPECT_EQ(a.error(), "boom 2");
  EXPECT_EQ(status(r.experiment_id).state(), "failed");
  advance(100000);
  EXPECT_EQ(lease(w).jobs_size(), 0);
}

TEST_F(StoreTest, NonRetryableFailureFailsAtOnce) {
  auto r = store_->submit(P({J("a")}), 0, false);
  auto w = worker();
  fail(w, lease(w).jobs(0), "bad params", false);
  EXPECT_EQ(state(r.experiment_id, "a"), "failed");
  EXPECT_EQ(job(r.experiment_id, "a").error(), "bad params");
}

TEST_F(StoreTest, StaleLeaseReportsAreRefusedAndNothingIsStoredTwice) {
  auto r = store_->submit(P({J("a")}), 0, false);
  auto w1 = worker({}, "one"), w2 = worker({}, "two");
  auto old = lease(w1).jobs(0);
  advance(15001);
  store_->reap_expired();
  advance(500);
  auto cur = lease(w2).jobs(0);
  EXPECT_NE(old.lease_id(), cur.lease_id());

  auto resp = ok(w1, old, R"({"from":"old"})");
  EXPECT_EQ(resp.accepted_size(), 0);
  ASSERT_EQ(resp.refused_size(), 1);
  EXPECT_EQ(resp.refused(0), old.job_id());
  EXPECT_EQ(state(r.experiment_id, "a"), "leased");

  EXPECT_EQ(ok(w2, cur, R"({"from":"cur"})").accepted_size(), 1);
  EXPECT_EQ(ok(w2, cur, R"({"from":"dup"})").refused_size(), 1);  // duplicate
  EXPECT_EQ(job(r.experiment_id, "a").result_json(), R"({"from":"cur"})");

  v1::Job ghost;
  ghost.set_job_id(987654);
  ghost.set_lease_id("x");
  EXPECT_EQ(ok(w2, ghost).refused_size(), 1);
}

TEST_F(StoreTest, DuplicateResultsInOneBatchAcceptOnlyTheFirst) {
  auto r = store_->submit(P({J("a")}), 0, false);
  auto w = worker();
  auto j = lease(w).jobs(0);
  v1::ReportRequest req;
  req.set_worker_id(w);
  for (const char* res : {R"({"n":1})", R"({"n":2})"}) {
    auto* x = req.add_results();
    x->set_job_id(j.job_id());
    x->set_lease_id(j.lease_id());
    x->set_ok(true);
    x->set_result_json(res);
  }
  auto resp = store_->report(req);
  EXPECT_EQ(resp.accepted_size(), 1);
  EXPECT_EQ(resp.refused_size(), 1);
  EXPECT_EQ(job(r.experiment_id, "a").result_json(), R"({"n":1})");
}

TEST_F(StoreTest, FailurePropagatesDownstreamOnly) {
  auto r = store_->submit(P({J("a"), J("b", {"a"}), J("c", {"b"}), J("d")}), 0, false);
  auto w = worker();
  auto l = lease(w);
  ASSERT_EQ(l.jobs_size(), 2);
  fail(w, l.jobs(0), "broken", false);
  EXPECT_EQ(state(r.experiment_id, "b"), "failed");
  EXPECT_EQ(state(r.experiment_id, "c"), "failed");
  EXPECT_EQ(job(r.experiment_id, "c").error(), "dependency a failed");
  EXPECT_EQ(state(r.experiment_id, "d"), "leased");
  EXPECT_EQ(status(r.experiment_id).state(), "running");
  ok(w, l.jobs(1));
  EXPECT_EQ(status(r.experiment_id).state(), "failed");
}

TEST_F(StoreTest, CancelStopsEverythingAndRefusesLaterReports) {
  auto r = store_->submit(P({J("a"), J("b"), J("c", {"a"})}), 0, false);
  auto w = worker();
  auto l = lease(w, 1);
  ASSERT_EQ(l.jobs_size(), 1);
  EXPECT_EQ(store_->cancel(r.experiment_id), 3);
  auto s = status(r.experiment_id);
  EXPECT_EQ(s.state(), "cancelled");
  EXPECT_EQ(s.counts().cancelled(), 3);
  EXPECT_EQ(ok(w, l.jobs(0)).refused_size(), 1);
  EXPECT_EQ(lease(w).jobs_size(), 0);
  v1::HeartbeatRequest hb;
  hb.set_worker_id(w);
  hb.add_lease_ids(l.jobs(0).lease_id());
  EXPECT_EQ(store_->heartbeat(hb).lost_lease_ids_size(), 1);
  EXPECT_EQ(store_->cancel(r.experiment_id), 0);  // idempotent
}

TEST_F(StoreTest, RetryRequeuesFailedJobsAndTheirDependents) {
  auto r = store_->submit(P({J("a"), J("b", {"a"}), J("c")}), 0, false);
  auto w = worker();
  auto l = lease(w);
  ASSERT_EQ(l.jobs(0).name(), "a");
  fail(w, l.jobs(0), "flaky", false);
  ok(w, l.jobs(1));
  ASSERT_EQ(status(r.experiment_id).state(), "failed");

  EXPECT_EQ(store_->retry(r.experiment_id), 2);
  EXPECT_EQ(status(r.experiment_id).state(), "running");
  EXPECT_EQ(state(r.experiment_id, "a"), "pending");
  EXPECT_EQ(state(r.experiment_id, "b"), "blocked");
  EXPECT_EQ(state(r.experiment_id, "c"), "done");
  EXPECT_EQ(job(r.experiment_id, "a").error(), "");
  auto again = lease(w);
  ASSERT_EQ(again.jobs_size(), 1);
  EXPECT_EQ(again.jobs(0).attempt(), 1);  // attempts reset
  ok(w, again.jobs(0));
  drain(w);
  EXPECT_EQ(status(r.experiment_id).state(), "done");
  EXPECT_EQ(store_->retry(r.experiment_id), 0);
}

TEST_F(StoreTest, HigherPriorityExperimentsLeaseFirst) {
  auto low = store_->submit(P({J("l1"), J("l2")}, "low"), 0, false);
  auto high = store_->submit(P({J("h1"), J("h2")}, "high"), 5, false);
  auto w = worker();
  auto l = lease(w, 3);
  ASSERT_EQ(l.jobs_size(), 3);
  EXPECT_EQ(l.jobs(0).experiment_id(), high.experiment_id);
  EXPECT_EQ(l.jobs(0).name(), "h1");
  EXPECT_EQ(l.jobs(1).name(), "h2");
  EXPECT_EQ(l.jobs(2).experiment_id(), low.experiment_id);
  EXPECT_EQ(l.jobs(2).name(), "l1");
}

TEST_F(StoreTest, AffinityPrefersLoadedModelThenFirstJobsModel) {
  store_->submit(P({J("x1", {}, "k", "m1"), J("x2", {}, "k", "m2"), J("x3", {}, "k", "m1"),
                    J("x4", {}, "k", "m2"), J("x5", {}, "k", "m1")}),
                 0, false);
  auto w = worker();
  auto l = lease(w, 2, {"m2"});
  ASSERT_EQ(l.jobs_size(), 2);
  EXPECT_EQ(l.jobs(0).name(), "x2");
  EXPECT_EQ(l.jobs(1).name(), "x4");
  l = lease(w, 2);  // nothing loaded: follow the first job's model
  ASSERT_EQ(l.jobs_size(), 2);
  EXPECT_EQ(l.jobs(0).name(), "x1");
  EXPECT_EQ(l.jobs(1).name(), "x3");
  EXPECT_EQ(l.jobs(0).model(), "m1");
}

TEST_F(StoreTest, WorkersOnlyGetKindsTheyDeclared) {
  auto r = store_->submit(P({J("a", {}, "k1"), J("b", {}, "k2")}), 0, false);
  auto w2 = worker({"k2"});
  auto l = lease(w2);
  ASSERT_EQ(l.jobs_size(), 1);
  EXPECT_EQ(l.jobs(0).name(), "b");
  auto any = worker({});
  EXPECT_EQ(lease(any).jobs_size(), 1);  // no kinds declared: any kind
  EXPECT_EQ(state(r.experiment_id, "a"), "leased");
}

TEST_F(StoreTest, ResubmissionIsAnsweredFromStoredResultsUnlessForced) {
  auto plan = P({J("a"), J("b"), J("r", {"a", "b"})});
  plan.jobs[2].reduce = true;
  auto first = store_->submit(plan, 0, false);
  auto w = worker();
  // The reduce also produced a file.
  for (;;) {
    auto l = lease(w);
    if (!l.jobs_size()) break;
    for (const auto& j : l.jobs()) {
      v1::ReportRequest req;
      req.set_worker_id(w);
      auto* x = req.add_results();
      x->set_job_id(j.job_id());
      x->set_lease_id(j.lease_id());
      x->set_ok(true);
      x->set_result_json(json{{"name", j.name()}}.dump());
      if (j.name() == "r") {
        auto* a = x->add_artifacts();
        a->set_name("report.md");
        a->set_sha256(std::string(64, 'a'));
        a->set_size(3);
        a->set_media_type("text/markdown");
      }
      store_->report(req);
    }
  }
  ASSERT_EQ(status(first.experiment_id).state(), "done");

  auto second = store_->submit(plan, 0, false);
  EXPECT_EQ(second.n_jobs, 3);
  EXPECT_EQ(second.n_reused, 3);
  EXPECT_EQ(status(second.experiment_id).state(), "done");
  auto res = store_->results(second.experiment_id);
  ASSERT_EQ(res.reduce_results_size(), 1);
  EXPECT_EQ(res.reduce_results(0).result_json(), R"({"name":"r"})");
  ASSERT_EQ(res.artifacts_size(), 1);
  EXPECT_EQ(res.artifacts(0).name(), "report.md");
  EXPECT_EQ(lease(w).jobs_size(), 0);

  auto forced = store_->submit(plan, 0, true);
  EXPECT_EQ(forced.n_reused, 0);
  EXPECT_EQ(status(forced.experiment_id).counts().pending(), 2);

  // A plan sharing only the upstream jobs reuses those and runs the rest,
  // with the stored results as inputs.
  auto part = P({J("a"), J("c", {"a"})});
  auto third = store_->submit(part, 0, false);
  EXPECT_EQ(third.n_reused, 1);
  EXPECT_EQ(state(third.experiment_id, "a"), "done");
  EXPECT_EQ(state(third.experiment_id, "c"), "pending");

  // Different params, different key.
  auto other = store_->submit(P({J("a", {}, "k", "", {{"job", "a"}, {"seed", 2}})}), 0, false);
  EXPECT_EQ(other.n_reused, 0);
}

TEST_F(StoreTest, PartialReuseFeedsStoredResultsAsInputs) {
  auto w = worker();
  store_->submit(P({J("a")}), 0, false);
  auto l = lease(w);
  ok(w, l.jobs(0), R"({"stored":true})");
  auto r = store_->submit(P({J("a"), J("c", {"a"})}), 0, false);
  EXPECT_EQ(r.n_reused, 1);
  auto lc = lease(w);
  ASSERT_EQ(lc.jobs_size(), 1);
  EXPECT_EQ(lc.jobs(0).name(), "c");
  ASSERT_EQ(lc.jobs(0).inputs_size(), 1);
  EXPECT_EQ(lc.jobs(0).inputs(0).result_json(), R"({"stored":true})");
}

TEST_F(StoreTest, ReleaseHandsLeasesBackWithoutUsingAnAttempt) {
  auto r = store_->submit(P({J("a")}), 0, false);
  auto w = worker();
  auto l = lease(w);
  EXPECT_EQ(store_->release(w, {l.jobs(0).lease_id(), "unknown"}), 1);
  EXPECT_EQ(state(r.experiment_id, "a"), "pending");
  EXPECT_EQ(ok(w, l.jobs(0)).refused_size(), 1);
  auto again = lease(w);
  ASSERT_EQ(again.jobs_size(), 1);
  EXPECT_EQ(again.jobs(0).attempt(), 1);
}

TEST_F(StoreTest, UnknownWorkersAndExperimentsAreNotFound) {
  v1::LeaseRequest lr;
  lr.set_worker_id("w-nope");
  lr.set_max_jobs(1);
  EXPECT_THROW(store_->lease(lr), NotFound);
  v1::HeartbeatRequest hb;
  hb.set_worker_id("w-nope");
  EXPECT_THROW(store_->heartbeat(hb), NotFound);
  v1::ReportRequest rr;
  rr.set_worker_id("w-nope");
  EXPECT_THROW(store_->report(rr), NotFound);
  v1::ExperimentRef ref;
  ref.set_name("nothing");
  EXPECT_THROW(store_->resolve(ref), NotFound);
  ref.set_name("");
  EXPECT_THROW(store_->resolve(ref), BadRequest);
  ref.set_id(42);
  EXPECT_THROW(store_->resolve(ref), NotFound);
  EXPECT_THROW(store_->cancel(42), NotFound);
}

TEST_F(StoreTest, ResolveByNameFindsTheLatestSubmission) {
  store_->submit(P({J("a")}, "same"), 0, false);
  auto second = store_->submit(P({J("b")}, "same"), 0, false);
  v1::ExperimentRef ref;
  ref.set_name("same");
  EXPECT_EQ(store_->resolve(ref), second.experiment_id);
}

TEST_F(StoreTest, ReopeningTheFileContinuesWhereItStopped) {
  auto r = store_->submit(P({J("a"), J("b"), J("c", {"a", "b"})}), 0, false);
  auto w = worker();
  auto l = lease(w);
  ok(w, l.jobs(0));
  store_.reset();  // "crash" with b leased
  open();
  EXPECT_EQ(state(r.experiment_id, "a"), "done");
  EXPECT_EQ(state(r.experiment_id, "b"), "leased");
  EXPECT_EQ(ok(w, l.jobs(1)).accepted_size(), 1);  // the lease survived
  drain(w);
  EXPECT_EQ(status(r.experiment_id).state(), "done");
  EXPECT_EQ(Store::schema_version(), 4);
}

TEST_F(StoreTest, LeasesOfACrashedCoordinatorExpireAfterRestart) {
  auto r = store_->submit(P({J("a")}), 0, false);
  auto w = worker();
  lease(w);
  store_.reset();
  advance(60000);
  open();
  EXPECT_EQ(store_->reap_expired(), 1);
  EXPECT_EQ(state(r.experiment_id, "a"), "pending");
}

TEST_F(StoreTest, GarbageFileIsRefusedAndLeftUntouched) {
  store_.reset();
  const std::string bad = dir_ + "/garbage.db";
  {
    std::ofstream out(bad, std::ios::binary);
    out << "this is my thesis, not a database\n";
  }
  const std::string before = slurp(bad);
  StoreOptions o;
  try {
    Store::open(bad, o);
    FAIL() << "opened a non-database";
  } catch (const StoreOpenError& e) {
    EXPECT_NE(std::string(e.what()).find("not an SQLite database"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(bad), before);
}

TEST_F(StoreTest, TruncatedFileIsRefusedAndLeftUntouched) {
  // Enough rows that the file spans many pages.
  std::vector<plan::JobSpec> jobs;
  for (int i = 0; i < 300; ++i) jobs.push_back(J("j" + std::to_string(i), {}, "k", "", {{"pad", std::string(200, 'x')}, {"i", i}}));
  store_->submit(P(jobs), 0, false);
  store_.reset();
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 40000u);
  fs::resize_file(path_, size / 2);
  const std::string before = slurp(path_);
  EXPECT_THROW(open(), StoreOpenError);
  EXPECT_EQ(slurp(path_), before);
}

TEST_F(StoreTest, ForeignDatabasesAndNewerSchemasAreRefused) {
  store_.reset();
  const std::string other = dir_ + "/other.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES('mine');", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const std::string before = slurp(other);
  try {
    Store::open(other, StoreOptions{});
    FAIL() << "opened a foreign database";
  } catch (const StoreOpenError& e) {
    EXPECT_NE(std::string(e.what()).find("not an spt store"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(other), before);

  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    open();
    FAIL() << "opened a newer schema";
  } catch (const StoreOpenError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, ReduceWithManyDepsIsReleasedOnceAllAreDone) {
  std::vector<plan::JobSpec> jobs;
  std::vector<std::string> names;
  for (int i = 0; i < 2000; ++i) {
    jobs.push_back(J("m" + std::to_string(i)));
    names.push_back(jobs.back().name);
  }
  jobs.push_back(J("reduce", names));
  auto r = store_->submit(P(jobs), 0, false);
  auto w = worker();
  int leased = 0;
  for (;;) {
    auto l = lease(w, 256);
    if (!l.jobs_size()) break;
    v1::ReportRequest req;
    req.set_worker_id(w);
    for (const auto& j : l.jobs()) {
      if (j.name() == "reduce") {
        EXPECT_EQ(j.inputs_size(), 2000);
        EXPECT_EQ(j.inputs(1999).name(), "m1999");
      }
      auto* x = req.add_results();
      x->set_job_id(j.job_id());
      x->set_lease_id(j.lease_id());
      x->set_ok(true);
      x->set_result_json("1");
      ++leased;
    }
    EXPECT_EQ(store_->report(req).accepted_size(), l.jobs_size());
  }
  EXPECT_EQ(leased, 2001);
  auto s = status(r.experiment_id);
  EXPECT_EQ(s.state(), "done");
  EXPECT_GT(s.throughput_per_s(), 0);
}

TEST_F(StoreTest, StatusReportsThroughputAndEta) {
  std::vector<plan::JobSpec> jobs;
  for (int i = 0; i < 10; ++i) jobs.push_back(J("j" + std::to_string(i)));
  auto r = store_->submit(P(jobs), 0, false);
  auto w = worker();
  EXPECT_EQ(status(r.experiment_id).eta_s(), -1);  // nothing finished yet
  advance(2000);
  auto l = lease(w, 4);
  for (const auto& j : l.jobs()) ok(w, j);
  auto s = status(r.experiment_id);
  EXPECT_DOUBLE_EQ(s.throughput_per_s(), 2.0);  // 4 in the 2 s since submission
  EXPECT_DOUBLE_EQ(s.eta_s(), 3.0);             // 6 left
  auto all = store_->experiments(true);
  ASSERT_EQ(all.size(), 1u);
}

TEST_F(StoreTest, LogsTellTheJobsHistory) {
  auto r = store_->submit(P({J("a")}), 0, false);
  auto w = worker({}, "gpu-box");
  auto l = lease(w);
  fail(w, l.jobs(0), "oom", true);
  advance(500);
  l = lease(w);
  v1::ReportRequest req;
  req.set_worker_id(w);
  auto* x = req.add_results();
  x->set_job_id(l.jobs(0).job_id());
  x->set_lease_id(l.jobs(0).lease_id());
  x->set_ok(true);
  x->set_result_json("{}");
  x->set_log("step 1\nstep 2\n");
  store_->report(req);
  auto logs = store_->logs(store_->find_job(r.experiment_id, "a"));
  std::vector<std::string> events;
  for (const auto& e : logs.events()) events.push_back(e.event());
  EXPECT_EQ(events, (std::vector<std::string>{"created", "leased", "retry", "leased", "done"}));
  EXPECT_NE(logs.events(1).detail().find("gpu-box"), std::string::npos);
  EXPECT_NE(logs.events(2).detail().find("oom"), std::string::npos);
  EXPECT_EQ(logs.log(), "step 1\nstep 2\n");
  EXPECT_EQ(logs.params_json(), R"({"job":"a"})");
  EXPECT_THROW(store_->find_job(r.experiment_id, "zz"), NotFound);
}

TEST_F(StoreTest, WorkersListShowsCurrentJobsAndLiveness) {
  store_->submit(P({J("a"), J("b")}), 0, false);
  auto w = worker({"k"}, "box");
  lease(w, 1);
  auto ws = store_->workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0].name(), "box");
  EXPECT_TRUE(ws[0].alive());
  ASSERT_EQ(ws[0].current_job_names_size(), 1);
  EXPECT_EQ(ws[0].current_job_names(0), "a");
  EXPECT_EQ(ws[0].capabilities().device_kind(), "cpu");
  advance(9001);
  EXPECT_FALSE(store_->workers()[0].alive());
}

TEST_F(StoreTest, LongPollWakesOnSubmitAndOnShutdown) {
  auto w = worker();
  auto waiter = std::async(std::launch::async, [&] {
    v1::LeaseRequest r;
    r.set_worker_id(w);
    r.set_max_jobs(5);
    r.set_wait_ms(30000);
    return store_->lease(r);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  store_->submit(P({J("a")}), 0, false);
  auto got = waiter.get();  // returns at the submit, well before 30 s
  ASSERT_EQ(got.jobs_size(), 1);
  EXPECT_EQ(got.jobs(0).name(), "a");

  auto idle = std::async(std::launch::async, [&] {
    v1::LeaseRequest r;
    r.set_worker_id(w);
    r.set_max_jobs(5);
    r.set_wait_ms(30000);
    return store_->lease(r);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  store_->shutdown();
  EXPECT_EQ(idle.get().jobs_size(), 0);
}

TEST_F(StoreTest, SelftestPlanRunsToCompletion) {
  plan::Request req;
  req.experiment = "selftest";
  req.params = {{"n", "5"}};
  auto r = store_->submit(plan::make_plan(req), 0, false);
  EXPECT_EQ(r.n_jobs, 6);
  auto w = worker();
  drain(w);
  auto res = store_->results(r.experiment_id);
  EXPECT_EQ(res.experiment().state(), "done");
  ASSERT_EQ(res.reduce_results_size(), 1);
  EXPECT_EQ(res.reduce_results(0).name(), "reduce");
}

TEST_F(StoreTest, NamedBlobsAreListedByPrefix) {
  const std::string sha(64, 'b');
  store_->record_blob(sha, 10, "application/octet-stream");
  store_->name_blob("models/gpt2/model.safetensors", sha);
  store_->name_blob("data/wiki.txt", sha);
  EXPECT_TRUE(store_->has_blob(sha));
  EXPECT_FALSE(store_->has_blob(std::string(64, 'c')));
  auto models = store_->list_named("models/");
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name(), "models/gpt2/model.safetensors");
  EXPECT_EQ(models[0].size(), 10);
  EXPECT_EQ(store_->list_named("").size(), 2u);
  ASSERT_TRUE(store_->named_blob("data/wiki.txt"));
  EXPECT_FALSE(store_->named_blob("nope"));
}


// ---------------------------------------------------------------- exclusive jobs

std::vector<std::string> names(const v1::LeaseResponse& l) {
  std::vector<std::string> out;
  for (const auto& j : l.jobs()) out.push_back(j.name());
  return out;
}
using Names = std::vector<std::string>;

TEST_F(StoreTest, ExclusiveJobIsLeasedAloneFirstAndHoldsItsWorker) {
  auto r = store_->submit(P({J("a"), J("b"), X("x"), J("c")}), 0, false);
  auto w = worker();
  // An idle worker takes the exclusive job first, by itself, whatever max_jobs.
  auto l = lease(w, 10);
  ASSERT_EQ(names(l), Names{"x"});
  EXPECT_TRUE(l.jobs(0).exclusive());
  EXPECT_EQ(state(r.experiment_id, "a"), "pending");
  // While it holds x, the worker gets nothing, however often it asks.
  EXPECT_EQ(lease(w, 10).jobs_size(), 0);
  EXPECT_EQ(lease(w, 1).jobs_size(), 0);
  EXPECT_EQ(ok(w, l.jobs(0)).accepted_size(), 1);
  // Reported: the shared jobs come, together, and are not exclusive.
  auto l2 = lease(w, 10);
  EXPECT_EQ(names(l2), (Names{"a", "b", "c"}));
  for (const auto& j : l2.jobs()) EXPECT_FALSE(j.exclusive());
  bool marked = false;
  const auto logs = store_->logs(store_->find_job(r.experiment_id, "x"));
  for (const auto& e : logs.events())
    marked |= e.event() == "leased" && e.detail().find("exclusive") != std::string::npos;
  EXPECT_TRUE(marked);
}

TEST_F(StoreTest, ExclusiveJobIsNotLeasedToAWorkerHoldingAJob) {
  auto r = store_->submit(P({J("a"), J("b"), J("c")}), 0, false);
  auto w = worker();
  auto a = lease(w, 1);
  ASSERT_EQ(names(a), Names{"a"});
  store_->submit(P({X("x")}, "t2"), 0, false);
  // w holds a: not x, and (x being first in line) nothing else either, so
  // that w empties and x does not starve behind a stream of shared jobs.
  EXPECT_EQ(lease(w, 10).jobs_size(), 0);
  ok(w, a.jobs(0));
  auto l = lease(w, 10);
  ASSERT_EQ(names(l), Names{"x"});
  EXPECT_EQ(lease(w, 10).jobs_size(), 0);
  ok(w, l.jobs(0));
  EXPECT_EQ(names(lease(w, 10)), (Names{"b", "c"}));
  EXPECT_EQ(state(r.experiment_id, "b"), "leased");
}

TEST_F(StoreTest, ExclusiveJobGoesToTheIdleWorkerWhileTheBusyOneWaits) {
  store_->submit(P({J("a"), J("b"), J("c")}), 0, false);
  auto busy = worker({}, "busy");
  auto idle = worker({}, "idle");
  ASSERT_EQ(names(lease(busy, 1)), Names{"a"});
  store_->submit(P({X("x")}, "t2"), 0, false);
  EXPECT_EQ(lease(busy, 10).jobs_size(), 0);  // held back for x
  auto l = lease(idle, 10);
  ASSERT_EQ(names(l), Names{"x"});
  // x is taken: the busy worker gets shared work again, the one holding x none.
  EXPECT_EQ(names(lease(busy, 10)), (Names{"b", "c"}));
  EXPECT_EQ(lease(idle, 10).jobs_size(), 0);
  auto ws = store_->workers();
  for (const auto& wi : ws)
    if (wi.name() == "idle") EXPECT_EQ(wi.current_job_names_size(), 1);
}

TEST_F(StoreTest, ExclusiveJobsRunOneAtATimePerWorker) {
  store_->submit(P({X("x1"), X("x2"), X("x3"), J("a")}), 0, false);
  auto w1 = worker({}, "w1");
  auto w2 = worker({}, "w2");
  auto l1 = lease(w1, 10), l2 = lease(w2, 10);
  EXPECT_EQ(names(l1), Names{"x1"});
  EXPECT_EQ(names(l2), Names{"x2"});
  EXPECT_EQ(lease(w1, 10).jobs_size(), 0);
  EXPECT_EQ(lease(w2, 10).jobs_size(), 0);
  ok(w2, l2.jobs(0));
  EXPECT_EQ(names(lease(w2, 10)), Names{"x3"});
  ok(w1, l1.jobs(0));
  EXPECT_EQ(names(lease(w1, 10)), Names{"a"});
}

TEST_F(StoreTest, ExclusiveJobsOfLowerPriorityAndOtherKindsHoldNobodyBack) {
  store_->submit(P({X("low")}, "low"), 0, false);
  store_->submit(P({J("a"), J("b"), J("c")}, "high"), 5, false);
  store_->submit(P({X("other", "k2")}, "other"), 9, false);
  auto w = worker({"k"});
  // Priorities win: an idle worker takes the shared high-priority jobs, and
  // a busy one goes on taking them; the k2 job is not for this worker.
  ASSERT_EQ(names(lease(w, 1)), Names{"a"});
  EXPECT_EQ(names(lease(w, 10)), (Names{"b", "c"}));
}

TEST_F(StoreTest, ExclusiveLeaseEndsWithFailureReleaseCancelAndExpiry) {
  auto r = store_->submit(P({X("x"), J("a")}), 0, false);
  auto w = worker();
  // A failed attempt (retryable) frees the worker; x is due again after its backoff.
  auto l = lease(w, 10);
  ASSERT_EQ(names(l), Names{"x"});
  fail(w, l.jobs(0), "boom", true);
  auto a = lease(w, 10);
  ASSERT_EQ(names(a), Names{"a"});  // x is backing off
  EXPECT_EQ(lease(w, 10).jobs_size(), 0);
  ok(w, a.jobs(0));
  advance(600);
  l = lease(w, 10);
  ASSERT_EQ(names(l), Names{"x"});
  // An expired lease, once reaped, frees the worker.
  advance(15001);
  EXPECT_EQ(store_->reap_expired(), 1);
  advance(2000);
  l = lease(w, 10);
  ASSERT_EQ(names(l), Names{"x"});
  EXPECT_EQ(l.jobs(0).attempt(), 3);
  // Released, x can be leased again at once.
  EXPECT_EQ(store_->release(w, {l.jobs(0).lease_id()}), 1);
  l = lease(w, 10);
  ASSERT_EQ(names(l), Names{"x"});
  // Cancelled with its experiment: the worker takes other work.
  store_->submit(P({J("b")}, "t2"), 0, false);
  EXPECT_EQ(lease(w, 10).jobs_size(), 0);
  EXPECT_EQ(store_->cancel(r.experiment_id), 1);
  EXPECT_EQ(names(lease(w, 10)), Names{"b"});
}

TEST_F(StoreTest, WorkerHeldByAnExclusiveJobLongPollsUntilItIsReported) {
  store_->submit(P({X("x"), J("a")}), 0, false);
  auto w = worker();
  auto l = lease(w, 10);
  ASSERT_EQ(names(l), Names{"x"});
  auto waiter = std::async(std::launch::async, [&] {
    v1::LeaseRequest r;
    r.set_worker_id(w);
    r.set_max_jobs(5);
    r.set_wait_ms(20000);
    return store_->lease(r);
  });
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  // A non-retryable failure frees the worker too, and wakes its long-poll.
  const auto t0 = std::chrono::steady_clock::now();
  fail(w, l.jobs(0), "bad", false);
  auto got = waiter.get();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(names(got), Names{"a"});
}

TEST_F(StoreTest, HeldBackWorkerWakesWhenAnotherTakesTheExclusiveJob) {
  store_->submit(P({J("a"), J("b")}), 0, false);
  auto busy = worker({}, "busy");
  auto idle = worker({}, "idle");
  ASSERT_EQ(names(lease(busy, 1)), Names{"a"});
  store_->submit(P({X("x")}, "t2"), 0, false);
  auto waiter = std::async(std::launch::async, [&] {
    v1::LeaseRequest r;
    r.set_worker_id(busy);
    r.set_max_jobs(5);
    r.set_wait_ms(20000);
    return store_->lease(r);
  });
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(names(lease(idle, 10)), Names{"x"});
  EXPECT_EQ(names(waiter.get()), Names{"b"});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(StoreTest, ExclusiveIsPartOfTheContentKeyOnlyWhenSet) {
  auto first = store_->submit(P({J("a"), J("b")}), 0, false);
  drain(worker());
  // The same job, exclusive: a result measured beside others does not stand in for it.
  auto again = store_->submit(P({J("a"), X("b")}), 0, false);
  EXPECT_EQ(again.n_reused, 1);
  EXPECT_EQ(state(again.experiment_id, "b"), "pending");
  (void)first;
}

TEST_F(StoreTest, VersionOneDatabaseIsUpgradedInPlace) {
  store_.reset();
  const std::string old = dir_ + "/v1.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(old.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, kMigrations[0], nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE schema_version(version INTEGER NOT NULL);"
                         "INSERT INTO schema_version VALUES(1);"
                         "INSERT INTO experiments(id, name, parts, params_json, priority, state, submitted_ms) "
                         "VALUES(1, 'old', '', '{}', 0, 'running', 1);"
                         "INSERT INTO jobs(id, experiment_id, name, kind, params_json, model, reduce, state, priority, "
                         "max_attempts, timeout_s, content_key, n_deps_left, created_ms) "
                         "VALUES(1, 1, 'j', 'k', '{}', '', 1, 'pending', 0, 3, 0, 'key', 0, 1);",
                         nullptr, nullptr, &err),
            SQLITE_OK)
      << (err ? err : "");
  sqlite3_close(db);
  StoreOptions o;
  o.clock = [this] { return now_.load(); };
  store_ = Store::open(old, o);
  {
    sqlite3* check = nullptr;
    ASSERT_EQ(sqlite3_open(old.c_str(), &check), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(check, "SELECT MAX(version) FROM schema_version", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(st, 0), Store::schema_version());
    sqlite3_finalize(st);
    sqlite3_close(check);
  }
  // The old job is not exclusive, and leasing (which reads the new column and index) works.
  auto w = worker();
  auto l = lease(w, 10);
  ASSERT_EQ(l.jobs_size(), 1);
  EXPECT_EQ(l.jobs(0).name(), "j");
  EXPECT_FALSE(l.jobs(0).exclusive());
  auto r = store_->submit(P({X("x")}), 0, false);
  ok(w, l.jobs(0));
  EXPECT_TRUE(lease(w, 10).jobs(0).exclusive());
  EXPECT_EQ(status(1).state(), "done");
  (void)r;
}

}  // namespace
}  // namespace spt::server

// ---- issue 11: failures explained, retries counted, a rate window for bursts
namespace spt::server {
namespace {

TEST_F(StoreTest, StatusGroupsOwnFailuresAndCountsRetriesAndParts) {
  auto r = store_->submit(P({J("a/1"), J("a/2"), J("b/1"), J("c/1", {"a/1"})}), 0, false);
  auto w = worker();
  auto l = lease(w);
  ASSERT_EQ(l.jobs_size(), 3);
  for (const auto& j : l.jobs()) {
    if (j.name() == "b/1") fail(w, j, "flaky", true);
    else fail(w, j, "model x not found", false);
  }
  advance(1000);  // past b/1's backoff
  l = lease(w);
  ASSERT_EQ(l.jobs_size(), 1);
  ok(w, l.jobs(0));
  const auto s = status(r.experiment_id);
  ASSERT_EQ(s.failures_size(), 1);
  EXPECT_EQ(s.failures(0).error(), "model x not found");
  EXPECT_EQ(s.failures(0).count(), 2);
  EXPECT_EQ(s.failures(0).example_job(), "a/1");
  EXPECT_EQ(s.failure_kinds(), 1);
  EXPECT_EQ(s.failed_by_dependency(), 1);  // c/1 never ran
  EXPECT_EQ(s.retries(), 1);               // b/1's second attempt
  ASSERT_EQ(s.part_progress_size(), 3);
  EXPECT_EQ(s.part_progress(0).part(), "a");
  EXPECT_EQ(s.part_progress(0).counts().failed(), 2);
  EXPECT_EQ(s.part_progress(1).counts().done(), 1);
  EXPECT_EQ(s.part_progress(2).part(), "c");
}

TEST_F(StoreTest, VersionTwoDatabaseGetsJobPartsOnUpgrade) {
  store_.reset();
  const std::string old = dir_ + "/v2.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(old.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  for (int v = 0; v < 2; ++v)
    ASSERT_EQ(sqlite3_exec(db, kMigrations[v], nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  std::string sql =
      "CREATE TABLE schema_version(version INTEGER NOT NULL);"
      "INSERT INTO schema_version VALUES(2);"
      "INSERT INTO experiments(id, name, parts, params_json, priority, state, submitted_ms) "
      "VALUES(1, 'old', '', '{}', 0, 'running', 1);";
  // Names with and without a part, and a part whose first segment is empty.
  const char* names[] = {"a/x", "a/y/z", "b/1", "top", "/lead"};
  for (int i = 0; i < 5; ++i)
    sql += "INSERT INTO jobs(id, experiment_id, name, kind, params_json, model, reduce, state, priority, "
           "max_attempts, timeout_s, content_key, n_deps_left, created_ms, attempts) VALUES(" +
           std::to_string(i + 1) + ", 1, '" + names[i] + "', 'k', '{}', '', 0, '" +
           (i == 2 ? "failed" : "pending") + "', 0, 3, 0, 'key" + std::to_string(i) + "', 0, 1, " +
           (i == 1 ? "3" : "0") + ");";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_close(db);
  StoreOptions o;
  o.clock = [this] { return now_.load(); };
  store_ = Store::open(old, o);
  const auto s = status(1);
  ASSERT_EQ(s.part_progress_size(), 3);  // '' (top, /lead), a, b
  EXPECT_EQ(s.part_progress(0).part(), "");
  EXPECT_EQ(s.part_progress(0).counts().pending(), 2);
  EXPECT_EQ(s.part_progress(1).part(), "a");
  EXPECT_EQ(s.part_progress(1).counts().total(), 2);
  EXPECT_EQ(s.part_progress(2).part(), "b");
  EXPECT_EQ(s.part_progress(2).counts().failed(), 1);
  EXPECT_EQ(s.counts().total(), 5);
  EXPECT_EQ(s.counts().pending(), 4);
  EXPECT_EQ(s.counts().failed(), 1);
  EXPECT_EQ(s.retries(), 2);               // a/y/z: three leases
  EXPECT_EQ(s.failed_by_dependency(), 1);  // b/1 was never leased
  // New jobs get their part at submit, beside the migrated ones.
  auto r = store_->submit(P({J("c/1"), J("d")}), 0, false);
  const auto n = status(r.experiment_id);
  ASSERT_EQ(n.part_progress_size(), 2);
  EXPECT_EQ(n.part_progress(0).part(), "");
  EXPECT_EQ(n.part_progress(1).part(), "c");
  EXPECT_EQ(n.counts().pending(), 2);
}

TEST_F(StoreTest, ThroughputWindowSpansBurstsMinutesApart) {
  std::vector<plan::JobSpec> jobs;
  for (int i = 0; i < 20; ++i) jobs.push_back(J("j" + std::to_string(i)));
  auto r = store_->submit(P(jobs), 0, false);
  auto w = worker();
  advance(5 * 60000);
  auto l = lease(w, 10);
  for (const auto& j : l.jobs()) ok(w, j);  // one burst of 10 at t = 5 min
  advance(2 * 60000);                         // nothing for 2 minutes
  const auto s = status(r.experiment_id);
  // Window = elapsed / 3 = 140 s (a fixed minute would say 0 jobs/s).
  EXPECT_NEAR(s.throughput_per_s(), 10 / 140.0, 1e-9);
  EXPECT_NEAR(s.eta_s(), 10 / (10 / 140.0), 1e-6);
}

// ---- worker identity (issue 12)

TEST_F(StoreTest, WorkerSecretsVerifyAcrossReopenAndEndWithTheWorker) {
  v1::Capabilities caps;
  const auto a = store_->register_worker("a", caps), b = store_->register_worker("b", caps);
  EXPECT_EQ(a.worker_secret().size(), 64u);
  EXPECT_NE(a.worker_secret(), b.worker_secret());
  using C = Store::WorkerCheck;
  EXPECT_EQ(store_->check_worker_secret(a.worker_id(), a.worker_secret()), C::kOk);
  EXPECT_EQ(store_->check_worker_secret(a.worker_id(), b.worker_secret()), C::kMismatch);
  EXPECT_EQ(store_->check_worker_secret(a.worker_id(), ""), C::kMismatch);
  EXPECT_EQ(store_->check_worker_secret("w-nobody", a.worker_secret()), C::kUnknown);
  store_.reset();  // a restarted coordinator reads the digests back from the file
  open();
  EXPECT_EQ(store_->check_worker_secret(a.worker_id(), a.worker_secret()), C::kOk);
  EXPECT_EQ(store_->check_worker_secret(b.worker_id(), a.worker_secret()), C::kMismatch);
  store_->deregister_worker(a.worker_id());
  EXPECT_EQ(store_->check_worker_secret(a.worker_id(), a.worker_secret()), C::kUnknown);
  advance(10 * 3000);
  EXPECT_EQ(store_->prune_workers(), 1);  // b, silent and holding nothing
  EXPECT_EQ(store_->check_worker_secret(b.worker_id(), b.worker_secret()), C::kUnknown);
}

TEST_F(StoreTest, OnlyTheLeaseHolderMayReportRenewOrReleaseIt) {
  auto r = store_->submit(P({J("a")}), 0, false);
  const auto owner = worker({}, "owner"), other = worker({}, "other");
  auto l = lease(owner, 1);
  ASSERT_EQ(l.jobs_size(), 1);
  const auto& j = l.jobs(0);
  auto forged = ok(other, j, R"({"v":666})");
  EXPECT_EQ(forged.accepted_size(), 0);
  EXPECT_EQ(forged.refused_size(), 1);
  v1::HeartbeatRequest hb;
  hb.set_worker_id(other);
  hb.add_lease_ids(j.lease_id());
  advance(10000);
  EXPECT_EQ(store_->heartbeat(hb).lost_lease_ids_size(), 1);
  EXPECT_EQ(store_->release(other, {j.lease_id()}), 0);
  advance(6000);  // past the owner's ttl: the other's heartbeat renewed nothing
  EXPECT_EQ(store_->reap_expired(), 1);
  advance(1000);  // the retry backoff
  auto l2 = lease(owner, 1);
  ASSERT_EQ(l2.jobs_size(), 1);
  EXPECT_EQ(ok(owner, l2.jobs(0)).accepted_size(), 1);
  EXPECT_EQ(job(r.experiment_id, "a").result_json(), R"({"v":1})");
}

}  // namespace
}  // namespace spt::server
