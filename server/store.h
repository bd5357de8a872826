#pragma once
// The coordinator's durable state and every transition of it: experiments,
// the job graph and its leases, workers, blob metadata. One SQLite file
// (WAL, synchronous=NORMAL) behind one mutex-guarded connection.
//
// Invariants (each public mutator is exactly one transaction, so they hold
// after any crash):
//  - Job states: blocked -> pending -> leased -> done | failed | cancelled.
//    done is final; failed/cancelled return to pending/blocked only via
//    retry(). A leased job has a lease_id, owner and expiry; nothing else
//    is "owned".
//  - A blocked job's n_deps_left == number of its deps not yet done; it
//    becomes pending when that reaches 0. A dep that fails fails every job
//    downstream of it.
//  - A result is accepted only from the current lease of a leased job, so a
//    job gets at most one result per attempt and none after cancel/expiry.
//  - A worker holding an exclusive job's lease holds no other lease.
//  - attempts counts leases handed out (release() gives one back); a job is
//    leased at most max_attempts times.
//  - A job's content_key = sha256(code version, kind, model, canonical
//    params, sorted content keys of its deps, and "exclusive" if it is). Unless `force`, a submitted
//    job whose key matches a done job is inserted done with that result.
//  - An experiment is running until all its jobs are terminal, then done
//    (all done), cancelled (cancel() was called) or failed.
//  - A job is leased only to a worker whose registered memory is at least
//    its mem_bytes (plan::JobSpec::mem_bytes; 0 = any worker), and never to
//    a quarantined worker. A worker is quarantined when a canary it reports
//    (at registration or in a heartbeat) fails spt/canary.h's judgement; its
//    leased jobs are then released (no attempt penalty) in that same
//    transaction. Quarantine lasts until the worker registers again.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "spt/plan.h"
#include "spt/v1/spt.pb.h"

namespace spt::server {

class Db;

struct StoreOptions {
  int64_t lease_ttl_ms = 15000;   // a lease not renewed within this is lost
  int64_t heartbeat_ms = 3000;    // advised to workers; alive = seen within 3x
  int max_attempts = 3;           // default for jobs whose plan says 0
  int64_t backoff_base_ms = 500;  // retry n waits base * 2^(n-1) ...
  int64_t backoff_cap_ms = 60000; // ... up to this
  std::function<int64_t()> clock; // unix ms; empty = wall clock (tests inject)
};

// The database cannot be used (not SQLite, corrupt, unknown schema version,
// unreadable). The file has not been modified.
class StoreOpenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// An experiment, job or worker the caller named does not exist.
class NotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A request that can never succeed as given (bad state for the operation).
class BadRequest : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct SubmitResult {
  int64_t experiment_id = 0;
  int n_jobs = 0;
  int n_reused = 0;
};

class Store {
 public:
  // Opens or creates the database at `path`. Throws StoreOpenError with a
  // message fit for the user; never truncates or rewrites an existing file
  // it cannot vouch for.
  static std::unique_ptr<Store> open(const std::string& path, StoreOptions opts = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const StoreOptions& options() const { return opts_; }
  int64_t now() const { return opts_.clock(); }
  static int schema_version();  // newest schema this build knows

  // ---- control
  SubmitResult submit(const plan::Plan& plan, int priority, bool force);
  // Resolves an id, or the latest experiment of that name; throws NotFound.
  int64_t resolve(const v1::ExperimentRef& ref);
  v1::ExperimentStatus experiment_status(int64_t id);
  // all: every experiment; else running ones plus the latest, oldest first.
  std::vector<v1::ExperimentStatus> experiments(bool all);
  int cancel(int64_t experiment_id);  // returns jobs cancelled
  int retry(int64_t experiment_id);   // failed/cancelled jobs back in the queue
  v1::ResultsResponse results(int64_t experiment_id);
  int64_t find_job(int64_t experiment_id, const std::string& name);  // NotFound
  v1::LogsResponse logs(int64_t job_id);
  // Workers seen within the last hour, or holding leases.
  std::vector<v1::WorkerInfo> workers();
  // Pending jobs that no live, unquarantined worker has the memory for,
  // grouped per experiment and need (one indexed query).
  std::vector<v1::Unschedulable> unschedulable();

  // ---- workers
  // Registers a worker with its capabilities (memory_bytes is what it can
  // hold) and its registration canaries, judged here; a failing one
  // quarantines the new worker at once (RegisterResponse.quarantined).
  v1::RegisterResponse register_worker(const std::string& name, const v1::Capabilities& caps,
                                       const std::vector<v1::Canary>& canaries = {});
  // Leases up to max_jobs pending jobs of the worker's kinds (a worker that
  // registered no kinds takes any), highest priority first; within the top
  // priority, jobs for loaded_models first, else for the first job's
  // model, then the rest in id order. If none, waits up to
  // wait_ms (capped at 30 s) for work; `gone()` (may be empty) aborts the
  // wait and the lease when the caller has left. NotFound: unknown worker.
  //
  // Exclusive jobs (plan::JobSpec::exclusive) are leased alone, whatever
  // max_jobs, and only to a worker holding no leased job; a worker holding
  // an exclusive lease gets nothing until that job is reported, released,
  // cancelled or reaped. Rule, so that they never starve: when a leasable
  // exclusive job is among the top priority, it comes first (lowest id
  // first, before the priority's shared jobs and their affinity); a worker
  // holding nothing gets it, and a worker holding shared jobs gets nothing
  // until it holds nothing (or another worker has taken it). Exclusive jobs
  // of a lower priority wait, like any job, for the higher ones.
  v1::LeaseResponse lease(const v1::LeaseRequest& req, const std::function<bool()>& gone = {});
  // Renews leases; judges the canaries it carries (a failure quarantines
  // the worker and releases its leases, which then come back as lost).
  v1::HeartbeatResponse heartbeat(const v1::HeartbeatRequest& req);
  v1::ReportResponse report(const v1::ReportRequest& req);
  int release(const std::string& worker_id, const std::vector<std::string>& lease_ids);
  // A worker exiting cleanly: releases its leases (as release()) and removes
  // it from the list; returns the leases released. NotFound if unknown.
  int deregister_worker(const std::string& worker_id);
  // Removes workers not heard from for 3 heartbeats that hold no lease.
  int prune_workers();
  // Asks the live workers with this name (or id) to drain; they are told
  // with their next heartbeat (drain_asked). Kept in memory only: a drain
  // is a command, not state. Returns how many were asked.
  int ask_drain(const std::string& name_or_id);
  bool drain_asked(const std::string& worker_id);
  // Requeues (or fails, past the limit) jobs whose lease expired; returns
  // how many. Called periodically by the reaper.
  int reap_expired();
  // Wakes every long-poll and makes further ones return at once.
  void shutdown();

  // ---- blob metadata (the bytes live in BlobStore)
  void record_blob(const std::string& sha256, int64_t size, const std::string& media_type);
  bool has_blob(const std::string& sha256);
  // Registers name -> blob (models, datasets); a later upload replaces it.
  void name_blob(const std::string& name, const std::string& sha256);
  std::optional<v1::Artifact> named_blob(const std::string& name);
  std::vector<v1::Artifact> list_named(const std::string& prefix);

 private:
  Store(std::unique_ptr<Db> db, StoreOptions opts);
  void migrate();

  // Helpers run inside a transaction, with mu_ held.
  std::vector<int64_t> pick(const std::string& worker_id, const std::string& kinds_json,
                            const std::vector<std::string>& loaded, int max_jobs, int64_t mem_bytes, int64_t now);
  // Judges `canaries`, merges them into the worker's stored ones (latest
  // per precision) and returns the quarantine reason ("" = all pass).
  std::string judge_canaries(const std::string& worker_id, const std::vector<v1::Canary>& canaries);
  // Quarantines a worker and releases its leases; returns jobs released.
  int quarantine_locked(const std::string& worker_id, const std::string& why, int64_t now);
  void release_dependents(int64_t job_id);
  void fail_dependents(int64_t job_id, const std::string& job_name, int64_t now);
  void finish_if_complete(int64_t experiment_id, int64_t now);
  // Throws NotFound unless the experiment exists (caller holds mu_).
  void require_experiment(int64_t experiment_id);
  void event(int64_t job_id, int64_t now, const char* event, const std::string& detail);
  int64_t backoff_ms(int attempt) const;
  v1::ExperimentStatus status_locked(int64_t id);
  std::set<std::string> drain_asked_;  // worker ids told to drain at their next heartbeat (memory only)
  void failure_summary_locked(int64_t id, v1::ExperimentStatus& s);
  v1::JobSummary summary_locked(int64_t job_id);
  std::string new_id(int bytes) const;

  StoreOptions opts_;
  std::unique_ptr<Db> db_;
  std::mutex mu_;
  std::condition_variable work_;  // notified when jobs may have become leasable
  bool stopping_ = false;
};

}  // namespace spt::server
