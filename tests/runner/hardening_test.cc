// Issue 12, "the coordinator must stay responsive": report hardening, large
// reduce inputs as blobs, dying workers and the reaper. The store is driven
// directly on a real SQLite file with an injected clock; the gRPC surface
// runs in process on loopback (server.h).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <limits>
#include <thread>

#include "server.h"
#include "spt/plan.h"

namespace spt::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kGiB = int64_t{1} << 30;

plan::Plan plan_of(int n_maps, bool with_reduce) {
  plan::Plan p;
  p.experiment = "t";
  p.params = json::object();
  plan::JobSpec reduce;
  reduce.name = "reduce";
  reduce.kind = "r";
  reduce.reduce = true;
  reduce.params = json::object();
  for (int i = 0; i < n_maps; ++i) {
    plan::JobSpec s;
    s.name = "map/" + std::to_string(i);
    s.kind = "m";
    s.params = {{"i", i}};
    p.jobs.push_back(s);
    reduce.deps.push_back(s.name);
  }
  if (with_reduce) p.jobs.push_back(reduce);
  return p;
}

std::string temp_dir(const char* what) {
  std::string tmpl = std::string("/tmp/spt_") + what + "_XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
  return tmpl;
}

// ---------------------------------------------------------------- the store

class Hardening : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir("hardening"); }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void open(StoreOptions o = {}) {
    o.lease_ttl_ms = 15000;
    o.heartbeat_ms = 3000;
    o.max_attempts = 3;
    o.backoff_base_ms = 500;
    o.clock = [this] { return now_.load(); };
    store_ = Store::open(dir_ + "/spt.db", o);
  }
  void advance(int64_t ms) { now_ += ms; }
  std::string worker(const std::string& name, int64_t mem, const std::string& host = "node-1") {
    v1::Capabilities caps;
    caps.set_device_kind("cpu");
    caps.set_memory_bytes(mem);
    caps.set_hostname(host);
    return store_->register_worker(name, caps).worker_id();
  }
  v1::LeaseResponse lease(const std::string& w, int max = 10) {
    v1::LeaseRequest r;
    r.set_worker_id(w);
    r.set_max_jobs(max);
    return store_->lease(r);
  }
  // A heartbeat renewing `leases` and saying `running` are running.
  v1::HeartbeatResponse beat(const std::string& w, const std::vector<const v1::Job*>& leases,
                             const std::vector<const v1::Job*>& running) {
    v1::HeartbeatRequest h;
    h.set_worker_id(w);
    for (const auto* j : leases) h.add_lease_ids(j->lease_id());
    for (const auto* j : running) h.add_running_job_ids(j->job_id());
    return store_->heartbeat(h);
  }
  static v1::JobResult* result(v1::ReportRequest& r, const v1::Job& j, double seconds,
                               const std::string& json = R"({"v":1})") {
    auto* x = r.add_results();
    x->set_job_id(j.job_id());
    x->set_lease_id(j.lease_id());
    x->set_ok(true);
    x->set_result_json(json);
    x->set_seconds(seconds);
    return x;
  }
  v1::JobSummary job(int64_t exp, const std::string& name) { return store_->logs(store_->find_job(exp, name)).job(); }
  std::vector<v1::JobEvent> events(int64_t exp, const std::string& name) {
    const auto l = store_->logs(store_->find_job(exp, name));
    return {l.events().begin(), l.events().end()};
  }
  // The worker dies holding `j` (running): silent past its lease's expiry.
  void die_running(const std::string& w, const v1::Job& j) {
    beat(w, {&j}, {&j});
    advance(15001);
    ASSERT_EQ(store_->reap_expired(), 1);
    advance(60000);  // past any backoff
  }

  std::string dir_;
  std::atomic<int64_t> now_{1'700'000'000'000};
  std::unique_ptr<Store> store_;
};

// A NaN run time once failed the whole batch with INTERNAL (SQLite stored
// NaN as NULL into a NOT NULL column); the worker resent it until its
// leases expired. Now each bad result is its job's failure and the rest are stored.
TEST_F(Hardening, BadRunTimesFailTheirJobsAndTheRestOfTheBatchIsStored) {
  open();
  const auto exp = store_->submit(plan_of(5, false), 0, false).experiment_id;
  const auto w = worker("w", kGiB);
  const auto l = lease(w);
  ASSERT_EQ(l.jobs_size(), 5);
  v1::ReportRequest r;
  r.set_worker_id(w);
  result(r, l.jobs(0), 1.5);
  result(r, l.jobs(1), std::numeric_limits<double>::quiet_NaN());
  result(r, l.jobs(2), std::numeric_limits<double>::infinity());
  result(r, l.jobs(3), -2);
  result(r, l.jobs(4), 0.25);
  const auto resp = store_->report(r);
  EXPECT_EQ(resp.accepted_size(), 5);
  EXPECT_EQ(resp.refused_size(), 0);
  ASSERT_EQ(resp.problems_size(), 3);
  for (const auto& p : resp.problems()) {
    EXPECT_TRUE(p.stored_as_failure());
    EXPECT_NE(p.reason().find("invalid run time"), std::string::npos) << p.reason();
  }
  EXPECT_EQ(job(exp, "map/0").state(), "done");
  EXPECT_EQ(job(exp, "map/4").state(), "done");
  for (const char* bad : {"map/1", "map/2", "map/3"}) {
    const auto j = job(exp, bad);
    EXPECT_EQ(j.state(), "pending") << bad;  // retryable: a clock glitch need not recur
    EXPECT_NE(j.error().find("invalid run time"), std::string::npos) << j.error();
  }
}

TEST_F(Hardening, OversizedResultFailsItsJobWithTheLimitNotTheBatch) {
  StoreOptions o;
  o.max_result_bytes = 4096;
  open(o);
  const auto exp = store_->submit(plan_of(2, false), 0, false).experiment_id;
  const auto w = worker("w", kGiB);
  const auto l = lease(w);
  ASSERT_EQ(l.jobs_size(), 2);
  v1::ReportRequest r;
  r.set_worker_id(w);
  result(r, l.jobs(0), 1, R"({"big":")" + std::string(5000, 'x') + R"("})");
  result(r, l.jobs(1), 1)->set_log(std::string(100 << 10, 'l'));  // an overlong log is only trimmed
  const auto resp = store_->report(r);
  EXPECT_EQ(resp.accepted_size(), 2);
  ASSERT_EQ(resp.problems_size(), 1);
  EXPECT_EQ(resp.problems(0).job_id(), l.jobs(0).job_id());
  const auto big = job(exp, "map/0");
  EXPECT_EQ(big.state(), "failed");  // not retryable: the same job makes the same result
  EXPECT_NE(big.error().find("over the coordinator's limit of 4.0 KiB (spt-server --max-result-bytes)"),
            std::string::npos)
      << big.error();
  EXPECT_EQ(job(exp, "map/1").state(), "done");
  EXPECT_EQ(store_->logs(store_->find_job(exp, "map/1")).log().size(), size_t{64 << 10});
}

// The reaper runs while a heartbeat that arrived before the lease's expiry
// waits for the store's lock: the lease must survive. One that arrived
// after the expiry does not save it.
TEST_F(Hardening, AHeartbeatDelayedByTheStoreKeepsItsLease) {
  open();
  const auto exp = store_->submit(plan_of(1, false), 0, false).experiment_id;
  const auto w = worker("w", kGiB);
  const auto l = lease(w);
  ASSERT_EQ(l.jobs_size(), 1);
  const v1::Job j = l.jobs(0);
  advance(14000);  // 1 s before expiry: the heartbeat arrives in time ...
  std::future<v1::HeartbeatResponse> hb;
  const int reaped = store_->reap_expired_after([&] {
    hb = std::async(std::launch::async, [&] { return beat(w, {&j}, {&j}); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // ... and now waits for the lock
    advance(2000);  // the store stays busy past the expiry
  });
  EXPECT_EQ(reaped, 0);
  const auto resp = hb.get();
  EXPECT_EQ(resp.lost_lease_ids_size(), 0);
  EXPECT_EQ(job(exp, "map/0").state(), "leased");
  EXPECT_EQ(store_->reap_expired(), 0);  // renewed from when it got the lock

  advance(16000);  // expired; a heartbeat arriving now is too late
  const int late = store_->reap_expired_after([&] {
    hb = std::async(std::launch::async, [&] { return beat(w, {&j}, {&j}); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  });
  EXPECT_EQ(late, 1);
  ASSERT_EQ(hb.get().lost_lease_ids_size(), 1);
  EXPECT_EQ(job(exp, "map/0").state(), "pending");
}

TEST_F(Hardening, WorkersDyingWhileRunningAJobAreNamedAndBiggerOnesGetIt) {
  open();  // memory raised after 2 deaths (the default)
  const auto exp = store_->submit(plan_of(2, false), 0, false).experiment_id;
  const auto g1 = worker("gpu-1", 7 * kGiB + kGiB / 2);
  auto l = lease(g1);
  ASSERT_EQ(l.jobs_size(), 2);
  // map/0 runs; map/1 waits behind it in the worker's queue.
  beat(g1, {&l.jobs(0), &l.jobs(1)}, {&l.jobs(0)});
  advance(15001);
  ASSERT_EQ(store_->reap_expired(), 2);
  auto m0 = job(exp, "map/0");
  EXPECT_EQ(m0.state(), "pending");
  EXPECT_EQ(m0.error(), "worker gpu-1 (7.5 GiB) died while running it");
  const auto ev = events(exp, "map/0");
  EXPECT_EQ(ev.back().event(), "died");
  EXPECT_NE(ev.back().detail().find("stopped responding while running it"), std::string::npos);
  // The queued job's lease expired too, but it is no death of its own.
  EXPECT_EQ(job(exp, "map/1").error(), "");
  EXPECT_EQ(events(exp, "map/1").back().event(), "expired");

  // One death proves little: an equal worker may still take it.
  advance(60000);
  const auto g2 = worker("gpu-2", 7 * kGiB + kGiB / 2);
  l = lease(g2, 1);
  ASSERT_EQ(l.jobs_size(), 1);
  ASSERT_EQ(l.jobs(0).job_id(), m0.job_id());
  die_running(g2, l.jobs(0));
  // Two: only a worker with more memory gets it, and status says why.
  const auto g3 = worker("gpu-3", 7 * kGiB + kGiB / 2);
  l = lease(g3);
  ASSERT_EQ(l.jobs_size(), 1);
  EXPECT_NE(l.jobs(0).job_id(), m0.job_id());  // map/1 only
  const auto u = store_->unschedulable();
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].example_job(), "map/0");
  EXPECT_NE(u[0].reason().find("needs more than 7.5 GiB (workers that died running it: gpu-1 (7.5 GiB), "
                               "gpu-2 (7.5 GiB)); largest live worker has 7.5 GiB"),
            std::string::npos)
      << u[0].reason();
  const auto big = worker("big", 16 * kGiB);
  l = lease(big);
  ASSERT_EQ(l.jobs_size(), 1);
  EXPECT_EQ(l.jobs(0).job_id(), m0.job_id());
  EXPECT_GT(l.jobs(0).mem_bytes(), 7 * kGiB + kGiB / 2);
  EXPECT_EQ(l.jobs(0).attempt(), 3);
  beat(big, {&l.jobs(0)}, {&l.jobs(0)});
  advance(15001);
  ASSERT_EQ(store_->reap_expired(), 2);  // (g3's map/1 too: that worker went silent as well)
  m0 = job(exp, "map/0");
  EXPECT_EQ(m0.state(), "failed");
  EXPECT_EQ(m0.error(),
            "workers gpu-1 (7.5 GiB), gpu-2 (7.5 GiB), big (16.0 GiB) died while running it, 3 times: out of memory?");
}

TEST_F(Hardening, OneWorkerDyingRepeatedlyIsNamedOnce) {
  StoreOptions o;
  o.deaths_before_memory_raise = 0;  // never raise: the same worker may take it again
  open(o);
  const auto exp = store_->submit(plan_of(1, false), 0, false).experiment_id;
  const auto w = worker("gpu-3", 7 * kGiB + kGiB / 2);
  for (int i = 0; i < 3; ++i) {
    auto l = lease(w);
    ASSERT_EQ(l.jobs_size(), 1) << i;
    die_running(w, l.jobs(0));
  }
  EXPECT_EQ(job(exp, "map/0").error(), "worker gpu-3 (7.5 GiB) died while running it, 3 times: out of memory?");
}

TEST_F(Hardening, ARestartedWorkerHandsItsOldLeasesBackAtOnce) {
  open();
  const auto exp = store_->submit(plan_of(3, false), 0, false).experiment_id;
  const auto old = worker("gpu-3", 2 * kGiB, "node-7");
  auto l = lease(old);
  ASSERT_EQ(l.jobs_size(), 3);
  beat(old, {&l.jobs(0), &l.jobs(1), &l.jobs(2)}, {&l.jobs(0)});
  // A namesake elsewhere, or one that names no host, is another worker.
  worker("gpu-3", 2 * kGiB, "node-8");
  worker("gpu-3", 2 * kGiB, "");
  EXPECT_EQ(job(exp, "map/0").state(), "leased");
  advance(1000);  // long before the lease expires
  const auto fresh = worker("gpu-3", 2 * kGiB, "node-7");
  const auto m0 = job(exp, "map/0");
  EXPECT_EQ(m0.state(), "pending");
  EXPECT_EQ(m0.error(), "worker gpu-3 (2.0 GiB) died while running it");
  EXPECT_NE(events(exp, "map/0").back().detail().find("registered again under its name on node-7"),
            std::string::npos);
  EXPECT_EQ(job(exp, "map/1").state(), "pending");
  EXPECT_EQ(job(exp, "map/1").error(), "");
  // After one death the restarted worker (same memory) may take them again.
  advance(60000);
  EXPECT_EQ(lease(fresh).jobs_size(), 3);
}

// ---------------------------------------------------------------- gRPC, in process

struct InProcess {
  explicit InProcess(int64_t inline_inputs_max_bytes) : dir(temp_dir("hardening_srv")) {
    ServerConfig cfg;
    cfg.listen = "127.0.0.1:0";
    cfg.data_dir = dir;
    cfg.token = "t0ken";
    cfg.store.inline_inputs_max_bytes = inline_inputs_max_bytes;
    server = Server::start(cfg);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    auto ch = grpc::CreateCustomChannel(server->address(), grpc::InsecureChannelCredentials(), args);
    stub = v1::WorkerService::NewStub(ch);
    v1::RegisterRequest req;
    req.set_name("w");
    v1::RegisterResponse resp;
    if (!stub->Register(ctx().get(), req, &resp).ok()) throw std::runtime_error("register");
    id = resp.worker_id();
    secret = resp.worker_secret();
  }
  ~InProcess() {
    server.reset();
    fs::remove_all(dir);
  }
  std::unique_ptr<grpc::ClientContext> ctx() const {
    auto c = std::make_unique<grpc::ClientContext>();
    c->AddMetadata("authorization", "Bearer t0ken");
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return c;
  }
  v1::LeaseResponse lease(int max) {
    v1::LeaseRequest r;
    r.set_worker_id(id);
    r.set_worker_secret(secret);
    r.set_max_jobs(max);
    v1::LeaseResponse resp;
    const auto s = stub->Lease(ctx().get(), r, &resp);
    if (!s.ok()) throw std::runtime_error("lease: " + s.error_message());
    return resp;
  }
  v1::ReportResponse report(v1::ReportRequest r) {
    r.set_worker_id(id);
    r.set_worker_secret(secret);
    v1::ReportResponse resp;
    const auto s = stub->Report(ctx().get(), r, &resp);
    if (!s.ok()) throw std::runtime_error("report: " + s.error_message());
    return resp;
  }
  std::string fetch(const std::string& sha) {
    v1::FetchBlobRequest r;
    r.set_sha256(sha);
    auto c = ctx();
    auto in = stub->FetchBlob(c.get(), r);
    std::string out;
    v1::BlobChunk ch;
    while (in->Read(&ch)) out += ch.data();
    if (!in->Finish().ok()) throw std::runtime_error("fetch");
    return out;
  }
  // Submits maps + reduce, reports every map with a ~2 KB result, leases the reduce.
  v1::Job reduce_job(int n) {
    server->store().submit(plan_of(n, true), 0, false);
    auto l = lease(n);
    v1::ReportRequest r;
    for (const auto& j : l.jobs()) {
      auto* x = r.add_results();
      x->set_job_id(j.job_id());
      x->set_lease_id(j.lease_id());
      x->set_ok(true);
      x->set_result_json(json{{"name", j.name()}, {"pad", std::string(2000, 'a' + j.job_id() % 26)}}.dump());
    }
    report(r);
    l = lease(1);
    if (l.jobs_size() != 1 || l.jobs(0).kind() != "r") throw std::runtime_error("no reduce leased");
    return l.jobs(0);
  }

  std::string dir, id, secret;
  std::unique_ptr<Server> server;
  std::unique_ptr<v1::WorkerService::Stub> stub;
};

TEST(HardeningGrpc, ABatchWithANanRunTimeIsAnsweredPerResult) {
  InProcess p(1 << 20);
  p.server->store().submit(plan_of(2, false), 0, false);
  const auto l = p.lease(2);
  ASSERT_EQ(l.jobs_size(), 2);
  v1::ReportRequest r;
  for (int i = 0; i < 2; ++i) {
    auto* x = r.add_results();
    x->set_job_id(l.jobs(i).job_id());
    x->set_lease_id(l.jobs(i).lease_id());
    x->set_ok(true);
    x->set_result_json("{}");
    x->set_seconds(i == 0 ? std::nan("") : 0.5);
  }
  auto* stray = r.add_results();  // names no job: refused alone
  stray->set_job_id(0);
  stray->set_lease_id("x");
  const auto resp = p.report(r);
  EXPECT_EQ(resp.accepted_size(), 2);
  ASSERT_EQ(resp.refused_size(), 1);
  EXPECT_EQ(resp.refused(0), 0);
  ASSERT_EQ(resp.problems_size(), 2);
  int stored = 0;
  for (const auto& pr : resp.problems()) stored += pr.stored_as_failure();
  EXPECT_EQ(stored, 1);
  EXPECT_EQ(p.server->store().experiment_status(1).counts().done(), 1);
}

// A reduce whose inputs pass the inline limit gets them as one blob, and
// the blob holds exactly what the lease would have carried.
TEST(HardeningGrpc, LargeReduceInputsTravelAsABlobAndMatchTheInlineOnes) {
  InProcess inline_srv(1 << 20), blob_srv(4096);
  const v1::Job a = inline_srv.reduce_job(20), b = blob_srv.reduce_job(20);
  ASSERT_EQ(a.inputs_size(), 20);
  EXPECT_TRUE(a.inputs_sha256().empty());
  EXPECT_EQ(b.inputs_size(), 0);
  ASSERT_EQ(b.inputs_sha256().size(), 64u);
  const std::string bytes = blob_srv.fetch(b.inputs_sha256());
  EXPECT_EQ(static_cast<int64_t>(bytes.size()), b.inputs_blob_bytes());
  v1::JobInputs got;
  ASSERT_TRUE(got.ParseFromString(bytes));
  v1::JobInputs want;
  *want.mutable_inputs() = a.inputs();
  EXPECT_EQ(got.SerializeAsString(), want.SerializeAsString());
  EXPECT_EQ(got.inputs(7).name(), "map/7");
  EXPECT_GT(got.inputs(7).result_json().size(), 2000u);
}

}  // namespace
}  // namespace spt::server
