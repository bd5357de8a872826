// A coordinator no submission can sink (issue 12), through the real
// spt-server on loopback with its real SQLite file: per-submission limits,
// shared submission data stored once, chunked inserts that leave status and
// heartbeats answering, and a server killed mid-submission that restarts
// clean. Timings here are generous bounds proving the lock is released;
// bench/submit_bench.cc gives the figures.
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "client/connection.h"
#include "harness.h"
#include "store.h"
#include "spt/hash.h"
#include "spt/util.h"
#include "spt/version.h"

namespace spt::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

grpc::Status submit_raw(Server& s, const std::string& exp, const std::map<std::string, std::string>& params,
                        v1::SubmitResponse* resp = nullptr, double timeout_s = 60) {
  grpc::ClientContext ctx;
  s.prepare(ctx, timeout_s);
  v1::SubmitRequest req;
  req.set_experiment(exp);
  for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
  v1::SubmitResponse r;
  return s.control().Submit(&ctx, req, resp ? resp : &r);
}

std::vector<v1::ExperimentStatus> all_experiments(Server& s) {
  grpc::ClientContext ctx;
  s.prepare(ctx);
  v1::StatusRequest req;
  req.set_all(true);
  v1::StatusResponse resp;
  const auto st = s.control().Status(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << rpc::status_text(st);
  return {resp.experiments().begin(), resp.experiments().end()};
}

// Rows in a table of the server's database, read with SQLite directly.
int64_t count_rows(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

std::string query_text(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

int64_t db_bytes(const Server& s) {
  int64_t n = 0;
  for (const char* suffix : {"", "-wal"})
    if (fs::exists(s.db() + suffix)) n += static_cast<int64_t>(fs::file_size(s.db() + suffix));
  return n;
}

struct Worker {
  std::string id, secret;
};

Worker register_worker(Server& s) {
  grpc::ClientContext ctx;
  s.prepare(ctx);
  v1::RegisterRequest req;
  req.set_name("probe");
  req.mutable_capabilities()->add_job_kinds("selftest.map");
  req.mutable_capabilities()->add_job_kinds("selftest.reduce");
  v1::RegisterResponse resp;
  const auto st = s.workers().Register(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << rpc::status_text(st);
  return {resp.worker_id(), resp.worker_secret()};
}

v1::LeaseResponse lease(Server& s, const Worker& w, int max_jobs) {
  grpc::ClientContext ctx;
  s.prepare(ctx);
  v1::LeaseRequest req;
  req.set_worker_id(w.id);
  req.set_worker_secret(w.secret);
  req.set_max_jobs(max_jobs);
  req.set_wait_ms(0);
  v1::LeaseResponse resp;
  const auto st = s.workers().Lease(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << rpc::status_text(st);
  return resp;
}

// The latest experiment, once its state is "submitting" with some jobs
// stored (polled through Status).
std::optional<v1::ExperimentStatus> wait_submitting(Server& s, double timeout_s) {
  std::optional<v1::ExperimentStatus> seen;
  wait_until(
      [&] {
        for (const auto& e : all_experiments(s))
          if (e.state() == "submitting" && e.counts().total() > 0) seen = e;
        return seen.has_value();
      },
      timeout_s, 0.02);
  return seen;
}

TEST(Submission, OverTheJobLimitIsRefusedBeforeAnythingIsStored) {
  TempDir dir;
  ServerOptions o;
  o.extra = {"--max-jobs-per-submission", "1000"};
  Server s(dir, o);
  ASSERT_TRUE(s.start()) << s.process()->log();

  grpc::Status st = submit_raw(s, "selftest", {{"n", "1000"}});  // 1000 maps + the reduce
  ASSERT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED) << rpc::status_text(st);
  for (const char* want : {"1001 jobs", "limit is 1000 jobs", "--max-jobs-per-submission=1000"})
    EXPECT_NE(st.error_message().find(want), std::string::npos) << want << " not in: " << st.error_message();
  EXPECT_TRUE(all_experiments(s).empty());
  EXPECT_EQ(count_rows(s.db(), "SELECT COUNT(*) FROM jobs"), 0);
  EXPECT_EQ(count_rows(s.db(), "SELECT COUNT(*) FROM experiments"), 0);

  // exp10 on a 4096 x 4096 model (16.8 M head jobs, inside the params'
  // ranges) is refused before its heads are listed, not after an OOM.
  const auto t0 = Clock::now();
  st = submit_raw(s, "exp10",
                  {{"model", "/models/huge"}, {"n_layer", "4096"}, {"n_head", "4096"}, {"exp3ef", "none"}});
  ASSERT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED) << rpc::status_text(st);
  EXPECT_NE(st.error_message().find("16777216"), std::string::npos) << st.error_message();
  EXPECT_LT(ms_since(t0), 5000);  // generous: it builds nothing (an OOM-bound plan took minutes)
  EXPECT_EQ(count_rows(s.db(), "SELECT COUNT(*) FROM jobs"), 0);

  // Within the limit it is accepted; the client prints the refusal and a hint.
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit_raw(s, "selftest", {{"n", "999"}}, &resp).ok());
  EXPECT_EQ(resp.n_jobs(), 1000);
  const auto r = run({client_bin(), "--server", s.address(), "--token", s.token(), "submit", "selftest", "--param",
                      "n=5000"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("RESOURCE_EXHAUSTED"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--max-jobs-per-submission=1000"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hint"), std::string::npos) << r.err;
}

TEST(Submission, AFourMiBTagIsRefusedByDefaultAndStoredOnceWhenAllowed) {
  const std::string tag(4 << 20, 't');
  {
    TempDir dir;
    Server s(dir);
    ASSERT_TRUE(s.start()) << s.process()->log();
    const grpc::Status st = submit_raw(s, "selftest", {{"n", "50"}, {"tag", tag}});
    ASSERT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED) << rpc::status_text(st);
    EXPECT_NE(st.error_message().find("--max-submission-bytes=4194304"), std::string::npos) << st.error_message();
    EXPECT_EQ(count_rows(s.db(), "SELECT COUNT(*) FROM experiments"), 0);
  }
  TempDir dir;
  ServerOptions o;
  o.extra = {"--max-submission-bytes", std::to_string(8 << 20)};
  Server s(dir, o);
  ASSERT_TRUE(s.start()) << s.process()->log();
  const int64_t before = db_bytes(s);
  v1::SubmitResponse resp;
  const grpc::Status st = submit_raw(s, "selftest", {{"n", "50"}, {"tag", tag}}, &resp);
  ASSERT_TRUE(st.ok()) << rpc::status_text(st);
  // Before: 51 copies (208 MiB for this request). Now a few, however many
  // jobs: the experiment's params, its shared params, the WAL's pages of
  // those rows (a bound independent of n).
  const int64_t grown = db_bytes(s) - before;
  EXPECT_LT(grown, 6 * static_cast<int64_t>(tag.size())) << "database grew by " << grown << " bytes";
  EXPECT_EQ(count_rows(s.db(), "SELECT MAX(length(params_json)) FROM jobs"), 8);  // {"i":49}
  // The worker still sees it in each job's params, and so do the logs.
  const Worker w = register_worker(s);
  const auto l = lease(s, w, 1);
  ASSERT_EQ(l.jobs_size(), 1);
  const auto p = nlohmann::json::parse(l.jobs(0).params_json());
  EXPECT_EQ(p.at("tag").get<std::string>().size(), tag.size());
  EXPECT_EQ(p.at("n"), 50);
  EXPECT_TRUE(p.contains("i"));
  const auto lg = job_logs(s, resp.experiment_id(), "map/7");
  EXPECT_EQ(nlohmann::json::parse(lg.params_json()).at("i"), 7);
}

TEST(Submission, ContentKeysOfSharedParamsAreThoseOfTheMergedParams) {
  TempDir dir;
  Server s(dir);
  ASSERT_TRUE(s.start()) << s.process()->log();
  const int64_t id = submit(s, "selftest", {{"n", "3"}, {"tag", "k"}, {"work", "7"}});
  // The key every map job had when it carried all params itself (the
  // pre-v4 formula, store.cc content_key): length-prefixed fields.
  auto feed = [](Sha256& h, const std::string& v) {
    h.update(std::to_string(v.size()));
    h.update(":");
    h.update(v);
  };
  const nlohmann::json params = {{"n", 3},     {"work", 7},      {"fail", 0.0}, {"stall", 0.0},
                                 {"stall_s", 30.0}, {"seed", 1}, {"tag", "k"},  {"i", 2}};
  Sha256 h;
  for (const std::string& f : {std::string("spt.job.v1"), std::string(SPT_CODE_VERSION), std::string("selftest.map"),
                               std::string(), canonical_json(params)})
    feed(h, f);
  EXPECT_EQ(query_text(s.db(), "SELECT content_key FROM jobs WHERE experiment_id = " + std::to_string(id) +
                                   " AND name = 'map/2'"),
            h.hex());
  // A large shared value enters by digest: still one key per distinct tag.
  const std::string big(4000, 'b');
  const int64_t a = submit(s, "selftest", {{"n", "2"}, {"tag", big}});
  const int64_t b = submit(s, "selftest", {{"n", "2"}, {"tag", big + "x"}});
  auto key = [&](int64_t e) {
    return query_text(s.db(), "SELECT content_key FROM jobs WHERE experiment_id = " + std::to_string(e) +
                                  " AND name = 'map/1'");
  };
  EXPECT_NE(key(a), key(b));
  EXPECT_EQ(key(a).size(), 64u);
}

TEST(Submission, StatusAndHeartbeatAnswerDuringALargeSubmission) {
  TempDir dir;
  Server s(dir);
  ASSERT_TRUE(s.start()) << s.process()->log();
  // A worker holding a lease of a small experiment, as in the issue.
  const int64_t small = submit(s, "selftest", {{"n", "4"}});
  const Worker w = register_worker(s);
  const auto held = lease(s, w, 4);
  ASSERT_EQ(held.jobs_size(), 4);

  std::atomic<bool> done{false};
  grpc::Status big_status;
  v1::SubmitResponse big;
  std::thread submitter([&] {
    big_status = submit_raw(s, "selftest", {{"n", "100000"}, {"seed", "77"}}, &big, 120);
    done = true;
  });
  const auto seen = wait_submitting(s, 60);
  ASSERT_TRUE(seen.has_value()) << "never saw the submission in progress";
  EXPECT_EQ(seen->jobs_planned(), 100001);
  EXPECT_LT(seen->counts().total(), 100001);
  EXPECT_EQ(seen->counts().pending() + seen->counts().leased(), 0);  // held until the last chunk

  double worst_status = 0, worst_heartbeat = 0;
  int probes = 0;
  while (!done && probes < 20) {
    auto t0 = Clock::now();
    {
      grpc::ClientContext ctx;
      s.prepare(ctx);
      v1::StatusRequest req;
      v1::StatusResponse resp;
      ASSERT_TRUE(s.control().Status(&ctx, req, &resp).ok());
    }
    worst_status = std::max(worst_status, ms_since(t0));
    t0 = Clock::now();
    {
      grpc::ClientContext ctx;
      s.prepare(ctx);
      v1::HeartbeatRequest req;
      req.set_worker_id(w.id);
      req.set_worker_secret(w.secret);
      for (const auto& j : held.jobs()) req.add_lease_ids(j.lease_id());
      v1::HeartbeatResponse resp;
      ASSERT_TRUE(s.workers().Heartbeat(&ctx, req, &resp).ok());
      EXPECT_EQ(resp.lost_lease_ids_size(), 0);
    }
    worst_heartbeat = std::max(worst_heartbeat, ms_since(t0));
    // Nothing of the experiment being stored is leasable before its last
    // chunk is in (its state turns running first; then its jobs are released).
    if (!done) {
      const auto l = lease(s, w, 10);
      for (const auto& j : l.jobs())
        if (j.experiment_id() != small)
          EXPECT_EQ(experiment_status(s, j.experiment_id()).state(), "running") << j.name();
    }
    ++probes;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  submitter.join();
  ASSERT_TRUE(big_status.ok()) << rpc::status_text(big_status);
  EXPECT_GE(probes, 2) << "the submission ended before it could be probed";
  EXPECT_LT(worst_status, 500) << "status blocked by the submission";
  EXPECT_LT(worst_heartbeat, 500) << "heartbeat blocked by the submission";
  // Once in, it runs: every map job is leasable and the reduce waits for them.
  const auto st = experiment_status(s, big.experiment_id());
  EXPECT_EQ(st.state(), "running");
  EXPECT_EQ(st.counts().total(), 100001);
  EXPECT_EQ(st.counts().pending() + st.counts().leased(), 100000);
  EXPECT_EQ(st.counts().blocked(), 1);
  EXPECT_EQ(count_rows(s.db(), "SELECT COUNT(*) FROM deps d JOIN jobs j ON j.id = d.job_id WHERE j.experiment_id = " +
                                   std::to_string(big.experiment_id())),
            100000);
}

TEST(Submission, AServerKilledMidSubmissionRestartsClean) {
  TempDir dir;
  Server s(dir);
  ASSERT_TRUE(s.start()) << s.process()->log();
  std::thread submitter([&] { (void)submit_raw(s, "selftest", {{"n", "100000"}, {"seed", "5"}}, nullptr, 120); });
  const auto seen = wait_submitting(s, 60);
  ASSERT_TRUE(seen.has_value());
  s.kill9();
  submitter.join();
  ASSERT_TRUE(s.start()) << s.process()->log();

  const auto all = all_experiments(s);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].state(), "failed");
  EXPECT_EQ(all[0].counts().total(), 0);
  EXPECT_NE(all[0].submit_error().find("coordinator stopped"), std::string::npos) << all[0].submit_error();
  EXPECT_EQ(count_rows(s.db(), "SELECT COUNT(*) FROM jobs"), 0);
  EXPECT_EQ(count_rows(s.db(), "SELECT COUNT(*) FROM deps"), 0);
  const Worker w = register_worker(s);
  EXPECT_EQ(lease(s, w, 100).jobs_size(), 0);  // nothing of it runs
  // Retrying it cannot half-run it either: it has no jobs.
  // And the coordinator takes new work as before.
  const int64_t next = submit(s, "selftest", {{"n", "3"}});
  EXPECT_EQ(lease(s, w, 100).jobs_size(), 3);
  EXPECT_EQ(experiment_status(s, next).state(), "running");
}

// The store itself, in process: a plan of several chunks keeps its graph
// and its content-key reuse exact across them.
class ChunkedStore : public ::testing::Test {
 protected:
  void SetUp() override { store_ = server::Store::open(dir_.file("spt.db")); }

  plan::Plan fan_in(int n, const std::string& tag) {
    plan::Plan p;
    p.experiment = "fan";
    p.params = {{"tag", tag}};
    p.shared = {{"tag", tag}};
    std::vector<std::string> maps;
    for (int i = 0; i < n; ++i) {
      p.jobs.push_back({"m/" + std::to_string(i), "k", {{"i", i}}, {}});
      maps.push_back(p.jobs.back().name);
    }
    p.jobs.push_back({"reduce", "r", nlohmann::json::object(), maps, "", true});
    p.jobs.push_back({"after", "r", nlohmann::json::object(), {"reduce"}});
    return p;
  }
  std::string worker() {
    v1::Capabilities caps;
    return store_->register_worker("w", caps).worker_id();
  }
  // Leases up to max jobs and reports each ok; returns how many.
  int complete(const std::string& w, int max) {
    v1::LeaseRequest r;
    r.set_worker_id(w);
    r.set_max_jobs(max);
    const auto l = store_->lease(r);
    v1::ReportRequest rep;
    rep.set_worker_id(w);
    for (const auto& j : l.jobs()) {
      auto* x = rep.add_results();
      x->set_job_id(j.job_id());
      x->set_lease_id(j.lease_id());
      x->set_ok(true);
      x->set_result_json(j.params_json());  // echoes the merged params
    }
    store_->report(rep);
    return l.jobs_size();
  }

  TempDir dir_;
  std::unique_ptr<server::Store> store_;
};

TEST_F(ChunkedStore, ReuseAndDependencyCountsHoldAcrossChunks) {
  constexpr int n = 3 * server::Store::kSubmitChunkJobs + 17;  // several chunks, the reduce's deps rows too
  const auto first = store_->submit(fan_in(n, "a"), 0, false);
  EXPECT_EQ(first.n_jobs, n + 2);
  const std::string w = worker();
  int done = 0;
  while (done < n / 2) done += complete(w, std::min(1000, n / 2 - done));
  // The worker saw each job's shared params merged with its own.
  const auto st = store_->experiment_status(first.experiment_id);
  EXPECT_EQ(st.counts().done(), n / 2);

  // The same plan again: the done half is answered from stored results, the
  // rest is queued; the reduce waits for exactly the jobs not yet done.
  const auto again = store_->submit(fan_in(n, "a"), 0, false);
  EXPECT_EQ(again.n_reused, n / 2);
  auto s2 = store_->experiment_status(again.experiment_id);
  EXPECT_EQ(s2.state(), "running");
  EXPECT_EQ(s2.counts().pending(), n - n / 2);
  EXPECT_EQ(s2.counts().blocked(), 2);
  // Another tag is other work: nothing reused.
  EXPECT_EQ(store_->submit(fan_in(10, "b"), 0, false).n_reused, 0);
  // Finishing the second experiment's maps releases its reduce, then `after`.
  const auto logs = store_->logs(store_->find_job(again.experiment_id, "m/3"));
  EXPECT_EQ(nlohmann::json::parse(logs.params_json()), (nlohmann::json{{"i", 3}, {"tag", "a"}}));
  store_->cancel(first.experiment_id);
  while (complete(w, 1000) > 0) {
  }
  EXPECT_EQ(store_->experiment_status(again.experiment_id).state(), "done");
}

TEST_F(ChunkedStore, AClientThatGoesAwayLeavesNothingRunnable) {
  int calls = 0;
  EXPECT_THROW(store_->submit(fan_in(3 * server::Store::kSubmitChunkJobs, "g"), 0, false, [&] { return ++calls > 2; }),
               server::BadRequest);
  const auto all = store_->experiments(true);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].state(), "failed");
  EXPECT_EQ(all[0].counts().total(), 0);
  EXPECT_NE(all[0].submit_error().find("client went away"), std::string::npos) << all[0].submit_error();
  EXPECT_EQ(complete(worker(), 100), 0);
}

}  // namespace
}  // namespace spt::test
