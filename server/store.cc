#include "store.h"

#include <google/protobuf/util/json_util.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "schema.h"
#include "spt/canary.h"
#include "spt/hash.h"
#include "spt/util.h"
#include "spt/version.h"
#include "sqlite.h"

namespace spt::server {

namespace {

constexpr int kSchemaVersion = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));
constexpr int64_t kMaxWaitMs = 30000;
constexpr int64_t kWorkerListWindowMs = 3600 * 1000;

std::string hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = d[p[i] >> 4];
    s[2 * i + 1] = d[p[i] & 15];
  }
  return s;
}

// Length-prefixed, so no two field lists hash the same bytes.
void feed(Sha256& h, const std::string& s) {
  h.update(std::to_string(s.size()));
  h.update(":");
  h.update(s);
}

std::string content_key(const plan::JobSpec& spec, std::vector<std::string> named_dep_keys) {
  std::sort(named_dep_keys.begin(), named_dep_keys.end());
  Sha256 h;
  feed(h, "spt.job.v1");
  feed(h, SPT_CODE_VERSION);
  feed(h, spec.kind);
  feed(h, spec.model);
  feed(h, canonical_json(spec.params));
  for (const auto& d : named_dep_keys) feed(h, d);
  // Only when set, so the keys of every other job stay what they were: a
  // result measured alone (timing) is not the same as one measured beside
  // other jobs, and neither stands in for the other.
  if (spec.exclusive) feed(h, "exclusive");
  return h.hex();
}

std::string json_list(const google::protobuf::RepeatedPtrField<std::string>& v) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& s : v)
    if (!s.empty()) j.push_back(s);
  return j.dump();
}

bool is_terminal(const std::string& state) {
  return state == "done" || state == "failed" || state == "cancelled";
}

// Reads the first bytes of `path`: a non-empty file must carry SQLite's
// magic header. Checked before SQLite sees the file at all.
void check_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;  // absent: will be created
  char buf[16] = {};
  in.read(buf, sizeof buf);
  const auto n = in.gcount();
  if (n == 0) return;  // empty file: a new database
  if (n < 16 || std::string(buf, 16) != std::string("SQLite format 3\0", 16))
    throw StoreOpenError(path + " is not an SQLite database (bad header); refusing to touch it");
}

nlohmann::json canary_json(const v1::Canary& c) {
  return {{"unit", c.unit()},         {"precision", c.precision()}, {"value", c.value()},
          {"reference", c.reference()}, {"abs_diff", c.abs_diff()},   {"tolerance", c.tolerance()},
          {"pass", c.pass()},         {"unix_ms", c.unix_ms()},     {"error", c.error()},
          {"device", c.device()}};
}

v1::Canary canary_from_json(const nlohmann::json& j) {
  v1::Canary c;
  c.set_unit(j.value("unit", ""));
  c.set_precision(j.value("precision", ""));
  c.set_value(j.value("value", 0.0));
  c.set_reference(j.value("reference", 0.0));
  c.set_abs_diff(j.value("abs_diff", 0.0));
  c.set_tolerance(j.value("tolerance", 0.0));
  c.set_pass(j.value("pass", false));
  c.set_unix_ms(j.value("unix_ms", int64_t{0}));
  c.set_error(j.value("error", ""));
  c.set_device(j.value("device", ""));
  return c;
}

// A job's part: its name's first path segment, '' if it has none (exp10
// names jobs a/head/L0H8). Schema v3 derives the same for older rows.
std::string job_part(const std::string& name) {
  const auto slash = name.find('/');
  return slash == std::string::npos ? std::string() : name.substr(0, slash);
}

// Adds n jobs in state st to c.
void add_count(v1::Counts* c, const std::string& st, int64_t n) {
  if (st == "blocked") c->set_blocked(c->blocked() + n);
  else if (st == "pending") c->set_pending(c->pending() + n);
  else if (st == "leased") c->set_leased(c->leased() + n);
  else if (st == "done") c->set_done(c->done() + n);
  else if (st == "failed") c->set_failed(c->failed() + n);
  else if (st == "cancelled") c->set_cancelled(c->cancelled() + n);
  c->set_total(c->total() + n);
}

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1 << 30));
  return buf;
}

}  // namespace

int Store::schema_version() { return kSchemaVersion; }

std::unique_ptr<Store> Store::open(const std::string& path, StoreOptions opts) {
  if (!opts.clock) opts.clock = [] { return now_unix_ms(); };
  if (opts.lease_ttl_ms <= 0 || opts.heartbeat_ms <= 0 || opts.max_attempts < 1 || opts.backoff_base_ms < 0 ||
      opts.backoff_cap_ms < 0)
    throw StoreOpenError("invalid store options: lease ttl, heartbeat and max attempts must be positive");
  check_header(path);
  std::unique_ptr<Db> db;
  try {
    db = std::make_unique<Db>(path);
    sqlite3_busy_timeout(db->raw(), 5000);
    // Integrity before anything that could write (journal mode, migrations).
    {
      Query q(*db, "PRAGMA quick_check");
      std::string problems;
      while (q.step()) {
        std::string row = q.text(0);
        if (row != "ok") problems += (problems.empty() ? "" : "; ") + row;
        if (problems.size() > 500) break;
      }
      if (!problems.empty()) throw StoreOpenError(path + " failed its integrity check: " + problems);
    }
    int64_t n_objects = 0;
    {
      Query q(*db, "SELECT COUNT(*) FROM sqlite_master");
      q.step();
      n_objects = q.i64(0);
    }
    if (n_objects > 0) {
      bool has_version = false;
      {
        Query q(*db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'");
        has_version = q.step();
      }
      if (!has_version)
        throw StoreOpenError(path + " is an SQLite database but not an spt store (no schema_version table)");
      int64_t v = -1;
      {
        Query q(*db, "SELECT MAX(version) FROM schema_version");
        if (q.step() && !q.is_null(0)) v = q.i64(0);
      }
      if (v < 1 || v > kSchemaVersion)
        throw StoreOpenError(path + " has schema version " + std::to_string(v) + "; this build knows versions 1.." +
                             std::to_string(kSchemaVersion) + (v > kSchemaVersion ? " (upgrade spt-server)" : ""));
    }
    Query(*db, "PRAGMA journal_mode = WAL").run();
    Query(*db, "PRAGMA synchronous = NORMAL").run();
    Query(*db, "PRAGMA foreign_keys = ON").run();
  } catch (const SqliteError& e) {
    if (e.code() == SQLITE_CORRUPT || e.code() == SQLITE_NOTADB)
      throw StoreOpenError(path + " is corrupt or truncated (" + e.what() +
                           "); left untouched: restore a backup or point --db elsewhere");
    throw StoreOpenError("cannot use database " + path + ": " + e.what());
  }
  std::unique_ptr<Store> s(new Store(std::move(db), std::move(opts)));
  try {
    s->migrate();
  } catch (const SqliteError& e) {
    throw StoreOpenError("cannot migrate database " + path + ": " + e.what());
  }
  return s;
}

Store::Store(std::unique_ptr<Db> db, StoreOptions opts) : opts_(std::move(opts)), db_(std::move(db)) {}

Store::~Store() { shutdown(); }

void Store::migrate() {
  std::lock_guard<std::mutex> lk(mu_);
  db_->exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)");
  int64_t v = 0;
  {
    Query q(*db_, "SELECT MAX(version) FROM schema_version");
    if (q.step() && !q.is_null(0)) v = q.i64(0);
  }
  for (; v < kSchemaVersion; ++v) {
    Txn txn(*db_);
    db_->exec(kMigrations[v]);
    Query(*db_, "DELETE FROM schema_version").run();
    Query(*db_, "INSERT INTO schema_version(version) VALUES(?)").bind(v + 1).run();
    txn.commit();
  }
}

std::string Store::new_id(int bytes) const {
  unsigned char buf[32];
  if (bytes > 32 || RAND_bytes(buf, bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  return hex(buf, static_cast<size_t>(bytes));
}

int64_t Store::backoff_ms(int attempt) const {
  int64_t b = opts_.backoff_base_ms;
  for (int i = 1; i < attempt && b < opts_.backoff_cap_ms; ++i) b *= 2;
  return std::min(b, opts_.backoff_cap_ms);
}

void Store::event(int64_t job_id, int64_t now, const char* ev, const std::string& detail) {
  Query(*db_, "INSERT INTO job_events(job_id, unix_ms, event, detail) VALUES(?, ?, ?, ?)")
      .bind(job_id)
      .bind(now)
      .bind(ev)
      .bind(detail)
      .run();
}

void Store::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  work_.notify_all();
}

// ---------------------------------------------------------------- submit

SubmitResult Store::submit(const plan::Plan& plan, int priority, bool force) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  SubmitResult out;
  bool any_pending = false;
  Txn txn(*db_);
  Query(*db_,
        "INSERT INTO experiments(name, parts, params_json, priority, state, submitted_ms, forced) "
        "VALUES(?, ?, ?, ?, 'running', ?, ?)")
      .bind(plan.experiment)
      .bind(plan.parts)
      .bind(canonical_json(plan.params))
      .bind(priority)
      .bind(now)
      .bind(force ? 1 : 0)
      .run();
  out.experiment_id = db_->last_insert_id();

  struct Known {
    int64_t id;
    std::string key;
    bool done;
  };
  std::unordered_map<std::string, Known> by_name;
  by_name.reserve(plan.jobs.size());
  for (const auto& spec : plan.jobs) {
    std::vector<std::string> dep_keys;
    std::vector<int64_t> dep_ids;
    int n_left = 0;
    for (const auto& d : spec.deps) {
      auto it = by_name.find(d);
      if (it == by_name.end()) throw BadRequest("plan bug: " + spec.name + " depends on unknown job " + d);
      dep_keys.push_back(d + "=" + it->second.key);
      dep_ids.push_back(it->second.id);
      if (!it->second.done) ++n_left;
    }
    const std::string key = content_key(spec, std::move(dep_keys));
    int64_t reused = 0;
    std::string result;
    if (!force) {
      Query q(*db_, "SELECT id, result_json FROM jobs WHERE content_key = ? AND state = 'done' ORDER BY id LIMIT 1");
      q.bind(key);
      if (q.step()) {
        reused = q.i64(0);
        result = q.text(1);
      }
    }
    const char* state = reused ? "done" : n_left > 0 ? "blocked" : "pending";
    {
      Query q(*db_,
              "INSERT INTO jobs(experiment_id, name, kind, params_json, model, reduce, state, priority, "
              "max_attempts, timeout_s, result_json, content_key, n_deps_left, created_ms, started_ms, "
              "finished_ms, reused_from, exclusive, mem_bytes, part) "
              "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      q.bind(out.experiment_id)
          .bind(spec.name)
          .bind(spec.kind)
          .bind(canonical_json(spec.params))
          .bind(spec.model)
          .bind(spec.reduce ? 1 : 0)
          .bind(state)
          .bind(priority)
          .bind(spec.max_attempts > 0 ? spec.max_attempts : opts_.max_attempts)
          .bind(spec.timeout_s);
      if (reused)
        q.bind(result);
      else
        q.bind_null();
      q.bind(key).bind(reused ? 0 : n_left).bind(now).bind(reused ? now : 0).bind(reused ? now : 0);
      if (reused)
        q.bind(reused);
      else
        q.bind_null();
      q.bind(spec.exclusive ? 1 : 0);
      q.bind(std::max<int64_t>(0, spec.mem_bytes));
      q.bind(job_part(spec.name));
      q.run();
    }
    const int64_t id = db_->last_insert_id();
    for (int64_t dep : dep_ids) Query(*db_, "INSERT INTO deps(job_id, dep_id) VALUES(?, ?)").bind(id).bind(dep).run();
    if (reused) {
      Query(*db_,
            "INSERT INTO experiment_artifacts(experiment_id, name, job_id, sha256, size, media_type) "
            "SELECT ?, name, ?, sha256, size, media_type FROM experiment_artifacts WHERE job_id = ?")
          .bind(out.experiment_id)
          .bind(id)
          .bind(reused)
          .run();
      event(id, now, "reused", "stored result of job " + std::to_string(reused));
      ++out.n_reused;
    }
    any_pending |= !reused && n_left == 0;
    by_name[spec.name] = Known{id, key, reused != 0};
    ++out.n_jobs;
  }
  finish_if_complete(out.experiment_id, now);
  txn.commit();
  if (any_pending) work_.notify_all();
  return out;
}

// ---------------------------------------------------------------- lease

std::vector<int64_t> Store::pick(const std::string& worker_id, const std::string& kinds_json,
                                 const std::vector<std::string>& loaded, int max_jobs, int64_t mem_bytes,
                                 int64_t now) {
  // The kind filter is a JSON array bound as one parameter so the statement
  // stays cached; NULL means "any kind". INDEXED BY pins the walk in
  // priority order: the planner, left alone, may pick jobs_deferred and
  // sort every pending job. The memory filter (?9) is a column compare on
  // rows the walk visits anyway: jobs too big for this worker are skipped,
  // so they wait for a worker that can hold them (see unschedulable()).
  const char* kReady =
      "SELECT id, priority, model FROM jobs INDEXED BY jobs_ready WHERE state = 'pending' AND not_before_ms <= ?1 "
      "AND mem_bytes <= ?9 "
      "AND (?2 IS NULL OR kind IN (SELECT value FROM json_each(?2))) ORDER BY priority DESC, id LIMIT ?3";
  // The same walks without exclusive jobs, which are only ever leased alone.
  const char* kReadyShared =
      "SELECT id FROM jobs INDEXED BY jobs_ready WHERE state = 'pending' AND exclusive = 0 AND not_before_ms <= ?1 "
      "AND mem_bytes <= ?9 "
      "AND (?2 IS NULL OR kind IN (SELECT value FROM json_each(?2))) ORDER BY priority DESC, id LIMIT ?3";
  const char* kAffine =
      "SELECT id FROM jobs INDEXED BY jobs_affinity WHERE state = 'pending' AND exclusive = 0 AND priority = ?1 "
      "AND model = ?2 AND not_before_ms <= ?3 AND mem_bytes <= ?9 "
      "AND (?4 IS NULL OR kind IN (SELECT value FROM json_each(?4))) ORDER BY id LIMIT ?5";
  const char* kExclusive =
      "SELECT id, priority FROM jobs INDEXED BY jobs_exclusive WHERE state = 'pending' AND exclusive = 1 "
      "AND not_before_ms <= ?1 AND mem_bytes <= ?9 AND (?2 IS NULL OR kind IN (SELECT value FROM json_each(?2))) "
      "ORDER BY priority DESC, id LIMIT 1";
  auto bind_kinds = [&](Query& q) -> Query& {
    if (kinds_json == "[]")
      q.bind_null();
    else
      q.bind(kinds_json);
    return q;
  };
  std::vector<int64_t> out;
  // What the worker holds now (leases not yet reported, released or reaped).
  int64_t n_held = 0;
  bool holds_exclusive = false;
  {
    Query q(*db_,
            "SELECT COUNT(*), COALESCE(MAX(exclusive), 0) FROM jobs INDEXED BY jobs_by_owner "
            "WHERE state = 'leased' AND lease_owner = ?");
    q.bind(worker_id);
    q.step();
    n_held = q.i64(0);
    holds_exclusive = q.i64(1) != 0;
  }
  if (holds_exclusive) return out;  // nothing beside an exclusive job
  int64_t top_priority = 0;
  std::string top_model;
  {
    Query q(*db_, kReady);
    q.bind(now);
    bind_kinds(q).bind(1);
    q.bind_at(9, mem_bytes);
    if (!q.step()) return out;
    top_priority = q.i64(1);
    top_model = q.text(2);
  }
  {
    // An exclusive job of the top priority goes first, alone, to a worker
    // holding nothing; a worker holding jobs gets nothing meanwhile, so
    // that it empties and can take it (or another, idle worker does first).
    Query q(*db_, kExclusive);
    q.bind(now);
    bind_kinds(q);
    q.bind_at(9, mem_bytes);
    if (q.step() && q.i64(1) >= top_priority) {
      if (n_held == 0) out.push_back(q.i64(0));
      return out;
    }
  }
  std::unordered_set<int64_t> seen;
  auto take_model = [&](const std::string& model) {
    Query q(*db_, kAffine);
    q.bind(top_priority).bind(model).bind(now);
    bind_kinds(q).bind(static_cast<int64_t>(max_jobs - out.size()));
    q.bind_at(9, mem_bytes);
    while (q.step())
      if (seen.insert(q.i64(0)).second) out.push_back(q.i64(0));
  };
  // Affinity, within the top priority only: priorities always win.
  for (const auto& m : loaded)
    if (!m.empty() && static_cast<int>(out.size()) < max_jobs) take_model(m);
  if (out.empty()) take_model(top_model);
  if (static_cast<int>(out.size()) < max_jobs) {
    Query q(*db_, kReadyShared);
    q.bind(now);
    bind_kinds(q).bind(static_cast<int64_t>(max_jobs + out.size()));
    q.bind_at(9, mem_bytes);
    while (q.step() && static_cast<int>(out.size()) < max_jobs)
      if (seen.insert(q.i64(0)).second) out.push_back(q.i64(0));
  }
  return out;
}

v1::LeaseResponse Store::lease(const v1::LeaseRequest& req, const std::function<bool()>& gone) {
  std::unique_lock<std::mutex> lk(mu_);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::clamp<int64_t>(req.wait_ms(), 0, kMaxWaitMs));
  std::string kinds_json, worker_name;
  int64_t worker_mem = 0;
  {
    Query q(*db_, "SELECT job_kinds_json, name, mem_bytes FROM workers WHERE id = ?");
    q.bind(req.worker_id());
    if (!q.step()) throw NotFound("unknown worker id '" + req.worker_id() + "'; register again");
    kinds_json = q.text(0);
    worker_name = q.text(1);
    worker_mem = q.i64(2);
  }
  std::vector<std::string> loaded(req.loaded_models().begin(), req.loaded_models().end());
  const std::string loaded_json = json_list(req.loaded_models());
  const int max_jobs = std::max(1, req.max_jobs());

  for (;;) {
    v1::LeaseResponse resp;
    if (stopping_ || (gone && gone())) return resp;
    const int64_t now = opts_.clock();
    Txn txn(*db_);
    Query(*db_, "UPDATE workers SET last_heartbeat_ms = ?, loaded_models = ? WHERE id = ?")
        .bind(now)
        .bind(loaded_json)
        .bind(req.worker_id())
        .run();
    bool quarantined = false;
    {
      Query q(*db_, "SELECT quarantine != '' FROM workers WHERE id = ?");
      q.bind(req.worker_id());
      quarantined = q.step() && q.i64(0) != 0;
    }
    // A quarantined worker gets nothing; its long-poll just runs out.
    const std::vector<int64_t> ids =
        quarantined ? std::vector<int64_t>{} : pick(req.worker_id(), kinds_json, loaded, max_jobs, worker_mem, now);
    bool leased_exclusive = false;
    const int64_t expires = now + opts_.lease_ttl_ms;
    for (int64_t id : ids) {
      v1::Job* job = resp.add_jobs();
      int max_attempts = 0;
      {
        Query q(*db_,
                "SELECT j.experiment_id, e.name, j.name, j.kind, j.params_json, j.model, j.attempts, j.timeout_s, "
                "j.max_attempts, j.exclusive, j.mem_bytes FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
                "WHERE j.id = ?");
        q.bind(id);
        q.step();
        job->set_job_id(id);
        job->set_experiment_id(q.i64(0));
        job->set_experiment(q.text(1));
        job->set_name(q.text(2));
        job->set_kind(q.text(3));
        job->set_params_json(q.text(4));
        job->set_model(q.text(5));
        job->set_attempt(static_cast<int>(q.i64(6)) + 1);
        job->set_timeout_s(static_cast<int>(q.i64(7)));
        max_attempts = static_cast<int>(q.i64(8));
        job->set_exclusive(q.i64(9) != 0);
        job->set_mem_bytes(q.i64(10));
        leased_exclusive |= job->exclusive();
      }
      job->set_lease_id(new_id(16));
      Query(*db_,
            "UPDATE jobs SET state = 'leased', lease_id = ?, lease_owner = ?, lease_expires_ms = ?, "
            "attempts = attempts + 1, started_ms = ? WHERE id = ?")
          .bind(job->lease_id())
          .bind(req.worker_id())
          .bind(expires)
          .bind(now)
          .bind(id)
          .run();
      {
        Query q(*db_,
                "SELECT j.name, j.kind, j.result_json FROM deps d JOIN jobs j ON j.id = d.dep_id "
                "WHERE d.job_id = ? ORDER BY d.dep_id");
        q.bind(id);
        while (q.step()) {
          v1::JobInput* in = job->add_inputs();
          in->set_name(q.text(0));
          in->set_kind(q.text(1));
          in->set_result_json(q.text(2));
        }
      }
      event(id, now, "leased",
            "by " + worker_name + " (" + req.worker_id() + "), attempt " + std::to_string(job->attempt()) + "/" +
                std::to_string(max_attempts) + ", lease " + job->lease_id().substr(0, 8) +
                (job->exclusive() ? ", exclusive" : ""));
    }
    txn.commit();
    // Workers held back for this exclusive job may take other work again.
    if (leased_exclusive) work_.notify_all();
    if (!ids.empty()) {
      resp.set_lease_expires_unix_ms(expires);
      return resp;
    }
    auto wake = deadline;
    if (std::chrono::steady_clock::now() >= wake) return resp;
    {
      // A backed-off job becomes leasable without anyone notifying us.
      Query q(*db_, "SELECT MIN(not_before_ms) FROM jobs WHERE state = 'pending' AND not_before_ms > ?");
      q.bind(now);
      if (q.step() && !q.is_null(0)) {
        auto at = std::chrono::steady_clock::now() + std::chrono::milliseconds(q.i64(0) - now);
        wake = std::min(wake, at);
      }
    }
    work_.wait_until(lk, wake);
  }
}

// ---------------------------------------------------------------- heartbeat, report, release

v1::HeartbeatResponse Store::heartbeat(const v1::HeartbeatRequest& req) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  const int64_t expires = now + opts_.lease_ttl_ms;
  v1::HeartbeatResponse resp;
  Txn txn(*db_);
  Query(*db_, "UPDATE workers SET last_heartbeat_ms = ?, loaded_models = ? WHERE id = ?")
      .bind(now)
      .bind(json_list(req.loaded_models()))
      .bind(req.worker_id())
      .run();
  if (db_->changes() == 0) throw NotFound("unknown worker id '" + req.worker_id() + "'; register again");
  bool released = false;
  if (req.canaries_size()) {
    const std::string why =
        judge_canaries(req.worker_id(), std::vector<v1::Canary>(req.canaries().begin(), req.canaries().end()));
    // Its leases go back now, so the renewals below report them as lost.
    if (!why.empty()) released = quarantine_locked(req.worker_id(), why, now) > 0;
  }
  {
    Query q(*db_, "SELECT quarantine FROM workers WHERE id = ?");
    q.bind(req.worker_id());
    if (q.step()) resp.set_quarantined(q.text(0));
  }
  for (const auto& lease_id : req.lease_ids()) {
    int64_t job_id = 0;
    {
      Query q(*db_,
              "UPDATE jobs SET lease_expires_ms = ? WHERE lease_id = ? AND state = 'leased' RETURNING id");
      q.bind(expires).bind(lease_id);
      if (q.step()) job_id = q.i64(0);
    }
    if (job_id)
      event(job_id, now, "renewed", "until " + std::to_string(expires));
    else
      resp.add_lost_lease_ids(lease_id);
  }
  txn.commit();
  if (released) work_.notify_all();
  resp.set_lease_expires_unix_ms(expires);
  return resp;
}

v1::ReportResponse Store::report(const v1::ReportRequest& req) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  v1::ReportResponse resp;
  bool wake = false;
  Txn txn(*db_);
  std::string worker_name;
  {
    Query q(*db_, "UPDATE workers SET last_heartbeat_ms = ? WHERE id = ? RETURNING name");
    q.bind(now).bind(req.worker_id());
    if (!q.step()) throw NotFound("unknown worker id '" + req.worker_id() + "'; register again");
    worker_name = q.text(0);
  }
  const std::string by = "by " + worker_name + " (" + req.worker_id() + ")";
  std::set<int64_t> touched;
  int64_t n_done = 0;
  for (const auto& r : req.results()) {
    std::string state, lease_id, name;
    int64_t experiment_id = 0;
    int attempts = 0, max_attempts = 0;
    bool found = false;
    {
      Query q(*db_, "SELECT state, lease_id, experiment_id, attempts, max_attempts, name FROM jobs WHERE id = ?");
      q.bind(r.job_id());
      if (q.step()) {
        found = true;
        state = q.text(0);
        lease_id = q.text(1);
        experiment_id = q.i64(2);
        attempts = static_cast<int>(q.i64(3));
        max_attempts = static_cast<int>(q.i64(4));
        name = q.text(5);
      }
    }
    if (!found || state != "leased" || lease_id.empty() || lease_id != r.lease_id()) {
      resp.add_refused(r.job_id());
      if (found) event(r.job_id(), now, "refused", "report " + by + " for a lease no longer current (job " + state + ")");
      continue;
    }
    resp.add_accepted(r.job_id());
    touched.insert(experiment_id);
    wake = true;  // the worker holds one job fewer (exclusive leasing depends on that)
    const std::string secs = std::to_string(r.seconds());
    if (r.ok()) {
      Query(*db_,
            "UPDATE jobs SET state = 'done', result_json = ?, error = '', log = ?, seconds = ?, finished_ms = ? "
            "WHERE id = ?")
          .bind(r.result_json())
          .bind(r.log())
          .bind(r.seconds())
          .bind(now)
          .bind(r.job_id())
          .run();
      for (const auto& a : r.artifacts())
        Query(*db_,
              "INSERT OR REPLACE INTO experiment_artifacts(experiment_id, name, job_id, sha256, size, media_type) "
              "VALUES(?, ?, ?, ?, ?, ?)")
            .bind(experiment_id)
            .bind(a.name())
            .bind(r.job_id())
            .bind(a.sha256())
            .bind(static_cast<int64_t>(a.size()))
            .bind(a.media_type())
            .run();
      event(r.job_id(), now, "done", by + " in " + secs + " s");
      release_dependents(r.job_id());
      wake = true;
      ++n_done;
    } else if (r.retryable() && attempts < max_attempts) {
      const int64_t delay = backoff_ms(attempts);
      Query(*db_,
            "UPDATE jobs SET state = 'pending', not_before_ms = ?, error = ?, log = ?, seconds = ?, lease_id = NULL "
            "WHERE id = ?")
          .bind(now + delay)
          .bind(r.error())
          .bind(r.log())
          .bind(r.seconds())
          .bind(r.job_id())
          .run();
      event(r.job_id(), now, "retry",
            "attempt " + std::to_string(attempts) + "/" + std::to_string(max_attempts) + " failed " + by + ": " +
                r.error() + "; next try in " + std::to_string(delay) + " ms");
      wake = true;
    } else {
      const std::string why = r.retryable() ? "attempt " + std::to_string(attempts) + "/" +
                                                  std::to_string(max_attempts) + " failed, no attempts left"
                                            : "failed, not retryable";
      Query(*db_,
            "UPDATE jobs SET state = 'failed', error = ?, log = ?, seconds = ?, finished_ms = ? WHERE id = ?")
          .bind(r.error())
          .bind(r.log())
          .bind(r.seconds())
          .bind(now)
          .bind(r.job_id())
          .run();
      event(r.job_id(), now, "failed", why + " " + by + ": " + r.error());
      fail_dependents(r.job_id(), name, now);
    }
  }
  if (n_done)
    Query(*db_, "UPDATE workers SET jobs_done = jobs_done + ? WHERE id = ?").bind(n_done).bind(req.worker_id()).run();
  for (int64_t e : touched) finish_if_complete(e, now);
  txn.commit();
  if (wake) work_.notify_all();
  return resp;
}

int Store::release(const std::string& worker_id, const std::vector<std::string>& lease_ids) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  int n = 0;
  Txn txn(*db_);
  {
    Query q(*db_, "SELECT 1 FROM workers WHERE id = ?");
    q.bind(worker_id);
    if (!q.step()) throw NotFound("unknown worker id '" + worker_id + "'; register again");
  }
  for (const auto& lease_id : lease_ids) {
    int64_t job_id = 0;
    {
      // The attempt was never run to an outcome, so it is given back.
      Query q(*db_,
              "UPDATE jobs SET state = 'pending', attempts = MAX(attempts - 1, 0), lease_id = NULL, "
              "not_before_ms = 0 WHERE lease_id = ? AND state = 'leased' RETURNING id");
      q.bind(lease_id);
      if (q.step()) job_id = q.i64(0);
    }
    if (job_id) {
      event(job_id, now, "released", "handed back by worker " + worker_id);
      ++n;
    }
  }
  txn.commit();
  if (n) work_.notify_all();
  return n;
}

int Store::reap_expired() {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  struct Expired {
    int64_t id, experiment_id;
    int attempts, max_attempts, expiries;
    std::string error, owner, name;
  };
  std::vector<Expired> expired;
  Txn txn(*db_);
  {
    Query q(*db_,
            "SELECT id, experiment_id, attempts, max_attempts, expiries, error, lease_owner, name FROM jobs "
            "WHERE state = 'leased' AND lease_expires_ms < ?");
    q.bind(now);
    while (q.step())
      expired.push_back({q.i64(0), q.i64(1), static_cast<int>(q.i64(2)), static_cast<int>(q.i64(3)),
                         static_cast<int>(q.i64(4)) + 1, q.text(5), q.text(6), q.text(7)});
  }
  if (expired.empty()) return 0;
  std::set<int64_t> touched;
  for (const auto& e : expired) {
    if (e.attempts < e.max_attempts) {
      const int64_t delay = backoff_ms(e.attempts);
      Query(*db_,
            "UPDATE jobs SET state = 'pending', not_before_ms = ?, expiries = ?, lease_id = NULL WHERE id = ?")
          .bind(now + delay)
          .bind(e.expiries)
          .bind(e.id)
          .run();
      event(e.id, now, "expired",
            "lease of worker " + e.owner + " expired (attempt " + std::to_string(e.attempts) + "/" +
                std::to_string(e.max_attempts) + "); next try in " + std::to_string(delay) + " ms");
    } else {
      const std::string err = "lease expired " + std::to_string(e.expiries) + " time(s); last error: " +
                              (e.error.empty() ? "none" : e.error);
      Query(*db_, "UPDATE jobs SET state = 'failed', expiries = ?, error = ?, finished_ms = ? WHERE id = ?")
          .bind(e.expiries)
          .bind(err)
          .bind(now)
          .bind(e.id)
          .run();
      event(e.id, now, "failed", "lease of worker " + e.owner + " expired on the last attempt: " + err);
      fail_dependents(e.id, e.name, now);
      touched.insert(e.experiment_id);
    }
  }
  for (int64_t x : touched) finish_if_complete(x, now);
  txn.commit();
  work_.notify_all();  // requeued jobs, and workers that held the expired leases
  return static_cast<int>(expired.size());
}

// ---------------------------------------------------------------- graph helpers

void Store::release_dependents(int64_t job_id) {
  // n_deps_left on the right-hand side is the old value.
  Query(*db_,
        "UPDATE jobs SET n_deps_left = n_deps_left - 1, "
        "state = CASE WHEN n_deps_left <= 1 THEN 'pending' ELSE state END "
        "WHERE state = 'blocked' AND id IN (SELECT job_id FROM deps WHERE dep_id = ?)")
      .bind(job_id)
      .run();
}

void Store::fail_dependents(int64_t job_id, const std::string& job_name, int64_t now) {
  const std::string err = "dependency " + job_name + " failed";
  std::deque<int64_t> queue{job_id};
  while (!queue.empty()) {
    const int64_t id = queue.front();
    queue.pop_front();
    std::vector<int64_t> hit;
    {
      Query q(*db_,
              "UPDATE jobs SET state = 'failed', error = ?, finished_ms = ? "
              "WHERE state = 'blocked' AND id IN (SELECT job_id FROM deps WHERE dep_id = ?) RETURNING id");
      q.bind(err).bind(now).bind(id);
      while (q.step()) hit.push_back(q.i64(0));
    }
    for (int64_t h : hit) {
      event(h, now, "failed", err);
      queue.push_back(h);
    }
  }
}

void Store::finish_if_complete(int64_t experiment_id, int64_t now) {
  {
    Query q(*db_,
            "SELECT 1 FROM jobs WHERE experiment_id = ? AND state IN ('blocked', 'pending', 'leased') LIMIT 1");
    q.bind(experiment_id);
    if (q.step()) return;
  }
  bool cancelled = false;
  {
    Query q(*db_, "SELECT cancelled FROM experiments WHERE id = ? AND state = 'running'");
    q.bind(experiment_id);
    if (!q.step()) return;
    cancelled = q.i64(0) != 0;
  }
  bool failed = false;
  {
    Query q(*db_, "SELECT 1 FROM jobs WHERE experiment_id = ? AND state = 'failed' LIMIT 1");
    q.bind(experiment_id);
    failed = q.step();
  }
  Query(*db_, "UPDATE experiments SET state = ?, finished_ms = ? WHERE id = ?")
      .bind(cancelled ? "cancelled" : failed ? "failed" : "done")
      .bind(now)
      .bind(experiment_id)
      .run();
}

// ---------------------------------------------------------------- control

int64_t Store::resolve(const v1::ExperimentRef& ref) {
  std::lock_guard<std::mutex> lk(mu_);
  if (ref.id() > 0) {
    Query q(*db_, "SELECT id FROM experiments WHERE id = ?");
    q.bind(static_cast<int64_t>(ref.id()));
    if (!q.step()) throw NotFound("no experiment with id " + std::to_string(ref.id()));
    return ref.id();
  }
  if (ref.name().empty()) throw BadRequest("name an experiment by id or by name");
  Query q(*db_, "SELECT MAX(id) FROM experiments WHERE name = ?");
  q.bind(ref.name());
  if (!q.step() || q.is_null(0)) throw NotFound("no experiment named '" + ref.name() + "' was submitted");
  return q.i64(0);
}

void Store::require_experiment(int64_t experiment_id) {
  Query q(*db_, "SELECT 1 FROM experiments WHERE id = ?");
  q.bind(experiment_id);
  if (!q.step()) throw NotFound("no experiment with id " + std::to_string(experiment_id));
}

int Store::cancel(int64_t experiment_id) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  Txn txn(*db_);
  require_experiment(experiment_id);
  std::vector<int64_t> ids;
  {
    Query q(*db_,
            "UPDATE jobs SET state = 'cancelled', finished_ms = ? "
            "WHERE experiment_id = ? AND state IN ('blocked', 'pending', 'leased') RETURNING id");
    q.bind(now).bind(experiment_id);
    while (q.step()) ids.push_back(q.i64(0));
  }
  for (int64_t id : ids) event(id, now, "cancelled", "experiment cancelled");
  if (!ids.empty()) {
    Query(*db_, "UPDATE experiments SET cancelled = 1 WHERE id = ?").bind(experiment_id).run();
    finish_if_complete(experiment_id, now);
  }
  txn.commit();
  // Cancelled leases no longer count as held, and an exclusive job that was
  // holding workers back may be gone.
  if (!ids.empty()) work_.notify_all();
  return static_cast<int>(ids.size());
}

int Store::retry(int64_t experiment_id) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  Txn txn(*db_);
  require_experiment(experiment_id);
  std::vector<int64_t> ids;
  {
    // First make every retried job non-terminal, so that counting deps not
    // done below sees the final picture.
    Query q(*db_,
            "UPDATE jobs SET state = 'blocked', attempts = 0, expiries = 0, error = '', not_before_ms = 0, "
            "lease_id = NULL, finished_ms = 0 WHERE experiment_id = ? AND state IN ('failed', 'cancelled') "
            "RETURNING id");
    q.bind(experiment_id);
    while (q.step()) ids.push_back(q.i64(0));
  }
  bool any_pending = false;
  for (int64_t id : ids) {
    int64_t left = 0;
    {
      Query q(*db_,
              "SELECT COUNT(*) FROM deps d JOIN jobs j ON j.id = d.dep_id WHERE d.job_id = ? AND j.state != 'done'");
      q.bind(id);
      q.step();
      left = q.i64(0);
    }
    Query(*db_, "UPDATE jobs SET n_deps_left = ?, state = ? WHERE id = ?")
        .bind(left)
        .bind(left ? "blocked" : "pending")
        .bind(id)
        .run();
    any_pending |= left == 0;
    event(id, now, "retried", "requested by the user");
  }
  if (!ids.empty())
    Query(*db_, "UPDATE experiments SET state = 'running', cancelled = 0, finished_ms = 0 WHERE id = ?")
        .bind(experiment_id)
        .run();
  txn.commit();
  if (any_pending) work_.notify_all();
  return static_cast<int>(ids.size());
}

v1::ExperimentStatus Store::status_locked(int64_t id) {
  const int64_t now = opts_.clock();
  v1::ExperimentStatus s;
  {
    Query q(*db_,
            "SELECT name, parts, state, priority, submitted_ms, finished_ms, params_json FROM experiments "
            "WHERE id = ?");
    q.bind(id);
    if (!q.step()) throw NotFound("no experiment with id " + std::to_string(id));
    s.set_id(id);
    s.set_name(q.text(0));
    s.set_parts(q.text(1));
    s.set_state(q.text(2));
    s.set_priority(static_cast<int>(q.i64(3)));
    s.set_submitted_unix_ms(q.i64(4));
    s.set_finished_unix_ms(q.i64(5));
    s.set_params_json(q.text(6));
  }
  v1::Counts* c = s.mutable_counts();
  {
    // One index-only walk of jobs_by_part in index order (no sorter, one
    // COUNT per row: status is polled often): per-part counts, and from them
    // the overall ones; retries (leases past the first) and jobs that failed
    // through an upstream job (never leased) from the attempts groups.
    Query q(*db_,
            "SELECT part, state, attempts, COUNT(*) FROM jobs INDEXED BY jobs_by_part WHERE experiment_id = ? "
            "GROUP BY part, state, attempts ORDER BY part, state, attempts");
    q.bind(id);
    int64_t retries = 0, by_dependency = 0;
    while (q.step()) {
      const std::string part = q.text(0), st = q.text(1);
      const int64_t attempts = q.i64(2), n = q.i64(3);
      if (s.part_progress().empty() || s.part_progress().rbegin()->part() != part)
        s.add_part_progress()->set_part(part);
      add_count(s.mutable_part_progress()->rbegin()->mutable_counts(), st, n);
      add_count(c, st, n);
      retries += n * std::max<int64_t>(attempts - 1, 0);
      if (st == "failed" && attempts == 0) by_dependency += n;
    }
    s.set_retries(retries);
    s.set_failed_by_dependency(by_dependency);
  }
  // Completions (not reuses) over a window of a third of the elapsed time,
  // clamped to [1, 15] minutes, ending now or when the experiment finished:
  // fused waves complete in bursts minutes apart, which a fixed minute
  // would show as 0 jobs/s between them.
  const int64_t end = s.finished_unix_ms() ? s.finished_unix_ms() : now;
  const int64_t window = std::clamp<int64_t>((end - s.submitted_unix_ms()) / 3, 60000, 900000);
  const int64_t start = std::max(s.submitted_unix_ms(), end - window);
  int64_t n = 0;
  {
    Query q(*db_,
            "SELECT COUNT(*) FROM jobs INDEXED BY jobs_completions WHERE experiment_id = ? AND state = 'done' "
            "AND finished_ms >= ? AND finished_ms <= ? AND reused_from IS NULL");
    q.bind(id).bind(start).bind(end);
    q.step();
    n = q.i64(0);
  }
  const double span_s = std::max<int64_t>(1000, end - start) / 1000.0;
  s.set_throughput_per_s(n / span_s);
  failure_summary_locked(id, s);
  const int64_t remaining = c->blocked() + c->pending() + c->leased();
  if (s.state() != "running")
    s.set_eta_s(0);
  else
    s.set_eta_s(s.throughput_per_s() > 0 ? remaining / s.throughput_per_s() : -1);
  return s;
}

void Store::failure_summary_locked(int64_t id, v1::ExperimentStatus& s) {
  // A failed job that was never leased (attempts = 0) failed through an
  // upstream job (counted in status_locked); the rest failed on their own
  // and are grouped by message. Only failed rows are read (jobs_by_experiment).
  Query q(*db_,
          "SELECT error, COUNT(*) AS n, MIN(id) FROM jobs INDEXED BY jobs_by_experiment WHERE experiment_id = ? "
          "AND state = 'failed' AND attempts > 0 GROUP BY error ORDER BY n DESC, MIN(id)");
  q.bind(id);
  int kinds = 0;
  while (q.step()) {
    if (++kinds > 5) continue;
    v1::FailureGroup* g = s.add_failures();
    g->set_error(q.text(0));
    g->set_count(q.i64(1));
    g->set_example_job_id(q.i64(2));
  }
  s.set_failure_kinds(kinds);
  for (auto& g : *s.mutable_failures()) {
    Query n(*db_, "SELECT name FROM jobs WHERE id = ?");
    n.bind(g.example_job_id());
    if (n.step()) g.set_example_job(n.text(0));
  }
}

v1::ExperimentStatus Store::experiment_status(int64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  return status_locked(id);
}

std::vector<v1::ExperimentStatus> Store::experiments(bool all) {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<int64_t> ids;
  {
    Query q(*db_, all ? "SELECT id FROM experiments ORDER BY id"
                      : "SELECT id FROM experiments WHERE state = 'running' "
                        "OR id = (SELECT MAX(id) FROM experiments) ORDER BY id");
    while (q.step()) ids.push_back(q.i64(0));
  }
  std::vector<v1::ExperimentStatus> out;
  for (int64_t id : ids) out.push_back(status_locked(id));
  return out;
}

v1::JobSummary Store::summary_locked(int64_t job_id) {
  Query q(*db_, "SELECT name, kind, state, result_json, error, attempts FROM jobs WHERE id = ?");
  q.bind(job_id);
  if (!q.step()) throw NotFound("no job with id " + std::to_string(job_id));
  v1::JobSummary s;
  s.set_job_id(job_id);
  s.set_name(q.text(0));
  s.set_kind(q.text(1));
  s.set_state(q.text(2));
  s.set_result_json(q.text(3));
  s.set_error(q.text(4));
  s.set_attempt(static_cast<int>(q.i64(5)));
  return s;
}

v1::ResultsResponse Store::results(int64_t experiment_id) {
  std::lock_guard<std::mutex> lk(mu_);
  v1::ResultsResponse r;
  *r.mutable_experiment() = status_locked(experiment_id);
  std::vector<int64_t> ids;
  {
    Query q(*db_, "SELECT id FROM jobs WHERE experiment_id = ? AND reduce = 1 ORDER BY id");
    q.bind(experiment_id);
    while (q.step()) ids.push_back(q.i64(0));
  }
  for (int64_t id : ids) *r.add_reduce_results() = summary_locked(id);
  Query q(*db_,
          "SELECT name, sha256, size, media_type FROM experiment_artifacts WHERE experiment_id = ? ORDER BY name");
  q.bind(experiment_id);
  while (q.step()) {
    v1::Artifact* a = r.add_artifacts();
    a->set_name(q.text(0));
    a->set_sha256(q.text(1));
    a->set_size(q.i64(2));
    a->set_media_type(q.text(3));
  }
  return r;
}

int64_t Store::find_job(int64_t experiment_id, const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  Query q(*db_, "SELECT id FROM jobs WHERE experiment_id = ? AND name = ?");
  q.bind(experiment_id).bind(name);
  if (!q.step())
    throw NotFound("experiment " + std::to_string(experiment_id) + " has no job named '" + name + "'");
  return q.i64(0);
}

v1::LogsResponse Store::logs(int64_t job_id) {
  std::lock_guard<std::mutex> lk(mu_);
  v1::LogsResponse r;
  *r.mutable_job() = summary_locked(job_id);
  {
    Query q(*db_, "SELECT params_json, log, created_ms, reused_from FROM jobs WHERE id = ?");
    q.bind(job_id);
    q.step();
    r.set_params_json(q.text(0));
    r.set_log(q.text(1));
    v1::JobEvent* e = r.add_events();
    e->set_unix_ms(q.i64(2));
    e->set_event("created");
  }
  Query q(*db_, "SELECT unix_ms, event, detail FROM job_events WHERE job_id = ? ORDER BY rowid");
  q.bind(job_id);
  while (q.step()) {
    v1::JobEvent* e = r.add_events();
    e->set_unix_ms(q.i64(0));
    e->set_event(q.text(1));
    e->set_detail(q.text(2));
  }
  return r;
}

std::vector<v1::WorkerInfo> Store::workers() {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  std::vector<v1::WorkerInfo> out;
  {
    Query q(*db_,
            "SELECT id, name, caps_json, last_heartbeat_ms, loaded_models, jobs_done, canaries_json, quarantine FROM workers "
            "WHERE last_heartbeat_ms >= ? OR id IN (SELECT lease_owner FROM jobs WHERE state = 'leased') "
            "ORDER BY registered_ms, id");
    q.bind(now - kWorkerListWindowMs);
    while (q.step()) {
      v1::WorkerInfo w;
      w.set_worker_id(q.text(0));
      w.set_name(q.text(1));
      (void)google::protobuf::util::JsonStringToMessage(q.text(2), w.mutable_capabilities());
      w.set_last_heartbeat_unix_ms(q.i64(3));
      w.set_alive(now - q.i64(3) <= 3 * opts_.heartbeat_ms);
      w.set_jobs_done(q.i64(5));
      auto models = nlohmann::json::parse(q.text(4), nullptr, false);
      if (models.is_array())
        for (const auto& m : models)
          if (m.is_string()) w.add_loaded_models(m.get<std::string>());
      auto canaries = nlohmann::json::parse(q.text(6), nullptr, false);
      if (canaries.is_array())
        for (const auto& c : canaries)
          if (c.is_object()) *w.add_canaries() = canary_from_json(c);
      w.set_quarantined(q.text(7));
      out.push_back(std::move(w));
    }
  }
  for (auto& w : out) {
    Query q(*db_, "SELECT id, name FROM jobs WHERE state = 'leased' AND lease_owner = ? ORDER BY id");
    q.bind(w.worker_id());
    while (q.step()) {
      w.add_current_job_ids(q.i64(0));
      w.add_current_job_names(q.text(1));
    }
  }
  return out;
}

std::string Store::judge_canaries(const std::string& worker_id, const std::vector<v1::Canary>& canaries) {
  std::map<std::string, nlohmann::json> latest;  // by precision
  {
    Query q(*db_, "SELECT canaries_json FROM workers WHERE id = ?");
    q.bind(worker_id);
    if (q.step()) {
      const auto old = nlohmann::json::parse(q.text(0), nullptr, false);
      if (old.is_array())
        for (const auto& c : old)
          if (c.is_object()) latest[c.value("precision", "")] = c;
    }
  }
  std::string why;
  for (v1::Canary c : canaries) {
    const canary::Verdict v = canary::judge(c.unit(), c.precision(), c.value(), c.error());
    c.set_reference(v.reference);
    c.set_abs_diff(v.abs_diff);
    c.set_tolerance(v.tolerance);
    c.set_pass(v.pass);
    if (!v.pass && why.empty()) why = v.why + (c.device().empty() ? "" : " on " + c.device());
    latest[c.precision()] = canary_json(c);
  }
  nlohmann::json all = nlohmann::json::array();
  for (auto& [p, c] : latest) all.push_back(std::move(c));
  Query(*db_, "UPDATE workers SET canaries_json = ? WHERE id = ?").bind(all.dump()).bind(worker_id).run();
  return why;
}

int Store::quarantine_locked(const std::string& worker_id, const std::string& why, int64_t now) {
  Query(*db_, "UPDATE workers SET quarantine = ? WHERE id = ? AND quarantine = ''").bind(why).bind(worker_id).run();
  std::vector<int64_t> ids;
  {
    // Its results can no longer be trusted; the attempt is given back.
    Query q(*db_,
            "UPDATE jobs SET state = 'pending', attempts = MAX(attempts - 1, 0), lease_id = NULL, not_before_ms = 0 "
            "WHERE state = 'leased' AND lease_owner = ? RETURNING id");
    q.bind(worker_id);
    while (q.step()) ids.push_back(q.i64(0));
  }
  for (int64_t id : ids) event(id, now, "released", "worker " + worker_id + " quarantined: " + why);
  return static_cast<int>(ids.size());
}

std::vector<v1::Unschedulable> Store::unschedulable() {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  int64_t largest = 0, n_live = 0;
  {
    Query q(*db_,
            "SELECT COALESCE(MAX(mem_bytes), 0), COUNT(*) FROM workers WHERE last_heartbeat_ms >= ? AND quarantine = ''");
    q.bind(now - 3 * opts_.heartbeat_ms);
    q.step();
    largest = q.i64(0);
    n_live = q.i64(1);
  }
  std::vector<v1::Unschedulable> out;
  Query q(*db_,
          "SELECT experiment_id, mem_bytes, COUNT(*), MIN(name) FROM jobs INDEXED BY jobs_by_mem "
          "WHERE state = 'pending' AND mem_bytes > ? GROUP BY experiment_id, mem_bytes ORDER BY experiment_id, mem_bytes");
  q.bind(largest);
  while (q.step()) {
    v1::Unschedulable u;
    u.set_experiment_id(q.i64(0));
    u.set_mem_bytes(q.i64(1));
    u.set_n_jobs(q.i64(2));
    u.set_example_job(q.text(3));
    u.set_largest_worker_bytes(largest);
    u.set_reason("needs " + gib(u.mem_bytes()) + "; " +
                 (largest > 0    ? "largest live worker has " + gib(largest)
                  : n_live > 0 ? "no live worker registered its memory (spt-worker --memory)"
                               : "no live worker"));
    out.push_back(std::move(u));
  }
  return out;
}

v1::RegisterResponse Store::register_worker(const std::string& name, const v1::Capabilities& caps,
                                            const std::vector<v1::Canary>& canaries) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  std::string caps_json;
  (void)google::protobuf::util::MessageToJsonString(caps, &caps_json);
  v1::RegisterResponse r;
  r.set_worker_id("w-" + new_id(8));
  r.set_lease_ttl_ms(static_cast<int>(opts_.lease_ttl_ms));
  r.set_heartbeat_ms(static_cast<int>(opts_.heartbeat_ms));
  Txn txn(*db_);
  Query(*db_,
        "INSERT INTO workers(id, name, caps_json, job_kinds_json, registered_ms, last_heartbeat_ms, loaded_models, "
        "mem_bytes) VALUES(?, ?, ?, ?, ?, ?, '[]', ?)")
      .bind(r.worker_id())
      .bind(name)
      .bind(caps_json)
      .bind(json_list(caps.job_kinds()))
      .bind(now)
      .bind(now)
      .bind(std::max<int64_t>(0, caps.memory_bytes()))
      .run();
  const std::string why = judge_canaries(r.worker_id(), canaries);
  if (!why.empty()) quarantine_locked(r.worker_id(), why, now);
  r.set_quarantined(why);
  txn.commit();
  // A bigger worker may take jobs nobody could hold so far.
  work_.notify_all();
  return r;
}

// ---------------------------------------------------------------- blob metadata

void Store::record_blob(const std::string& sha256, int64_t size, const std::string& media_type) {
  std::lock_guard<std::mutex> lk(mu_);
  Txn txn(*db_);
  Query(*db_, "INSERT OR IGNORE INTO blobs(sha256, size, media_type, created_ms) VALUES(?, ?, ?, ?)")
      .bind(sha256)
      .bind(size)
      .bind(media_type)
      .bind(opts_.clock())
      .run();
  txn.commit();
}

bool Store::has_blob(const std::string& sha256) {
  std::lock_guard<std::mutex> lk(mu_);
  Query q(*db_, "SELECT 1 FROM blobs WHERE sha256 = ?");
  q.bind(sha256);
  return q.step();
}

void Store::name_blob(const std::string& name, const std::string& sha256) {
  std::lock_guard<std::mutex> lk(mu_);
  Txn txn(*db_);
  Query(*db_, "INSERT OR REPLACE INTO names(name, sha256, created_ms) VALUES(?, ?, ?)")
      .bind(name)
      .bind(sha256)
      .bind(opts_.clock())
      .run();
  txn.commit();
}

std::optional<v1::Artifact> Store::named_blob(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  Query q(*db_,
          "SELECT n.name, b.sha256, b.size, b.media_type FROM names n JOIN blobs b ON b.sha256 = n.sha256 "
          "WHERE n.name = ?");
  q.bind(name);
  if (!q.step()) return std::nullopt;
  v1::Artifact a;
  a.set_name(q.text(0));
  a.set_sha256(q.text(1));
  a.set_size(q.i64(2));
  a.set_media_type(q.text(3));
  return a;
}

std::vector<v1::Artifact> Store::list_named(const std::string& prefix) {
  std::lock_guard<std::mutex> lk(mu_);
  // Byte-wise prefix rather than LIKE, so '%' and '_' in names mean themselves.
  Query q(*db_,
          "SELECT n.name, b.sha256, b.size, b.media_type FROM names n JOIN blobs b ON b.sha256 = n.sha256 "
          "WHERE substr(CAST(n.name AS BLOB), 1, ?) = CAST(? AS BLOB) ORDER BY n.name");
  q.bind(static_cast<int64_t>(prefix.size())).bind(prefix);
  std::vector<v1::Artifact> out;
  while (q.step()) {
    v1::Artifact a;
    a.set_name(q.text(0));
    a.set_sha256(q.text(1));
    a.set_size(q.i64(2));
    a.set_media_type(q.text(3));
    out.push_back(std::move(a));
  }
  return out;
}

// ---- worker pool upkeep (issue 11)

int Store::deregister_worker(const std::string& worker_id) {
  std::vector<std::string> leases;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Query q(*db_, "SELECT lease_id FROM jobs WHERE state = 'leased' AND lease_owner = ?");
    q.bind(worker_id);
    while (q.step()) leases.push_back(q.text(0));
  }
  const int n = release(worker_id, leases);  // NotFound for an unknown id
  std::lock_guard<std::mutex> lk(mu_);
  Query(*db_, "DELETE FROM workers WHERE id = ?").bind(worker_id).run();
  drain_asked_.erase(worker_id);
  return n;
}

int Store::prune_workers() {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  Query(*db_,
        "DELETE FROM workers WHERE last_heartbeat_ms < ? AND id NOT IN "
        "(SELECT lease_owner FROM jobs WHERE state = 'leased' AND lease_owner IS NOT NULL)")
      .bind(now - 3 * opts_.heartbeat_ms)
      .run();
  return static_cast<int>(db_->changes());
}

int Store::ask_drain(const std::string& name_or_id) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  Query q(*db_, "SELECT id FROM workers WHERE (name = ? OR id = ?) AND last_heartbeat_ms >= ?");
  q.bind(name_or_id).bind(name_or_id).bind(now - 3 * opts_.heartbeat_ms);
  int n = 0;
  while (q.step()) n += drain_asked_.insert(q.text(0)).second ? 1 : 0;
  return n;
}

bool Store::drain_asked(const std::string& worker_id) {
  std::lock_guard<std::mutex> lk(mu_);
  return drain_asked_.count(worker_id) != 0;
}

}  // namespace spt::server
