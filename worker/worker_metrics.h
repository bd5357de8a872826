#pragma once
// spt-worker's Prometheus metrics (--metrics-listen): job outcomes (rate()
// the counter for jobs/s), leases held, running and queued jobs, device and
// offered memory, process RSS, the model cache (models resident in the
// executors, bytes in the on-disk cache). Rendered at scrape time from
// Worker::stats(); the cache folder is walked at most every 10 s.
// Ownership: borrows the worker, registry and options, which must outlive
// it. Thread-safe (render() is called on the metrics endpoint's thread).
#include <mutex>
#include <string>

#include "spt/job.h"
#include "worker.h"

namespace spt::worker {

class WorkerMetrics {
 public:
  WorkerMetrics(const Worker& w, const ExecutorRegistry& reg, const Options& opt);
  std::string render();

 private:
  const Worker& w_;
  const ExecutorRegistry& reg_;
  const Options& opt_;
  int64_t memory_bytes_;  // what it offers (--memory, else the device's)
  std::mutex mu_;
  double cache_walked_at_ = -1;
  int64_t cache_bytes_ = 0;
};

// Bytes in regular files under `dir` (0 if absent); unreadable entries are skipped.
int64_t folder_bytes(const std::string& dir);

}  // namespace spt::worker
