#include "metrics.h"

#include <google/protobuf/descriptor.h>

#include <array>
#include <atomic>
#include <chrono>

#include "spt/version.h"

namespace spt::server {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED
const char* const kCodeNames[kCodes] = {
    "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED",    "INTERNAL",          "UNAVAILABLE",      "DATA_LOSS",         "UNAUTHENTICATED"};
const char* const kJobStates[] = {"blocked", "pending", "leased", "done", "failed", "cancelled"};

}  // namespace

struct ServerMetrics::Method {
  std::string service, name;
  std::array<std::atomic<uint64_t>, kCodes> codes{};
  metrics::Histogram latency{metrics::latency_buckets()};
};

namespace {

// Times one RPC: from the interceptor's creation (the call arrived) to the
// status being sent.
class RpcTimer final : public grpc::experimental::Interceptor {
 public:
  RpcTimer(ServerMetrics& m, const char* method) : m_(m), method_(method), start_(now_s()) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* b) override {
    if (b->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS))
      m_.observe_rpc(method_, b->GetSendStatus().error_code(), now_s() - start_);
    b->Proceed();
  }

 private:
  ServerMetrics& m_;
  const char* method_;
  double start_;
};

class RpcTimerFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcTimerFactory(ServerMetrics& m) : m_(m) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new RpcTimer(m_, info->method());
  }

 private:
  ServerMetrics& m_;
};

}  // namespace

ServerMetrics::ServerMetrics(Store& store, std::string db_path)
    : store_(store), db_path_(std::move(db_path)), other_(std::make_unique<Method>()) {
  other_->service = "other";
  other_->name = "other";
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* svc : {"spt.v1.WorkerService", "spt.v1.ControlService"}) {
    const auto* d = pool->FindServiceByName(svc);
    for (int i = 0; d && i < d->method_count(); ++i) {
      auto m = std::make_unique<Method>();
      m->service = svc;
      m->name = d->method(i)->name();
      methods_["/" + std::string(svc) + "/" + m->name] = std::move(m);
    }
  }
  for (const char* name : {"Check", "Watch"}) {
    auto m = std::make_unique<Method>();
    m->service = "grpc.health.v1.Health";
    m->name = name;
    methods_["/grpc.health.v1.Health/" + m->name] = std::move(m);
  }
}

ServerMetrics::~ServerMetrics() = default;

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ServerMetrics::interceptor_factory() {
  return std::make_unique<RpcTimerFactory>(*this);
}

void ServerMetrics::observe_rpc(const char* method, grpc::StatusCode code, double seconds) {
  auto it = method ? methods_.find(method) : methods_.end();
  Method& m = it == methods_.end() ? *other_ : *it->second;
  const int c = static_cast<int>(code);
  m.codes[c >= 0 && c < kCodes ? c : static_cast<int>(grpc::StatusCode::UNKNOWN)].fetch_add(1,
                                                                                          std::memory_order_relaxed);
  m.latency.observe(seconds);
}

std::map<std::string, int64_t> ServerMetrics::job_state_counts() {
  if (!db_) {
    db_ = std::make_unique<Db>(db_path_);
    db_->exec("PRAGMA query_only = 1; PRAGMA busy_timeout = 1000;");
  }
  std::map<std::string, int64_t> out;
  // One pass over the covering index (not the rows, which hold results).
  Query q(*db_, "SELECT state, COUNT(*) FROM jobs INDEXED BY jobs_by_experiment GROUP BY state");
  while (q.step()) out[q.text(0)] = q.i64(1);
  return out;
}

std::string ServerMetrics::render() {
  metrics::Exposition e;
  e.family("spt_build_info", "gauge", "spt-server build; the value is always 1");
  e.sample("spt_build_info", {{"version", SPT_CODE_VERSION}}, 1);
  e.family("process_resident_memory_bytes", "gauge", "resident set size of spt-server");
  e.sample("process_resident_memory_bytes", static_cast<double>(metrics::process_rss_bytes()));

  std::vector<const Method*> all;
  for (const auto& [path, m] : methods_) all.push_back(m.get());
  std::sort(all.begin(), all.end(), [](const Method* a, const Method* b) {
    return std::tie(a->service, a->name) < std::tie(b->service, b->name);
  });
  all.push_back(other_.get());

  e.family("spt_rpcs_total", "counter", "RPCs answered, by service, method and gRPC status code");
  for (const Method* m : all)
    for (int c = 0; c < kCodes; ++c)
      if (const uint64_t n = m->codes[c].load(std::memory_order_relaxed))
        e.sample("spt_rpcs_total", {{"service", m->service}, {"method", m->name}, {"code", kCodeNames[c]}},
                 static_cast<double>(n));
  e.family("spt_rpc_duration_seconds", "histogram",
           "RPC latency from arrival to status, by method (Lease includes its long-poll wait)");
  for (const Method* m : all)
    if (m->latency.count()) m->latency.render(e, "spt_rpc_duration_seconds", {{"service", m->service}, {"method", m->name}});
  uint64_t submissions = 0;
  if (auto it = methods_.find("/spt.v1.ControlService/Submit"); it != methods_.end())
    submissions = it->second->codes[0].load(std::memory_order_relaxed);
  e.family("spt_submissions_total", "counter", "experiments submitted (Submit RPCs answered OK)");
  e.sample("spt_submissions_total", static_cast<double>(submissions));

  std::lock_guard<std::mutex> lk(cache_mu_);
  if (cached_at_ < 0 || now_s() - cached_at_ >= cache_for_s_) {
    const double t0 = now_s();
    metrics::Exposition s;
    const auto counts = job_state_counts();
    s.family("spt_jobs", "gauge", "jobs in the store by state (every experiment)");
    for (const char* st : kJobStates) {
      auto it = counts.find(st);
      s.sample("spt_jobs", {{"state", st}}, it == counts.end() ? 0.0 : static_cast<double>(it->second));
    }
    int live = 0, quarantined = 0, listed = 0;
    for (const auto& w : store_.workers()) {
      ++listed;
      live += w.alive();
      quarantined += w.alive() && !w.quarantined().empty();
    }
    s.family("spt_workers", "gauge",
             "workers by state: live (heartbeat within 3 intervals), quarantined (live, failed a canary), "
             "listed (seen within the hour or holding leases)");
    s.sample("spt_workers", {{"state", "live"}}, live);
    s.sample("spt_workers", {{"state", "quarantined"}}, quarantined);
    s.sample("spt_workers", {{"state", "listed"}}, listed);
    cached_ = s.text();
    cached_at_ = now_s();
    cache_for_s_ = std::max(1.0, 10 * (cached_at_ - t0));
  }
  return e.text() + cached_;
}

}  // namespace spt::server
