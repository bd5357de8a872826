// Memory-aware leasing and canary quarantine in the coordinator's store,
// driven directly against a real SQLite file (injected clock), plus the
// plan-time footprints and the v2 -> v3 schema migration.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "platform/plan_builder.h"
#include "schema.h"
#include "spt/canary.h"
#include "spt/plan.h"
#include "store.h"

namespace spt::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t GiB = int64_t{1} << 30;

plan::JobSpec J(const std::string& name, int64_t mem_bytes) {
  plan::JobSpec s;
  s.name = name;
  s.kind = "k";
  s.params = {{"job", name}};
  s.mem_bytes = mem_bytes;
  return s;
}

plan::Plan P(std::vector<plan::JobSpec> jobs) {
  plan::Plan p;
  p.experiment = "t";
  p.params = json::object();
  p.jobs = std::move(jobs);
  return p;
}

v1::Canary C(const std::string& precision, double value, const std::string& error = "") {
  v1::Canary c;
  c.set_unit(canary::kUnit);
  c.set_precision(precision);
  c.set_value(value);
  c.set_error(error);
  return c;
}

class SchedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/spt_sched_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/spt.db";
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void open() {
    StoreOptions o;
    o.heartbeat_ms = 3000;
    o.clock = [this] { return now_; };
    store_ = Store::open(path_, o);
  }
  std::string worker(int64_t mem, std::vector<v1::Canary> canaries = {}, std::string* quarantined = nullptr) {
    v1::Capabilities caps;
    caps.set_device_kind("cpu");
    caps.set_memory_bytes(mem);
    const auto r = store_->register_worker("w" + std::to_string(mem), caps, canaries);
    if (quarantined) *quarantined = r.quarantined();
    return r.worker_id();
  }
  std::vector<std::string> lease(const std::string& w, int n = 10) {
    v1::LeaseRequest req;
    req.set_worker_id(w);
    req.set_max_jobs(n);
    std::vector<std::string> names;
    last_ = store_->lease(req);
    for (const auto& j : last_.jobs()) names.push_back(j.name());
    return names;
  }
  std::string job_state(int64_t exp, const std::string& name) {
    return store_->logs(store_->find_job(exp, name)).job().state();
  }

  std::string dir_, path_;
  int64_t now_ = 1'000'000;
  std::unique_ptr<Store> store_;
  v1::LeaseResponse last_;
};

TEST_F(SchedStoreTest, JobsGoOnlyToWorkersThatHoldThem) {
  open();
  const auto r = store_->submit(P({J("small", 1 * GiB), J("big", 10 * GiB), J("any", 0)}), 0, false);
  const std::string w4 = worker(4 * GiB);
  // The 4 GiB worker gets the jobs that fit, never the 10 GiB one.
  EXPECT_EQ(lease(w4), (std::vector<std::string>{"small", "any"}));
  EXPECT_EQ(last_.jobs(0).mem_bytes(), 1 * GiB);
  EXPECT_TRUE(lease(w4).empty());
  // ... and the dashboard says why the big job waits.
  auto u = store_->unschedulable();
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].experiment_id(), r.experiment_id);
  EXPECT_EQ(u[0].n_jobs(), 1);
  EXPECT_EQ(u[0].example_job(), "big");
  EXPECT_EQ(u[0].mem_bytes(), 10 * GiB);
  EXPECT_EQ(u[0].largest_worker_bytes(), 4 * GiB);
  EXPECT_EQ(u[0].reason(), "needs 10.0 GiB; largest live worker has 4.0 GiB");
  // A bigger worker joining takes it; nothing is unschedulable any more.
  const std::string w16 = worker(16 * GiB);
  EXPECT_TRUE(store_->unschedulable().empty());
  EXPECT_EQ(lease(w16), (std::vector<std::string>{"big"}));
}

TEST_F(SchedStoreTest, UnschedulableCountsOnlyLiveUnquarantinedWorkers) {
  open();
  store_->submit(P({J("big", 10 * GiB)}), 0, false);
  EXPECT_EQ(store_->unschedulable().at(0).reason(), "needs 10.0 GiB; no live worker");
  worker(16 * GiB);
  EXPECT_TRUE(store_->unschedulable().empty());
  now_ += 3 * 3000 + 1;  // the big worker's heartbeat is now too old
  EXPECT_EQ(store_->unschedulable().size(), 1u);
  worker(32 * GiB, {C("fp32", canary::reference_value() + 1)});  // quarantined: does not count
  EXPECT_EQ(store_->unschedulable().at(0).largest_worker_bytes(), 0);
  EXPECT_EQ(store_->unschedulable().at(0).reason(), "needs 10.0 GiB; no live worker");
  worker(0);  // live, but its memory is unknown: it takes no footprinted job
  EXPECT_EQ(store_->unschedulable().at(0).reason(),
            "needs 10.0 GiB; no live worker registered its memory (spt-worker --memory)");
}

TEST_F(SchedStoreTest, ExclusiveJobsRespectMemoryToo) {
  open();
  auto big = J("xbig", 10 * GiB);
  big.exclusive = true;
  store_->submit(P({big, J("small", GiB)}), 0, false);
  // The exclusive job comes first, but not to a worker that cannot hold it.
  EXPECT_EQ(lease(worker(4 * GiB)), (std::vector<std::string>{"small"}));
  EXPECT_EQ(lease(worker(16 * GiB)), (std::vector<std::string>{"xbig"}));
}

TEST_F(SchedStoreTest, FailingRegistrationCanaryQuarantines) {
  open();
  store_->submit(P({J("a", 0)}), 0, false);
  std::string why;
  const std::string bad = worker(8 * GiB, {C("fp32", canary::reference_value() + 0.01)}, &why);
  EXPECT_NE(why.find("canary fp32 drifted"), std::string::npos) << why;
  EXPECT_TRUE(lease(bad).empty());
  std::string why2;
  const std::string err = worker(9 * GiB, {C("fp32", 0, "no such device")}, &why2);
  EXPECT_NE(why2.find("could not run: no such device"), std::string::npos) << why2;
  EXPECT_TRUE(lease(err).empty());
  const std::string good = worker(
      2 * GiB, {C("fp32", canary::reference_value() + 1e-6), C("bf16", canary::reference_value() + 0.02)}, &why);
  EXPECT_EQ(why, "");
  EXPECT_EQ(lease(good), (std::vector<std::string>{"a"}));
  for (const auto& w : store_->workers()) {
    if (w.worker_id() == good) {
      ASSERT_EQ(w.canaries_size(), 2);
      for (const auto& c : w.canaries()) {
        EXPECT_TRUE(c.pass()) << c.DebugString();
        EXPECT_EQ(c.reference(), canary::reference_value());
        EXPECT_EQ(c.tolerance(), canary::tolerance(c.precision()));
      }
      EXPECT_EQ(w.quarantined(), "");
    } else {
      EXPECT_NE(w.quarantined(), "") << w.DebugString();
    }
  }
}

TEST_F(SchedStoreTest, HeartbeatCanaryFailureReleasesLeasedJobs) {
  open();
  const auto r = store_->submit(P({J("a", 0), J("b", 0), J("c", 0)}), 0, false);
  const std::string w = worker(8 * GiB, {C("fp32", canary::reference_value())});
  EXPECT_EQ(lease(w, 2), (std::vector<std::string>{"a", "b"}));
  std::vector<std::string> leases;
  for (const auto& j : last_.jobs()) leases.push_back(j.lease_id());
  // A passing periodic canary changes nothing.
  v1::HeartbeatRequest hb;
  hb.set_worker_id(w);
  for (const auto& l : leases) hb.add_lease_ids(l);
  *hb.add_canaries() = C("fp32", canary::reference_value() - 1e-5);
  auto resp = store_->heartbeat(hb);
  EXPECT_EQ(resp.lost_lease_ids_size(), 0);
  EXPECT_EQ(resp.quarantined(), "");
  // A failing one quarantines: its leases come back lost, the jobs pending
  // with their attempt given back, and it leases nothing more.
  hb.clear_canaries();
  *hb.add_canaries() = C("fp32", canary::reference_value() + 0.5);
  resp = store_->heartbeat(hb);
  EXPECT_NE(resp.quarantined(), "");
  EXPECT_EQ(resp.lost_lease_ids_size(), 2);
  EXPECT_EQ(job_state(r.experiment_id, "a"), "pending");
  EXPECT_EQ(job_state(r.experiment_id, "b"), "pending");
  EXPECT_EQ(store_->logs(store_->find_job(r.experiment_id, "a")).job().attempt(), 0);
  EXPECT_TRUE(lease(w).empty());
  // The jobs go elsewhere.
  const std::string other = worker(8 * GiB, {C("fp32", canary::reference_value())});
  EXPECT_EQ(lease(other), (std::vector<std::string>{"a", "b", "c"}));
  bool saw = false;
  const v1::LogsResponse logs = store_->logs(store_->find_job(r.experiment_id, "a"));
  for (const auto& e : logs.events())
    saw |= e.event() == "released" && e.detail().find("quarantined") != std::string::npos;
  EXPECT_TRUE(saw);
}

// A v2 database (what the previous release wrote) opens, migrates to the
// current version, and its jobs and workers keep working: old jobs have no
// footprint and go anywhere.
TEST_F(SchedStoreTest, V2DatabaseMigrates) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    auto exec = [&](const std::string& sql) {
      char* err = nullptr;
      ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    };
    exec("CREATE TABLE schema_version(version INTEGER NOT NULL)");
    exec(kMigrations[0]);
    exec(kMigrations[1]);
    exec("INSERT INTO schema_version(version) VALUES(2)");
    exec("INSERT INTO experiments(id, name, parts, params_json, priority, state, submitted_ms) "
         "VALUES(1, 'old', '', '{}', 0, 'running', 1)");
    exec("INSERT INTO jobs(experiment_id, name, kind, params_json, model, reduce, state, priority, max_attempts, "
         "timeout_s, content_key, n_deps_left, created_ms) VALUES(1, 'j', 'k', '{}', '', 0, 'pending', 0, 3, 0, "
         "'key', 0, 1)");
    exec("INSERT INTO workers(id, name, caps_json, job_kinds_json, registered_ms, last_heartbeat_ms) "
         "VALUES('w-old', 'old', '{}', '[]', 1, 1)");
    sqlite3_close(db);
  }
  ASSERT_GE(Store::schema_version(), 3);
  open();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT MAX(version) FROM schema_version", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int64(st, 0), Store::schema_version());
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  // The old worker row (no memory recorded) and the old job (no footprint).
  const std::string w = worker(GiB);
  EXPECT_EQ(lease(w), (std::vector<std::string>{"j"}));
  EXPECT_EQ(last_.jobs(0).mem_bytes(), 0);
  EXPECT_TRUE(store_->unschedulable().empty());
  bool old_listed = false;
  for (const auto& x : store_->workers()) old_listed |= x.worker_id() == "w-old" && x.quarantined().empty();
  EXPECT_TRUE(old_listed);
}

// ---- plan-time footprints

TEST(Footprint, KnownModelsWithoutFiles) {
  const auto xl = plan::model_footprint("gpt2-xl", 48, 25, "fp32", 1024);
  // 1,557,611,200 checkpoint parameters (GPT-2 XL) plus the engine's own
  // unembedding copy (50257 x 1600), 4 bytes each.
  EXPECT_EQ(xl.weights, (int64_t{1557611200} + int64_t{50257} * 1600) * 4);
  EXPECT_NEAR(xl.weights / 1e9, 6.55, 0.01);
  EXPECT_EQ(xl.activations, int64_t{4} * 1024 * (16 * 1600 + 3 * 25 * 1024 + 50257));
  const auto small = plan::model_footprint("gpt2", 12, 12, "fp32", 1024);
  EXPECT_EQ(small.weights, (int64_t{124439808} + int64_t{50257} * 768) * 4);  // gpt2: 124,439,808 parameters
  // bf16 halves the matrices; a shorter chunk needs fewer activations.
  EXPECT_LT(plan::model_footprint("gpt2-xl", 48, 25, "bf16", 1024).weights, xl.weights * 6 / 10);
  EXPECT_LT(plan::model_footprint("gpt2-xl", 48, 25, "fp32", 128).activations, xl.activations / 8);
  // Sizes grow with the model.
  int64_t prev = 0;
  for (const char* m : {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}) {
    const auto* k = platform::known_model(m);
    ASSERT_NE(k, nullptr);
    const int64_t t = plan::model_footprint(m, k->n_layer, k->n_head, "fp32", 0).total();
    EXPECT_GT(t, prev) << m;
    prev = t;
  }
}

TEST(Footprint, JobsOfAModelCarryIt) {
  plan::Builder b;
  b.model = "gpt2-xl";
  const json base = {{"model", "gpt2-xl"}, {"precision", "fp32"}, {"n_layer", 48}, {"n_head", 25}};
  auto& map = b.add("m", "k", plan::with(base, {{"chunk_len", 512}}), {});
  EXPECT_EQ(map.mem_bytes, plan::model_footprint("gpt2-xl", 48, 25, "fp32", 512).total());
  EXPECT_EQ(b.add("r", "k", base, {"m"}, true).mem_bytes, 0);  // reduces read inputs only
  b.model = "";
  EXPECT_EQ(b.add("x", "k", base, {}).mem_bytes, 0);           // no affinity model: not a model job
  // A real plan: every exp3ef map job on gpt2-xl needs more than 6.5 GB.
  plan::Request req{"exp3ef", "", {{"model", "gpt2-xl"}}};
  const plan::Plan p = plan::make_plan(req);
  int n_model_jobs = 0;
  for (const auto& j : p.jobs) {
    if (!j.model.empty() && !j.reduce) {
      ++n_model_jobs;
      EXPECT_GT(j.mem_bytes, int64_t{6'500'000'000}) << j.name;
    }
  }
  EXPECT_GT(n_model_jobs, 0);
}

TEST(Footprint, SelftestFootprintModel) {
  const plan::Plan p = plan::make_plan({"selftest", "", {{"n", "3"}, {"footprint_model", "gpt2-large"}}});
  const auto* k = platform::known_model("gpt2-large");
  const int64_t want = plan::model_footprint("gpt2-large", k->n_layer, k->n_head, "fp32", 0).total();
  for (const auto& j : p.jobs) EXPECT_EQ(j.mem_bytes, j.reduce ? 0 : want) << j.name;
  EXPECT_THROW(plan::make_plan({"selftest", "", {{"footprint_model", "/some/folder"}}}), plan::PlanError);
  // Without it, selftest jobs keep no footprint (and their content keys).
  for (const auto& j : plan::make_plan({"selftest", "", {{"n", "2"}}}).jobs) EXPECT_EQ(j.mem_bytes, 0);
}

TEST(CanaryJudge, TolerancesAndFailures) {
  const double ref = canary::reference_value();
  EXPECT_TRUE(canary::judge(canary::kUnit, "fp32", ref + 1e-5, "").pass);
  EXPECT_FALSE(canary::judge(canary::kUnit, "fp32", ref + 1e-3, "").pass);
  EXPECT_TRUE(canary::judge(canary::kUnit, "tf32", ref + 5e-3, "").pass);
  EXPECT_FALSE(canary::judge(canary::kUnit, "tf32", ref + 2e-2, "").pass);
  EXPECT_TRUE(canary::judge(canary::kUnit, "bf16", ref - 3e-2, "").pass);
  EXPECT_FALSE(canary::judge(canary::kUnit, "bf16", ref - 8e-2, "").pass);
  EXPECT_FALSE(canary::judge(canary::kUnit, "fp32", ref, "cuda error").pass);
  EXPECT_FALSE(canary::judge("canary-v0", "fp32", ref, "").pass);
  EXPECT_FALSE(canary::judge(canary::kUnit, "fp16", ref, "").pass);
  EXPECT_FALSE(canary::judge(canary::kUnit, "fp32", std::nan(""), "").pass);
  const auto v = canary::judge(canary::kUnit, "fp32", ref + 0.25, "");
  EXPECT_NEAR(v.abs_diff, 0.25, 1e-12);
  EXPECT_NE(v.why.find("drifted"), std::string::npos);
}

}  // namespace
}  // namespace spt::server
