#pragma once
// The coordinator's Prometheus metrics (spt-server --metrics-listen).
//
// RPC counts by method and status code and RPC latency histograms are
// recorded by a gRPC server interceptor: in memory, lock-free, nothing per
// RPC touches the store. Lease latency includes the long-poll wait (an idle
// pool's Lease takes its wait_ms). Store-derived gauges are read at scrape
// time: jobs by state through a second, read-only SQLite connection (WAL:
// it never takes the store's lock nor blocks its writer; counting 10^6 jobs
// takes a fraction of a second), live/quarantined workers from
// Store::workers(). They are cached for max(1 s, 10x the time counting
// took), so frequent scrapes cannot load the coordinator.
//
// Ownership: Server owns one ServerMetrics, which must outlive the gRPC
// server it is installed in. Thread-safe.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <grpcpp/support/server_interceptor.h>

#include "spt/metrics.h"
#include "sqlite.h"
#include "store.h"

namespace spt::server {

class ServerMetrics {
 public:
  // db_path: the store's SQLite file, opened again read-only on first scrape.
  ServerMetrics(Store& store, std::string db_path);
  ~ServerMetrics();

  // For ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> interceptor_factory();
  // `method` is the full path, e.g. "/spt.v1.WorkerService/Lease".
  void observe_rpc(const char* method, grpc::StatusCode code, double seconds);
  // The exposition text for GET /metrics.
  std::string render();

 private:
  struct Method;
  Store& store_;
  const std::string db_path_;
  std::unique_ptr<Db> db_;  // read-only; guarded by cache_mu_
  // Built once in the constructor (every spt.v1 and health method), then
  // only read: lookups need no lock.
  std::unordered_map<std::string, std::unique_ptr<Method>> methods_;
  std::unique_ptr<Method> other_;
  std::map<std::string, int64_t> job_state_counts();  // cache_mu_ held

  std::mutex cache_mu_;  // the store-derived part, re-read at most once a second
  double cached_at_ = -1, cache_for_s_ = 1;
  std::string cached_;
};

}  // namespace spt::server
