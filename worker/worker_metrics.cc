#include "worker_metrics.h"

#include <filesystem>

#include "capabilities.h"
#include "spt/metrics.h"
#include "spt/util.h"
#include "spt/version.h"

namespace spt::worker {

int64_t folder_bytes(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int64_t total = 0;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2)) {
      const auto n = it->file_size(e2);
      if (!e2) total += static_cast<int64_t>(n);
    }
  }
  return total;
}

WorkerMetrics::WorkerMetrics(const Worker& w, const ExecutorRegistry& reg, const Options& opt)
    : w_(w), reg_(reg), opt_(opt),
      memory_bytes_(opt.memory_bytes > 0 ? opt.memory_bytes : default_memory_bytes(opt.device)) {}

std::string WorkerMetrics::render() {
  const Worker::Stats s = w_.stats();
  const auto models = reg_.loaded_models();
  metrics::Exposition e;
  e.family("spt_worker_info", "gauge", "this worker; the value is always 1");
  e.sample("spt_worker_info",
           {{"name", opt_.name}, {"worker_id", s.worker_id}, {"device", opt_.device}, {"version", SPT_CODE_VERSION}},
           1);
  e.family("spt_worker_jobs_total", "counter",
           "job outcomes queued for report, by outcome (rate() of the sum is jobs/s)");
  e.sample("spt_worker_jobs_total", {{"outcome", "ok"}}, static_cast<double>(s.jobs_ok));
  e.sample("spt_worker_jobs_total", {{"outcome", "failed"}}, static_cast<double>(s.jobs_failed));
  e.family("spt_worker_results_total", "counter", "results the coordinator answered, by verdict");
  e.sample("spt_worker_results_total", {{"verdict", "accepted"}}, static_cast<double>(s.results_accepted));
  e.sample("spt_worker_results_total", {{"verdict", "refused"}}, static_cast<double>(s.results_refused));
  e.family("spt_worker_leases_lost_total", "counter", "leases the coordinator said were lost");
  e.sample("spt_worker_leases_lost_total", static_cast<double>(s.leases_lost));
  e.family("spt_worker_leases", "gauge", "leases held (queued, running, or finished and not yet reported)");
  e.sample("spt_worker_leases", static_cast<double>(s.leases_held));
  e.family("spt_worker_jobs", "gauge", "jobs by state on this worker");
  e.sample("spt_worker_jobs", {{"state", "running"}}, static_cast<double>(s.jobs_running));
  e.sample("spt_worker_jobs", {{"state", "queued"}}, static_cast<double>(s.jobs_queued));
  e.family("spt_worker_quarantined", "gauge", "1 while the coordinator quarantines this worker (failed canary)");
  e.sample("spt_worker_quarantined", s.quarantined.empty() ? 0 : 1);
  e.family("spt_worker_draining", "gauge", "1 once a drain has begun");
  e.sample("spt_worker_draining", s.draining ? 1 : 0);
  e.family("spt_worker_memory_bytes", "gauge", "memory this worker offers to hold on its device");
  e.sample("spt_worker_memory_bytes", {{"device", opt_.device}}, static_cast<double>(memory_bytes_));
  e.family("process_resident_memory_bytes", "gauge", "resident set size of spt-worker");
  e.sample("process_resident_memory_bytes", static_cast<double>(metrics::process_rss_bytes()));
  e.family("spt_worker_models_loaded", "gauge", "models resident in the executors' caches");
  e.sample("spt_worker_models_loaded", static_cast<double>(models.size()));
  e.family("spt_worker_model_loaded", "gauge", "one series per resident model; the value is always 1");
  for (const auto& m : models) e.sample("spt_worker_model_loaded", {{"model", m}}, 1);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (cache_walked_at_ < 0 || monotonic_s() - cache_walked_at_ >= 10) {
      cache_bytes_ = folder_bytes(opt_.cache_dir);
      cache_walked_at_ = monotonic_s();
    }
    e.family("spt_worker_cache_bytes", "gauge", "bytes in the on-disk model/dataset cache (walked at most every 10 s)");
    e.sample("spt_worker_cache_bytes", static_cast<double>(cache_bytes_));
  }
  return e.text();
}

}  // namespace spt::worker
