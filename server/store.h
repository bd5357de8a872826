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
//    Report, heartbeat renewal and release act only on leases whose owner
//    is the worker named in the request (the service has verified that
//    worker's secret): a worker cannot settle or keep another's lease.
//  - A worker holding an exclusive job's lease holds no other lease.
//  - attempts counts leases handed out (release() gives one back); a job is
//    leased at most max_attempts times.
//  - A job's content_key = sha256(code version, kind, model, canonical
//    params, sorted content keys of its deps, and "exclusive" if it is). The
//    params are the plan's shared params plus the job's own (plan::job_params);
//    shared params whose JSON exceeds kInlineSharedBytes enter instead as
//    their sha256, so a large tag is hashed once, not once per job (small
//    ones, all real plans' included, give exactly the key of the merged
//    params). Unless `force`, a submitted
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
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "spt/plan.h"
#include "spt/v1/spt.pb.h"

namespace spt::server {

class Db;
class Query;

struct StoreOptions {
  int64_t lease_ttl_ms = 15000;   // a lease not renewed within this is lost
  int64_t heartbeat_ms = 3000;    // advised to workers; alive = seen within 3x
  int max_attempts = 3;           // default for jobs whose plan says 0
  int64_t backoff_base_ms = 500;  // retry n waits base * 2^(n-1) ...
  int64_t backoff_cap_ms = 60000; // ... up to this
  std::function<int64_t()> clock; // unix ms; empty = wall clock (tests inject)
  // Report hardening and dying workers (issue 12):
  int64_t max_result_bytes = 4 << 20;        // a result_json above this fails its job (not the batch)
  int64_t inline_inputs_max_bytes = 1 << 20; // a job's inputs above this travel as a blob (service.cc)
  int deaths_before_memory_raise = 2;        // see reap_expired(); 0 = never raise
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
  // Stores a plan as a new experiment, in transactions of at most
  // kSubmitChunkJobs jobs / ~kSubmitChunkMs each, releasing the lock between
  // them so that leases, heartbeats and status wait at most one chunk. The
  // experiment is 'submitting' (its jobs held: none leasable or reusable)
  // until the last job is in; then 'running', and its ready jobs are
  // released to the queue, again in chunks. If `gone()` (may be empty)
  // turns true between chunks, the partial experiment's jobs are removed,
  // it is marked failed, and BadRequest is thrown; a coordinator that dies
  // mid-submission does the same when it next opens the store. cancel()
  // and retry() refuse a submitting experiment. The plan's shared params
  // are stored once, on the experiment; lease() and logs() give each job
  // shared + own.
  SubmitResult submit(const plan::Plan& plan, int priority, bool force, const std::function<bool()>& gone = {});
  static constexpr int kSubmitChunkJobs = 2000;
  static constexpr int kSubmitChunkMs = 20;
  static constexpr size_t kInlineSharedBytes = 1024;
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
  // with their next heartbeat (HeartbeatResponse.drain). Kept in memory only: a drain
  // is a command, not state. Returns how many were asked.
  int ask_drain(const std::string& name_or_id);
  // Worker identity (issue 12). register_worker() hands out a random secret
  // (RegisterResponse.worker_secret) and stores its sha256. This checks a
  // worker RPC's (id, secret) in constant time against an in-memory copy of
  // the digests, so the per-RPC check costs a hash, not a query (SQLite is
  // read only the first time an id is seen since open). kUnknown: no such
  // worker, or one registered before secrets existed (it must register
  // again). Thread-safe; takes mu_ only on a cache miss.
  enum class WorkerCheck { kOk, kUnknown, kMismatch };
  WorkerCheck check_worker_secret(const std::string& worker_id, const std::string& secret);
  // Requeues (or fails, past the limit) jobs whose lease expired; returns
  // how many. Called periodically by the reaper. Dying workers (issue 12):
  // a lease lapses as a *death* when its worker has been silent for over
  // two heartbeats and its last heartbeat listed the job as running; the
  // job's error and an event then name the worker and its memory, and its
  // final failure says how often workers died running it. Once a job has
  // killed deaths_before_memory_raise workers its mem_bytes is raised above
  // the largest of them (one death proves little: spot preemption, an
  // operator's kill), so only a bigger worker gets it, and unschedulable()
  // says why when none is live. A worker that registers again under the
  // same name on the same host (a restart) lapses its old leases at once,
  // the same way. Leases of a worker whose heartbeat or report arrived
  // before they expired but still waits for the store's lock are spared:
  // that renewal was delayed by the server, not the worker.
  int reap_expired();
  // Test hook: runs `first` holding the store's lock, then reaps in the
  // same critical section, so that a heartbeat waiting meanwhile comes
  // after the reaper (the order that once lost leases).
  int reap_expired_after(const std::function<void()>& first);
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
  // Chunked submissions (issue 12): on open, drops experiments left
  // 'submitting' by a coordinator that stopped, and releases held jobs of
  // running ones (a stop between the last chunk and their release).
  void recover_submissions();
  // Removes an unfinished submission's jobs (deps, events, artifacts with
  // them) in chunks, newest first, and marks it failed with `why`. Takes mu_.
  void drop_submission(int64_t experiment_id, const std::string& why);
  // Moves the experiment's held jobs (blocked, n_deps_left = 0) to pending,
  // in chunks. Takes mu_.
  void release_held(int64_t experiment_id);
  // Shared params of an experiment as the inside of a JSON object ("" = none),
  // cached: lease() merges them into each job's params (caller holds mu_).
  const std::string& shared_inner_locked(int64_t experiment_id);
  std::unordered_map<int64_t, std::string> shared_inner_;  // by experiment id
  // Experiments submit() is storing: jobs stored so far and how many of them
  // were answered from stored results. Status reads these instead of
  // counting rows that are all held anyway (mu_).
  std::unordered_map<int64_t, std::pair<int64_t, int64_t>> submitting_;

  // Helpers run inside a transaction, with mu_ held.
  std::vector<int64_t> pick(const std::string& worker_id, const std::string& kinds_json,
                            const std::vector<std::string>& loaded, int max_jobs, int64_t mem_bytes, int64_t now);
  // Judges `canaries`, merges them into the worker's stored ones (latest
  // per precision) and returns the quarantine reason ("" = all pass).
  std::string judge_canaries(const std::string& worker_id, const std::vector<v1::Canary>& canaries);
  // Quarantines a worker and releases its leases; returns jobs released.
  int quarantine_locked(const std::string& worker_id, const std::string& why, int64_t now);
  // Gives back every lease the worker holds (attempt returned, job pending),
  // with a "released" event of event_text each; returns jobs released.
  int release_all_locked(const std::string& worker_id, const std::string& event_text, int64_t now);
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
  // ---- report hardening and dying workers (issue 12)
  // The body of report(), inside the caller's transaction; true: wake leasers.
  bool report_locked(const v1::ReportRequest& req, int64_t now, v1::ReportResponse& resp);
  struct Lapsed;  // a lease ended by expiry or its worker's restart
  std::vector<Lapsed> select_lapsed_locked(const std::string& where, const std::function<void(Query&)>& bind);
  void lapse_locked(const Lapsed& e, bool died, const std::string& cause, int64_t now, std::set<int64_t>& touched);
  int reap_locked(int64_t now);
  // A worker registering as `name` on `host`: lapses the leases of earlier
  // workers of that name and host (their process is gone); returns how many.
  // Never for an empty host (a name alone may be shared).
  int lapse_restarted_locked(const std::string& name, const std::string& host, int64_t now);
  // What each worker's last heartbeat said it was running (memory only, mu_).
  std::unordered_map<std::string, std::set<int64_t>> running_;
  // Heartbeats and reports in flight (arrived, waiting for mu_): worker id ->
  // arrival (unix ms). Own mutex, never held while taking mu_.
  class InFlight;
  std::mutex inflight_mu_;
  std::multimap<std::string, int64_t> inflight_;

  StoreOptions opts_;
  std::unique_ptr<Db> db_;
  std::mutex mu_;
  // worker id -> sha256 hex of its secret. Lock order: mu_ before secrets_mu_.
  std::shared_mutex secrets_mu_;
  std::unordered_map<std::string, std::string> secrets_;
  std::condition_variable work_;  // notified when jobs may have become leasable
  bool stopping_ = false;
};

}  // namespace spt::server
