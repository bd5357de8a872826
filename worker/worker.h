#pragma once
// spt-worker's daemon: registers with the coordinator, leases batches of
// jobs, runs them on the registered executors, and reports results.
//
// Contract with the coordinator (proto/spt/v1/spt.proto, WorkerService):
//  - At most one batch of leased-but-not-started jobs is held at a time, so a
//    worker never hoards work another could run; leases are long-polls.
//  - Leased jobs are grouped by kind and each group goes to its executor in
//    one run() call (executors may fuse); up to `slots` groups run at once.
//  - An exclusive job (Job.exclusive; the server leases it alone, only to a
//    worker holding nothing) is a group of its own that starts once no other
//    group runs; while it is queued, running or unreported the worker leases
//    nothing and starts nothing else, so its other slots stay idle.
//  - Every held lease (queued, running, or finished and not yet reported) is
//    renewed by each heartbeat, except while its result is in a Report in
//    flight (the report settles it either way). A lease the server says is lost is dropped:
//    its job is not started, or its group is told to stop once no job in it
//    is still wanted, and its result is never reported.
//  - Results are reported in batches (>= 64 results or 20 ms, whichever is
//    first; at most 1024 results or about 8 MiB). Artifacts are uploaded
//    before the result that names them. A result the server lists in
//    ReportResponse.problems was settled anyway (stored as its job's failure,
//    or refused): it is logged and dropped, never resent.
//  - A job whose inputs come as a blob (Job.inputs_sha256) has them fetched
//    (FetchBlob) before it is queued, and the local copy removed; a fetch
//    that fails fails the job (retryable).
//  - Timeouts bound progress: a group that reports nothing for a job's
//    timeout_s (the job's own, else Options::job_timeout_s) fails its
//    unfinished jobs with "timed out after S s" (retryable), so a sequential
//    executor gives each job the full timeout and a hung group is abandoned.
//  - When the server is unreachable every RPC loop backs off exponentially
//    (0.1 s doubling, capped at 5 s); finished results are kept and reported
//    after reconnecting; NOT_FOUND for our worker id means re-register.
//  - Identity: Register returns a worker secret; every RPC naming our
//    worker id (Lease, Heartbeat, Report, Release, Deregister) carries it,
//    and a re-registration replaces both. The token must have the worker
//    role (the server's worker token; its admin token also works).
//  - Memory: registers Options::memory_bytes, else what the device has
//    (capabilities.h); the server leases it only jobs whose planned memory
//    fits.
//  - Numerics canaries (spt/canary.h): run for each precision it offers
//    before registering (sent with Register) and every canary_every_s
//    (sent with the next heartbeat). On the CPU they run beside jobs; on a
//    GPU no new group starts while one runs and it waits for running groups
//    to end, because LibTorch's TF32 switches are process-global. The latest
//    verdict for a job's precision goes into every ok result as
//    provenance.canary. A worker the server quarantines keeps heartbeating
//    and gets no leases. Test switch: SPT_CANARY_PERTURB=<delta>[@<file>]
//    adds delta to every canary value (only while <file> exists).
//  - drain() (SIGTERM): stop leasing, hand back queued jobs, let running
//    groups finish until the drain deadline, then stop them and hand their
//    jobs back, flush results, and return 0 from run().
#include <memory>
#include <string>
#include <vector>

#include "client/connection.h"
#include "spt/job.h"

namespace spt::worker {

struct Options {
  std::string server = "127.0.0.1:7070";
  std::string token;              // "" = send no authorization
  std::string device = "cpu";     // cpu | cuda | cuda:N | mps
  int slots = 1;                  // groups run concurrently
  int threads = 1;                // ExecContext::threads
  int batch = 32;                 // max jobs per lease
  std::string name;               // human-readable; the server assigns the id
  std::string cache_dir;          // blobs and scratch space
  double job_timeout_s = 3600;    // default per-job timeout (0 = none)
  double drain_timeout_s = 60;    // how long running jobs may finish on drain
  int lease_wait_ms = 10000;      // long-poll duration
  std::vector<std::string> models;  // models it can load without fetching
  int64_t memory_bytes = 0;       // memory it registers; 0 = probe the device
  double canary_every_s = 3600;   // periodic canary; 0 = only at registration
  // TLS (issue 12): a CA file turns it on.
  spt::rpc::TlsOptions tls;
};

class Worker {
 public:
  // `reg` must outlive the worker.
  Worker(Options opt, ExecutorRegistry& reg);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs until drained. Returns the process exit status: 0 after a drain,
  // 2 if the server rejects the worker's credentials at registration.
  int run();

  // Begins the drain; thread-safe, idempotent, returns at once.
  void drain();

  // A snapshot for metrics (issue 12); thread-safe, takes the worker's lock briefly.
  struct Stats {
    std::string worker_id, quarantined;  // "" until registered / when not quarantined
    bool draining = false;
    int64_t jobs_ok = 0, jobs_failed = 0;  // outcomes of held leases (failures include timeouts)
    int64_t results_accepted = 0, results_refused = 0, leases_lost = 0;
    int64_t leases_held = 0, jobs_running = 0, jobs_queued = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spt::worker
