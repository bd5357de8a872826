#include "store.h"

#include <google/protobuf/util/json_util.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string_view>
#include <thread>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <tuple>
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

// How a plan's shared params enter its jobs' content keys (store.h).
struct SharedParams {
  const nlohmann::json* json = nullptr;  // the plan's shared params (an object)
  std::string digest;                    // sha256 of their JSON if over kInlineSharedBytes, else ""
};

std::string content_key(const plan::JobSpec& spec, std::vector<std::string> named_dep_keys,
                        const SharedParams& shared) {
  std::sort(named_dep_keys.begin(), named_dep_keys.end());
  Sha256 h;
  feed(h, "spt.job.v1");
  feed(h, SPT_CODE_VERSION);
  feed(h, spec.kind);
  feed(h, spec.model);
  if (shared.json->empty() || !shared.digest.empty()) {
    feed(h, canonical_json(spec.params));
    // A separate field, so no params' JSON can hash the same bytes.
    if (!shared.digest.empty()) feed(h, "shared-sha256:" + shared.digest);
  } else {
    // Exactly the bytes of the merged params, as when every job carried them.
    nlohmann::json merged = *shared.json;
    for (auto it = spec.params.begin(); it != spec.params.end(); ++it) merged[it.key()] = it.value();
    feed(h, canonical_json(merged));
  }
  for (const auto& d : named_dep_keys) feed(h, d);
  // Only when set, so the keys of every other job stay what they were: a
  // result measured alone (timing) is not the same as one measured beside
  // other jobs, and neither stands in for the other.
  if (spec.exclusive) feed(h, "exclusive");
  return h.hex();
}

// Chunked submissions: an experiment still being stored has only part of
// its graph, so it is neither cancelled nor retried until submit returns.
void refuse_if_submitting(Db& db, int64_t id, const char* verb) {
  Query q(db, "SELECT jobs_planned FROM experiments WHERE id = ? AND state = 'submitting'");
  q.bind(id);
  if (!q.step()) return;
  Query n(db, "SELECT COUNT(*) FROM jobs WHERE experiment_id = ?");
  n.bind(id);
  n.step();
  throw BadRequest("experiment " + std::to_string(id) + " is still being submitted (" + std::to_string(n.i64(0)) +
                   " of " + std::to_string(q.i64(0)) + " jobs stored); it can be " + verb +
                   " once its submission completes");
}

// A job's params for a worker: its experiment's shared params (the inside
// of a JSON object, "" = none) joined to its own (a JSON object). Their keys
// never overlap (submit checks), so this is one valid object; its key order
// is not canonical, which nothing that reads it needs.
std::string with_shared(const std::string& inner, const std::string& own) {
  if (inner.empty()) return own;
  if (own.size() <= 2) return "{" + inner + "}";
  return "{" + inner + "," + own.substr(1);
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

// ---- report hardening (issue 12)

constexpr size_t kMaxErrorBytes = 16 << 10;  // a failure's message: its head
constexpr size_t kMaxLogBytes = 64 << 10;    // a job's log: its tail

// s cut to at most n bytes at a UTF-8 character boundary, keeping the head
// (or the tail), so that a valid string stays valid.
std::string utf8_head(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}
std::string utf8_tail(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  size_t from = s.size() - n;
  while (from < s.size() && (static_cast<unsigned char>(s[from]) & 0xC0) == 0x80) ++from;
  return s.substr(from);
}

std::string mib(int64_t bytes) {
  char buf[32];
  if (bytes < (1 << 20))
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// Why `r` cannot be stored as sent ("" = it can), with *fixed (and *use_fixed
// set) the result to store instead: its job's failure, saying why. Overlong
// errors and logs are only trimmed (*use_fixed, no reason): they are
// diagnostics, not data.
std::string result_problem(const v1::JobResult& r, int64_t max_result_bytes, v1::JobResult* fixed,
                           bool* use_fixed) {
  *use_fixed = false;
  std::string why;
  bool retryable = true;
  if (!std::isfinite(r.seconds()) || r.seconds() < 0) {
    why = "worker reported an invalid run time (seconds = " + std::to_string(r.seconds()) + ")";
  } else if (static_cast<int64_t>(r.result_json().size()) > max_result_bytes) {
    why = "result is " + mib(static_cast<int64_t>(r.result_json().size())) + ", over the coordinator's limit of " +
          mib(max_result_bytes) + " (spt-server --max-result-bytes); large data belongs in artifacts";
    retryable = false;  // the same job makes the same result
  }
  if (why.empty() && r.error().size() <= kMaxErrorBytes && r.log().size() <= kMaxLogBytes) return why;
  *fixed = r;
  *use_fixed = true;
  fixed->set_error(utf8_head(r.error(), kMaxErrorBytes));
  fixed->set_log(utf8_tail(r.log(), kMaxLogBytes));
  if (why.empty()) return why;  // trimmed only
  if (!std::isfinite(r.seconds()) || r.seconds() < 0) fixed->set_seconds(0);
  if (!r.ok()) retryable = retryable && r.retryable();
  fixed->set_ok(false);
  fixed->set_error(r.ok() ? why : why + "; its own error: " + fixed->error());
  fixed->set_retryable(retryable);
  fixed->clear_result_json();
  fixed->clear_artifacts();
  return why;
}

}  // namespace

int Store::schema_version() { return kSchemaVersion; }

// Registered for the length of a heartbeat or report, from its arrival
// (before it waits for mu_) to its end.
class Store::InFlight {
 public:
  InFlight(Store& s, const std::string& worker_id, int64_t arrived_ms) : s_(s) {
    std::lock_guard<std::mutex> g(s_.inflight_mu_);
    it_ = s_.inflight_.emplace(worker_id, arrived_ms);
  }
  ~InFlight() {
    std::lock_guard<std::mutex> g(s_.inflight_mu_);
    s_.inflight_.erase(it_);
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  Store& s_;
  std::multimap<std::string, int64_t>::iterator it_;
};


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
    s->recover_submissions();
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

SubmitResult Store::submit(const plan::Plan& plan, int priority, bool force, const std::function<bool()>& gone) {
  if (!plan.shared.is_object()) throw BadRequest("plan bug: shared params are not a JSON object");
  const std::string shared_json = canonical_json(plan.shared);
  const SharedParams shared{&plan.shared, shared_json.size() > kInlineSharedBytes ? sha256_hex(shared_json) : ""};
  SubmitResult out;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Txn txn(*db_);
    Query(*db_,
          "INSERT INTO experiments(name, parts, params_json, priority, state, submitted_ms, forced, jobs_planned) "
          "VALUES(?, ?, ?, ?, 'submitting', ?, ?, ?)")
        .bind(plan.experiment)
        .bind(plan.parts)
        .bind(canonical_json(plan.params))
        .bind(priority)
        .bind(opts_.clock())
        .bind(force ? 1 : 0)
        .bind(static_cast<int64_t>(plan.jobs.size()))
        .run();
    out.experiment_id = db_->last_insert_id();
    if (!plan.shared.empty())
      Query(*db_, "INSERT INTO experiment_shared(experiment_id, shared_json) VALUES(?, ?)")
          .bind(out.experiment_id)
          .bind(shared_json)
          .run();
    txn.commit();
  }

  // Without the lock: every job's deps (as indices: deps come earlier in
  // the plan) and content key, which need no database.
  const size_t n = plan.jobs.size();
  std::vector<std::string> keys(n);
  std::vector<std::vector<uint32_t>> deps(n);
  {
    std::unordered_map<std::string_view, uint32_t> index;
    index.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const plan::JobSpec& spec = plan.jobs[i];
      std::vector<std::string> dep_keys;
      dep_keys.reserve(spec.deps.size());
      deps[i].reserve(spec.deps.size());
      for (const auto& d : spec.deps) {
        auto it = index.find(d);
        if (it == index.end()) throw BadRequest("plan bug: " + spec.name + " depends on unknown job " + d);
        deps[i].push_back(it->second);
        dep_keys.push_back(d + "=" + keys[it->second]);
      }
      if (!plan.shared.empty())
        for (auto it = spec.params.begin(); it != spec.params.end(); ++it)
          if (plan.shared.contains(it.key()))
            throw BadRequest("plan bug: " + spec.name + "'s param " + it.key() + " is also a shared param");
      keys[i] = content_key(spec, std::move(dep_keys), shared);
      index.emplace(spec.name, static_cast<uint32_t>(i));
    }
  }
  std::vector<int64_t> ids(n, 0);
  std::vector<char> done(n, 0);  // answered from a stored result

  // Stores job i (caller holds mu_, in a transaction); its deps rows follow
  // separately. A job that would be ready goes in held (blocked,
  // n_deps_left = 0) until release_held().
  auto insert_job = [&](size_t i, int64_t now) {
    const plan::JobSpec& spec = plan.jobs[i];
    int64_t n_left = 0;
    for (uint32_t d : deps[i]) n_left += done[d] ? 0 : 1;
    int64_t reused = 0;
    std::string result;
    if (!force) {
      Query q(*db_, "SELECT id, result_json FROM jobs WHERE content_key = ? AND state = 'done' ORDER BY id LIMIT 1");
      q.bind(keys[i]);
      if (q.step()) {
        reused = q.i64(0);
        result = q.text(1);
      }
    }
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
          .bind(reused ? "done" : "blocked")
          .bind(priority)
          .bind(spec.max_attempts > 0 ? spec.max_attempts : opts_.max_attempts)
          .bind(spec.timeout_s);
      if (reused)
        q.bind(result);
      else
        q.bind_null();
      q.bind(keys[i]).bind(reused ? 0 : n_left).bind(now).bind(reused ? now : 0).bind(reused ? now : 0);
      if (reused)
        q.bind(reused);
      else
        q.bind_null();
      q.bind(spec.exclusive ? 1 : 0);
      q.bind(std::max<int64_t>(0, spec.mem_bytes));
      q.bind(job_part(spec.name));
      q.run();
    }
    ids[i] = db_->last_insert_id();
    done[i] = reused != 0;
    if (reused) {
      Query(*db_,
            "INSERT INTO experiment_artifacts(experiment_id, name, job_id, sha256, size, media_type) "
            "SELECT ?, name, ?, sha256, size, media_type FROM experiment_artifacts WHERE job_id = ?")
          .bind(out.experiment_id)
          .bind(ids[i])
          .bind(reused)
          .run();
      event(ids[i], now, "reused", "stored result of job " + std::to_string(reused));
      ++out.n_reused;
    }
    ++out.n_jobs;
  };

  // Units of work are a job row or one deps row (a reduce over 10^6 maps
  // has 10^6 of them), so that no chunk grows with a job's fan-in.
  size_t next = 0, next_dep = 0;  // the job, and its deps row, to store next
  bool job_in = false;            // jobs[next]'s own row is stored
  try {
    for (;;) {
      if (gone && gone()) throw BadRequest("submission abandoned: the client went away before it was stored");
      bool last = false;
      {
        std::lock_guard<std::mutex> lk(mu_);
        const int64_t now = opts_.clock();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kSubmitChunkMs);
        Txn txn(*db_);
        for (int k = 0; next < n && k < kSubmitChunkJobs && std::chrono::steady_clock::now() < deadline; ++k) {
          if (!job_in) {
            insert_job(next, now);
            job_in = true;
          } else if (next_dep < deps[next].size()) {
            Query(*db_, "INSERT INTO deps(job_id, dep_id) VALUES(?, ?)")
                .bind(ids[next])
                .bind(ids[deps[next][next_dep++]])
                .run();
          }
          if (job_in && next_dep == deps[next].size()) {
            ++next;
            next_dep = 0;
            job_in = false;
          }
        }
        last = next >= n;
        if (last) {
          Query(*db_, "UPDATE experiments SET state = 'running' WHERE id = ?").bind(out.experiment_id).run();
          finish_if_complete(out.experiment_id, now);  // every job answered from stored results
        }
        txn.commit();
        if (last)
          submitting_.erase(out.experiment_id);
        else
          submitting_[out.experiment_id] = {out.n_jobs, out.n_reused};
      }
      if (last) break;
      // Threads blocked on mu_ were woken by the unlock; let them take it
      // before the next chunk (std::mutex is not fair).
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  } catch (const std::exception& e) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      submitting_.erase(out.experiment_id);
    }
    drop_submission(out.experiment_id, std::string("submission not stored: ") + e.what());
    throw;
  }
  release_held(out.experiment_id);
  return out;
}

void Store::release_held(int64_t experiment_id) {
  // Each released job enters the queue's partial indexes: ~10-20 us a row.
  constexpr int kReleaseChunk = 500;
  // Held jobs were inserted with finished_ms = 0: the walk is an index range
  // of jobs_by_experiment, in id order from a cursor.
  int64_t cursor = 0;
  for (;;) {
    int n = 0;
    {
      std::lock_guard<std::mutex> lk(mu_);
      Txn txn(*db_);
      Query q(*db_,
              "UPDATE jobs SET state = 'pending' WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_by_experiment "
              "WHERE experiment_id = ? AND state = 'blocked' AND finished_ms = 0 AND id > ? AND n_deps_left = 0 "
              "ORDER BY id LIMIT ?) RETURNING id");
      q.bind(experiment_id).bind(cursor).bind(static_cast<int64_t>(kReleaseChunk));
      while (q.step()) {
        cursor = std::max(cursor, q.i64(0));
        ++n;
      }
      txn.commit();
    }
    if (n) work_.notify_all();
    if (n < kReleaseChunk) return;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

void Store::drop_submission(int64_t experiment_id, const std::string& why) {
  int64_t lo = 0, hi = -1;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Txn txn(*db_);
    // Reused jobs' artifact rows point at the jobs removed below.
    Query(*db_, "DELETE FROM experiment_artifacts WHERE experiment_id = ?").bind(experiment_id).run();
    Query q(*db_, "SELECT MIN(id), MAX(id) FROM jobs WHERE experiment_id = ?");
    q.bind(experiment_id);
    if (q.step() && !q.is_null(0)) {
      lo = q.i64(0);
      hi = q.i64(1);
    }
    txn.commit();
  }
  // Newest first: a job's dependents have larger ids, so their deps rows
  // (which reference it) are gone before it is.
  for (int64_t top = hi; top >= lo; top -= kSubmitChunkJobs) {
    const int64_t bottom = std::max(lo, top - kSubmitChunkJobs + 1);
    std::lock_guard<std::mutex> lk(mu_);
    Txn txn(*db_);
    const char* kMine = "(SELECT id FROM jobs WHERE id BETWEEN ?1 AND ?2 AND experiment_id = ?3)";
    for (const std::string sql : {std::string("DELETE FROM deps WHERE job_id IN ") + kMine,
                                  std::string("DELETE FROM job_events WHERE job_id IN ") + kMine,
                                  std::string("DELETE FROM jobs WHERE id BETWEEN ?1 AND ?2 AND experiment_id = ?3")})
      Query(*db_, sql.c_str()).bind(bottom).bind(top).bind(experiment_id).run();
    txn.commit();
  }
  std::lock_guard<std::mutex> lk(mu_);
  Txn txn(*db_);
  Query(*db_, "DELETE FROM experiment_shared WHERE experiment_id = ?").bind(experiment_id).run();
  Query(*db_, "UPDATE experiments SET state = 'failed', finished_ms = ?, submit_error = ? WHERE id = ?")
      .bind(opts_.clock())
      .bind(why)
      .bind(experiment_id)
      .run();
  txn.commit();
}

void Store::recover_submissions() {
  struct Stale {
    int64_t id, planned, stored;
  };
  std::vector<Stale> stale;
  std::vector<int64_t> running;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Query q(*db_,
            "SELECT e.id, e.jobs_planned, (SELECT COUNT(*) FROM jobs j WHERE j.experiment_id = e.id) "
            "FROM experiments e WHERE e.state = 'submitting'");
    while (q.step()) stale.push_back({q.i64(0), q.i64(1), q.i64(2)});
    Query r(*db_, "SELECT id FROM experiments WHERE state = 'running'");
    while (r.step()) running.push_back(r.i64(0));
  }
  for (const auto& e : stale)
    drop_submission(e.id, "the coordinator stopped while this submission was being stored (" +
                              std::to_string(e.stored) + " of " + std::to_string(e.planned) +
                              " jobs in); its jobs were removed and none ran: submit it again");
  for (int64_t id : running) release_held(id);
}

const std::string& Store::shared_inner_locked(int64_t experiment_id) {
  auto it = shared_inner_.find(experiment_id);
  if (it != shared_inner_.end()) return it->second;
  if (shared_inner_.size() >= 64) shared_inner_.clear();  // bounded: experiments in flight are few
  std::string inner;
  Query q(*db_, "SELECT shared_json FROM experiment_shared WHERE experiment_id = ?");
  q.bind(experiment_id);
  if (q.step()) {
    const std::string j = q.text(0);
    // A canonical JSON object: "{}" or "{...}"; its inside joins a job's own.
    if (j.size() > 2 && j.front() == '{' && j.back() == '}') inner = j.substr(1, j.size() - 2);
  }
  return shared_inner_.emplace(experiment_id, std::move(inner)).first->second;
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
    bool quarantined = false;
    {
      Query q(*db_,
              "UPDATE workers SET last_heartbeat_ms = ?, loaded_models = ? WHERE id = ? RETURNING quarantine != ''");
      q.bind(now).bind(loaded_json).bind(req.worker_id());
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
        job->set_params_json(with_shared(shared_inner_locked(q.i64(0)), q.text(4)));
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
  const InFlight in_flight(*this, req.worker_id(), opts_.clock());  // before the lock: see reap_expired()
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  const int64_t expires = now + opts_.lease_ttl_ms;
  v1::HeartbeatResponse resp;
  Txn txn(*db_);
  std::string quarantine;
  {
    Query q(*db_, "UPDATE workers SET last_heartbeat_ms = ?, loaded_models = ? WHERE id = ? RETURNING quarantine");
    q.bind(now).bind(json_list(req.loaded_models())).bind(req.worker_id());
    if (!q.step()) throw NotFound("unknown worker id '" + req.worker_id() + "'; register again");
    quarantine = q.text(0);
  }
  running_[req.worker_id()] = std::set<int64_t>(req.running_job_ids().begin(), req.running_job_ids().end());
  bool released = false;
  if (req.canaries_size()) {
    const std::string why =
        judge_canaries(req.worker_id(), std::vector<v1::Canary>(req.canaries().begin(), req.canaries().end()));
    // Its leases go back now, so the renewals below report them as lost.
    if (!why.empty()) {
      released = quarantine_locked(req.worker_id(), why, now) > 0;
      if (quarantine.empty()) quarantine = why;  // quarantine_locked sets it only where it was not set
    }
  }
  resp.set_quarantined(quarantine);
  resp.set_drain(drain_asked_.count(req.worker_id()) != 0);
  for (const auto& lease_id : req.lease_ids()) {
    int64_t job_id = 0;
    {
      Query q(*db_,
              "UPDATE jobs SET lease_expires_ms = ? WHERE lease_id = ? AND state = 'leased' AND lease_owner = ? "
              "RETURNING id");
      q.bind(expires).bind(lease_id).bind(req.worker_id());  // another worker's lease is not ours to keep
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
  const InFlight in_flight(*this, req.worker_id(), opts_.clock());  // before the lock: see reap_expired()
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  v1::ReportResponse resp;
  bool wake = false;
  // One transaction of report_locked; false (out cleared, the reason in
  // *why) if the database would not take it.
  auto store = [&](const v1::ReportRequest& r, v1::ReportResponse& out, std::string* why) {
    try {
      Txn txn(*db_);
      wake |= report_locked(r, now, out);
      txn.commit();
      return true;
    } catch (const NotFound&) {
      throw;
    } catch (const std::exception& e) {
      out.Clear();
      if (why) *why = e.what();
      return false;
    }
  };
  if (!store(req, resp, nullptr)) {
    // One result the database will not take must not sink the batch (the
    // worker would resend it until its leases expired): each result alone,
    // and one that still fails is stored as its job's failure, else refused.
    for (const auto& r : req.results()) {
      v1::ReportRequest one;
      one.set_worker_id(req.worker_id());
      *one.add_results() = r;
      v1::ReportResponse part;
      std::string err;
      if (!store(one, part, &err)) {
        const std::string why = "the coordinator could not store this result: " + err;
        v1::JobResult& f = *one.mutable_results(0);
        f.set_ok(false);
        f.set_error(why);
        f.set_retryable(true);
        f.clear_result_json();
        f.clear_artifacts();
        f.clear_log();
        f.set_seconds(0);
        if (!store(one, part, nullptr)) part.add_refused(r.job_id());
        v1::ResultProblem* p = part.add_problems();
        p->set_job_id(r.job_id());
        p->set_lease_id(r.lease_id());
        p->set_reason(why);
        p->set_stored_as_failure(part.accepted_size() > 0);
      }
      resp.MergeFrom(part);
    }
  }
  if (wake) work_.notify_all();
  return resp;
}

bool Store::report_locked(const v1::ReportRequest& req, int64_t now, v1::ReportResponse& resp) {
  bool wake = false;
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
  // (job id, lease id, reason) of results stored otherwise than sent.
  std::vector<std::tuple<int64_t, std::string, std::string>> problems;
  for (const auto& sent : req.results()) {
    v1::JobResult fixed;
    bool use_fixed = false;
    const std::string problem = result_problem(sent, opts_.max_result_bytes, &fixed, &use_fixed);
    const v1::JobResult& r = use_fixed ? fixed : sent;
    if (!problem.empty()) problems.emplace_back(r.job_id(), r.lease_id(), problem);
    std::string state, lease_id, name, owner;
    int64_t experiment_id = 0;
    int attempts = 0, max_attempts = 0;
    bool found = false;
    {
      Query q(*db_,
              "SELECT state, lease_id, experiment_id, attempts, max_attempts, name, lease_owner FROM jobs WHERE id = ?");
      q.bind(r.job_id());
      if (q.step()) {
        found = true;
        state = q.text(0);
        lease_id = q.text(1);
        experiment_id = q.i64(2);
        attempts = static_cast<int>(q.i64(3));
        max_attempts = static_cast<int>(q.i64(4));
        name = q.text(5);
        owner = q.text(6);
      }
    }
    if (!found || state != "leased" || lease_id.empty() || lease_id != r.lease_id()) {
      resp.add_refused(r.job_id());
      if (found) event(r.job_id(), now, "refused", "report " + by + " for a lease no longer current (job " + state + ")");
      continue;
    }
    if (owner != req.worker_id()) {  // the right lease id from the wrong worker: forged or confused
      resp.add_refused(r.job_id());
      event(r.job_id(), now, "refused", "report " + by + " for a lease held by worker " + owner);
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
  if (!problems.empty()) {
    const std::set<int64_t> accepted(resp.accepted().begin(), resp.accepted().end());
    for (auto& [job_id, lease, why] : problems) {
      v1::ResultProblem* p = resp.add_problems();
      p->set_job_id(job_id);
      p->set_lease_id(lease);
      p->set_reason(why);
      p->set_stored_as_failure(accepted.count(job_id) != 0);
    }
  }
  return wake;
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
              "not_before_ms = 0 WHERE lease_id = ? AND state = 'leased' AND lease_owner = ? RETURNING id");
      q.bind(lease_id).bind(worker_id);
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

// ---- dying workers and the reaper (issue 12)

struct Store::Lapsed {
  int64_t id = 0, experiment_id = 0, expires_ms = 0, job_mem = 0, worker_mem = 0, worker_seen_ms = 0;
  int attempts = 0, max_attempts = 0, expiries = 0, deaths = 0;
  std::string error, owner, name, died_on, worker_name;

  // "gpu-3 (7.5 GiB)"; the id when the worker row is gone.
  std::string worker() const {
    return (worker_name.empty() ? owner : worker_name) +
           (worker_mem > 0 ? " (" + gib(worker_mem) + ")" : " (memory unknown)");
  }
};

namespace {

// The leased jobs a WHERE clause (over jobs j, workers w) selects, as Lapsed.
const char* const kLapsedSelect =
    "SELECT j.id, j.experiment_id, j.lease_expires_ms, j.mem_bytes, COALESCE(w.mem_bytes, 0), "
    "COALESCE(w.last_heartbeat_ms, 0), j.attempts, j.max_attempts, j.expiries, j.deaths, j.error, j.lease_owner, "
    "j.name, j.died_on, COALESCE(w.name, '') FROM jobs j LEFT JOIN workers w ON w.id = j.lease_owner ";

// died_on is a JSON array of distinct "name (memory)" strings.
std::vector<std::string> died_list(const std::string& died_on) {
  std::vector<std::string> out;
  const auto j = nlohmann::json::parse(died_on.empty() ? "[]" : died_on, nullptr, false);
  if (j.is_array())
    for (const auto& s : j)
      if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

// "worker gpu-3 (7.5 GiB) died while running it, 3 times: out of memory?"
std::string death_summary(const std::string& died_on, int deaths) {
  const auto who = died_list(died_on);
  std::string names;
  for (const auto& w : who) names += (names.empty() ? "" : ", ") + w;
  return (who.size() == 1 ? "worker " : "workers ") + names + " died while running it, " + std::to_string(deaths) +
         (deaths == 1 ? " time" : " times") + (deaths >= 2 ? ": out of memory?" : "");
}

}  // namespace

std::vector<Store::Lapsed> Store::select_lapsed_locked(const std::string& where,
                                                       const std::function<void(Query&)>& bind) {
  std::vector<Lapsed> out;
  const std::string sql = std::string(kLapsedSelect) + where;
  Query q(*db_, sql.c_str());
  bind(q);
  while (q.step()) {
    Lapsed e;
    e.id = q.i64(0);
    e.experiment_id = q.i64(1);
    e.expires_ms = q.i64(2);
    e.job_mem = q.i64(3);
    e.worker_mem = q.i64(4);
    e.worker_seen_ms = q.i64(5);
    e.attempts = static_cast<int>(q.i64(6));
    e.max_attempts = static_cast<int>(q.i64(7));
    e.expiries = static_cast<int>(q.i64(8));
    e.deaths = static_cast<int>(q.i64(9));
    e.error = q.text(10);
    e.owner = q.text(11);
    e.name = q.text(12);
    e.died_on = q.text(13);
    e.worker_name = q.text(14);
    out.push_back(std::move(e));
  }
  return out;
}

void Store::lapse_locked(const Lapsed& e, bool died, const std::string& cause, int64_t now,
                         std::set<int64_t>& touched) {
  int deaths = e.deaths;
  std::string died_on = e.died_on.empty() ? "[]" : e.died_on, error = e.error;
  int64_t mem = e.job_mem;
  std::string raised;
  if (died) {
    ++deaths;
    auto who = died_list(died_on);
    if (std::find(who.begin(), who.end(), e.worker()) == who.end() && who.size() < 8) who.push_back(e.worker());
    died_on = nlohmann::json(who).dump();
    error = "worker " + e.worker() + " died while running it";
    // Past the threshold only a bigger worker may try: the job may be what
    // kills them (the leasing filter on mem_bytes does the rest).
    if (opts_.deaths_before_memory_raise > 0 && deaths >= opts_.deaths_before_memory_raise && e.worker_mem > 0 &&
        mem <= e.worker_mem) {
      mem = e.worker_mem + 1;
      raised = "; from now on only a worker with more than " + gib(e.worker_mem) + " gets it";
    }
  }
  const int expiries = e.expiries + 1;
  const std::string attempt = "attempt " + std::to_string(e.attempts) + "/" + std::to_string(e.max_attempts);
  if (e.attempts < e.max_attempts) {
    const int64_t delay = backoff_ms(e.attempts);
    Query(*db_,
          "UPDATE jobs SET state = 'pending', not_before_ms = ?, expiries = ?, lease_id = NULL, deaths = ?, "
          "died_on = ?, mem_bytes = ?, error = ? WHERE id = ?")
        .bind(now + delay)
        .bind(expiries)
        .bind(deaths)
        .bind(died_on)
        .bind(mem)
        .bind(error)
        .bind(e.id)
        .run();
    event(e.id, now, died ? "died" : "expired",
          cause + " (" + attempt + "); next try in " + std::to_string(delay) + " ms" + raised);
    return;
  }
  std::string err = deaths > 0 ? death_summary(died_on, deaths) : "";
  if (deaths == 0 || expiries > deaths)
    err += (err.empty() ? "" : "; ") + std::string("lease expired ") + std::to_string(expiries) +
           " time(s); last error: " + (error.empty() ? "none" : error);
  Query(*db_,
        "UPDATE jobs SET state = 'failed', expiries = ?, error = ?, finished_ms = ?, deaths = ?, died_on = ?, "
        "mem_bytes = ? WHERE id = ?")
      .bind(expiries)
      .bind(err)
      .bind(now)
      .bind(deaths)
      .bind(died_on)
      .bind(mem)
      .bind(e.id)
      .run();
  event(e.id, now, "failed", cause + " on the last attempt (" + attempt + "): " + err);
  fail_dependents(e.id, e.name, now);
  touched.insert(e.experiment_id);
}

int Store::reap_locked(int64_t now) {
  Txn txn(*db_);
  std::vector<Lapsed> expired = select_lapsed_locked(
      "WHERE j.state = 'leased' AND j.lease_expires_ms < ?", [&](Query& q) { q.bind(now); });
  {
    // A heartbeat or report that arrived before the lease expired, and waits
    // for mu_ (a long transaction held it), renews or settles it: the delay
    // is the server's, not the worker's.
    std::lock_guard<std::mutex> g(inflight_mu_);
    expired.erase(std::remove_if(expired.begin(), expired.end(),
                                 [&](const Lapsed& e) {
                                   const auto [lo, hi] = inflight_.equal_range(e.owner);
                                   for (auto it = lo; it != hi; ++it)
                                     if (it->second <= e.expires_ms) return true;
                                   return false;
                                 }),
                  expired.end());
  }
  if (expired.empty()) return 0;
  std::set<int64_t> touched;
  for (const auto& e : expired) {
    // Silent for over two heartbeats: dead, hung or cut off. It died while
    // running the job only if its last heartbeat said it was running it.
    const bool silent = e.worker_seen_ms == 0 || now - e.worker_seen_ms > 2 * opts_.heartbeat_ms;
    const auto run = running_.find(e.owner);
    const bool running = run != running_.end() && run->second.count(e.id) != 0;
    const std::string lease = "lease of worker " + e.worker() + " (" + e.owner + ") expired: ";
    const std::string cause =
        !silent    ? lease + "the worker is still in contact but stopped renewing it"
        : running  ? lease + "the worker died or stopped responding while running it"
                   : lease + "the worker stopped responding before it was seen running it";
    lapse_locked(e, silent && running, cause, now, touched);
  }
  for (int64_t x : touched) finish_if_complete(x, now);
  txn.commit();
  work_.notify_all();  // requeued jobs, and workers that held the expired leases
  return static_cast<int>(expired.size());
}

int Store::reap_expired() {
  std::lock_guard<std::mutex> lk(mu_);
  return reap_locked(opts_.clock());
}

int Store::reap_expired_after(const std::function<void()>& first) {
  std::lock_guard<std::mutex> lk(mu_);
  first();
  return reap_locked(opts_.clock());
}

int Store::lapse_restarted_locked(const std::string& name, const std::string& host, int64_t now) {
  if (host.empty()) return 0;  // no hostname: the name alone cannot tell a restart from a namesake
  const std::vector<Lapsed> held = select_lapsed_locked(
      "WHERE j.state = 'leased' AND w.name = ? AND COALESCE(json_extract(w.caps_json, '$.hostname'), '') = ?",
      [&](Query& q) { q.bind(name).bind(host); });
  std::set<int64_t> touched;
  std::set<std::string> owners;
  for (const auto& e : held) {
    const auto run = running_.find(e.owner);
    const bool running = run != running_.end() && run->second.count(e.id) != 0;
    lapse_locked(e, running,
                 "worker " + e.worker() + " (" + e.owner + ") registered again under its name on " + host +
                     ": its process is gone" +
                     (running ? ", and it was running this job" : ""),
                 now, touched);
    owners.insert(e.owner);
  }
  for (const auto& o : owners) running_.erase(o);
  for (int64_t x : touched) finish_if_complete(x, now);
  return static_cast<int>(held.size());
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
  refuse_if_submitting(*db_, experiment_id, "cancelled");
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
  refuse_if_submitting(*db_, experiment_id, "retried");
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
            "SELECT name, parts, state, priority, submitted_ms, finished_ms, params_json, jobs_planned, "
            "submit_error FROM experiments WHERE id = ?");
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
    s.set_jobs_planned(q.i64(7));
    s.set_submit_error(q.text(8));
  }
  if (auto it = submitting_.find(id); it != submitting_.end()) {
    // Being stored: every job is held or reused; nothing to count or time.
    v1::Counts* c = s.mutable_counts();
    c->set_total(it->second.first);
    c->set_done(it->second.second);
    c->set_blocked(it->second.first - it->second.second);
    return s;
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
                      : "SELECT id FROM experiments WHERE state IN ('running', 'submitting') "
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
    Query q(*db_, "SELECT params_json, log, created_ms, reused_from, experiment_id FROM jobs WHERE id = ?");
    q.bind(job_id);
    q.step();
    const std::string& inner = shared_inner_locked(q.i64(4));
    // With shared params: the merged object, canonical again for display.
    r.set_params_json(inner.empty() ? q.text(0) : canonical_json(nlohmann::json::parse(with_shared(inner, q.text(0)))));
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
    if (auto r = running_.find(w.worker_id()); r != running_.end())
      for (int64_t id : r->second) w.add_running_job_ids(id);
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

int Store::release_all_locked(const std::string& worker_id, const std::string& event_text, int64_t now) {
  std::vector<int64_t> ids;
  {
    // The attempt was never run to an outcome (or cannot be trusted), so it is given back.
    Query q(*db_,
            "UPDATE jobs SET state = 'pending', attempts = MAX(attempts - 1, 0), lease_id = NULL, not_before_ms = 0 "
            "WHERE state = 'leased' AND lease_owner = ? RETURNING id");
    q.bind(worker_id);
    while (q.step()) ids.push_back(q.i64(0));
  }
  for (int64_t id : ids) event(id, now, "released", event_text);
  return static_cast<int>(ids.size());
}

int Store::quarantine_locked(const std::string& worker_id, const std::string& why, int64_t now) {
  Query(*db_, "UPDATE workers SET quarantine = ? WHERE id = ? AND quarantine = ''").bind(why).bind(worker_id).run();
  // Its results can no longer be trusted; the attempt is given back.
  return release_all_locked(worker_id, "worker " + worker_id + " quarantined: " + why, now);
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
          "SELECT experiment_id, mem_bytes, COUNT(*), MIN(name), MAX(died_on) FROM jobs INDEXED BY jobs_by_mem "
          "WHERE state = 'pending' AND mem_bytes > ? GROUP BY experiment_id, mem_bytes ORDER BY experiment_id, mem_bytes");
  q.bind(largest);
  while (q.step()) {
    v1::Unschedulable u;
    u.set_experiment_id(q.i64(0));
    u.set_mem_bytes(q.i64(1));
    u.set_n_jobs(q.i64(2));
    u.set_example_job(q.text(3));
    u.set_largest_worker_bytes(largest);
    // Raised after workers died running them (reap_expired): say so.
    std::string died;
    for (const auto& w : died_list(q.text(4))) died += (died.empty() ? "" : ", ") + w;
    const std::string need = died.empty() ? "needs " + gib(u.mem_bytes())
                                          : "needs more than " + gib(u.mem_bytes() - 1) + " (workers that died " +
                                                "running it: " + died + ")";
    u.set_reason(need + "; " +
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
  r.set_worker_secret(new_id(32));
  const std::string secret_sha = sha256_hex(r.worker_secret());
  r.set_lease_ttl_ms(static_cast<int>(opts_.lease_ttl_ms));
  r.set_heartbeat_ms(static_cast<int>(opts_.heartbeat_ms));
  Txn txn(*db_);
  lapse_restarted_locked(name, caps.hostname(), now);  // issue 12: a restart's old leases go back at once
  Query(*db_,
        "INSERT INTO workers(id, name, caps_json, job_kinds_json, registered_ms, last_heartbeat_ms, loaded_models, "
        "mem_bytes, secret_sha256) VALUES(?, ?, ?, ?, ?, ?, '[]', ?, ?)")
      .bind(r.worker_id())
      .bind(name)
      .bind(caps_json)
      .bind(json_list(caps.job_kinds()))
      .bind(now)
      .bind(now)
      .bind(std::max<int64_t>(0, caps.memory_bytes()))
      .bind(secret_sha)
      .run();
  const std::string why = judge_canaries(r.worker_id(), canaries);
  if (!why.empty()) quarantine_locked(r.worker_id(), why, now);
  r.set_quarantined(why);
  txn.commit();
  {
    std::unique_lock<std::shared_mutex> sl(secrets_mu_);
    secrets_[r.worker_id()] = secret_sha;
  }
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
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  int n = 0;
  {
    Txn txn(*db_);
    {
      Query q(*db_, "SELECT 1 FROM workers WHERE id = ?");
      q.bind(worker_id);
      if (!q.step()) throw NotFound("unknown worker id '" + worker_id + "'; register again");
    }
    n = release_all_locked(worker_id, "handed back by worker " + worker_id, now);  // as release() of all its leases
    txn.commit();
  }
  if (n) work_.notify_all();
  Query(*db_, "DELETE FROM workers WHERE id = ?").bind(worker_id).run();
  drain_asked_.erase(worker_id);
  running_.erase(worker_id);
  std::unique_lock<std::shared_mutex> sl(secrets_mu_);
  secrets_.erase(worker_id);
  return n;
}

int Store::prune_workers() {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = opts_.clock();
  Query q(*db_,
          "DELETE FROM workers WHERE last_heartbeat_ms < ? AND id NOT IN "
          "(SELECT lease_owner FROM jobs WHERE state = 'leased' AND lease_owner IS NOT NULL) RETURNING id");
  q.bind(now - 3 * opts_.heartbeat_ms);
  std::vector<std::string> gone;
  while (q.step()) gone.push_back(q.text(0));
  std::unique_lock<std::shared_mutex> sl(secrets_mu_);
  for (const auto& id : gone) secrets_.erase(id);
  return static_cast<int>(gone.size());
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

// ---- worker identity (issue 12)

Store::WorkerCheck Store::check_worker_secret(const std::string& worker_id, const std::string& secret) {
  std::string want;
  bool cached = false;
  {
    std::shared_lock<std::shared_mutex> sl(secrets_mu_);
    if (auto it = secrets_.find(worker_id); it != secrets_.end()) {
      want = it->second;
      cached = true;
    }
  }
  if (!cached) {  // first sight since open (e.g. after a restart): read it once
    std::lock_guard<std::mutex> lk(mu_);
    Query q(*db_, "SELECT secret_sha256 FROM workers WHERE id = ?");
    q.bind(worker_id);
    if (!q.step() || q.text(0).empty()) return WorkerCheck::kUnknown;
    want = q.text(0);
    std::unique_lock<std::shared_mutex> sl(secrets_mu_);
    secrets_[worker_id] = want;
  }
  // Digests have a fixed length, so the compare leaks nothing about the secret.
  const std::string got = sha256_hex(secret);
  return got.size() == want.size() && CRYPTO_memcmp(got.data(), want.data(), got.size()) == 0 ? WorkerCheck::kOk
                                                                                               : WorkerCheck::kMismatch;
}

}  // namespace spt::server
