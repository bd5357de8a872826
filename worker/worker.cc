#include "worker.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "blob_cache.h"
#include "capabilities.h"
#include "client/connection.h"
#include "spt/canary.h"
#include "spt/util.h"

namespace spt::worker {

namespace {

using std::chrono::duration;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kFlushCount = 64;         // report as soon as this many results wait
constexpr auto kFlushDelay = std::chrono::milliseconds(20);  // ... or this long after the first
constexpr size_t kMaxReportBatch = 1024;   // keeps a Report far below the message cap
constexpr size_t kMaxReportBytes = 8 << 20;  // ... and so does this, for large results
constexpr double kRpcTimeoutS = 30;
constexpr double kReleaseTimeoutS = 5;
constexpr double kRegisterTimeoutS = 5;    // short, so an absent server is reported soon
constexpr double kBackoffMinS = 0.1, kBackoffMaxS = 5.0;
constexpr double kExecGraceS = 2;          // after the drain deadline, for executors to return
constexpr double kFlushTimeoutS = 30;      // drain: time to report finished results
constexpr double kStatsEveryS = 60;

// Exponential backoff between failed RPCs: 0.1 s doubling up to 5 s.
class Backoff {
 public:
  double next() {
    const double d = s_;
    s_ = std::min(s_ * 2, kBackoffMaxS);
    return d;
  }
  void reset() { s_ = kBackoffMinS; }

 private:
  double s_ = kBackoffMinS;
};

// Leased jobs of one kind handed to one executor in one run() call.
// Guarded by Impl::mu except `stop`, which executors poll lock-free.
struct Group {
  Executor* exec = nullptr;
  std::vector<JobSpec> specs;
  std::vector<std::string> lease;
  std::vector<double> timeout_s;  // 0 = none
  std::vector<char> answered;     // outcome known, or job lost/handed back
  size_t n_answered = 0;
  bool started = false;
  bool exclusive = false;         // one exclusive job, run with nothing beside it
  double progress_s = 0;          // start, or the latest outcome from the executor
  std::atomic<bool> stop{false};  // every job is answered: nothing left worth doing

  bool all_answered() const { return n_answered == specs.size(); }
};

// A lease this worker answers for until its result is reported (accepted or
// refused) or the server says it is lost. `group` is null for jobs failed
// on arrival.
struct Held {
  std::shared_ptr<Group> group;
  size_t index = 0;
  bool in_report = false;  // its result is in a Report in flight: not heartbeated,
                           // so the answer cannot race a renewal of a finished lease
};

struct Pending {
  v1::JobResult r;
  std::vector<OutputFile> files;  // to upload before reporting
  bool rejected_once = false;     // the server refused the result itself once
};

bool is_transient(grpc::StatusCode c) {
  return c == grpc::UNAVAILABLE || c == grpc::DEADLINE_EXCEEDED || c == grpc::ABORTED || c == grpc::INTERNAL ||
         c == grpc::UNKNOWN || c == grpc::CANCELLED;
}

// SPT_CANARY_PERTURB=<delta>[@<file>] (tests only): the delta to add to a
// canary value now; 0 when unset, or while <file> does not exist.
double canary_perturbation() {
  const char* e = std::getenv("SPT_CANARY_PERTURB");
  if (!e || !*e) return 0;
  const std::string v = e;
  const auto at = v.find('@');
  if (at != std::string::npos && !std::filesystem::exists(v.substr(at + 1))) return 0;
  try {
    return std::stod(v.substr(0, at));
  } catch (const std::exception&) {
    return 0;
  }
}

nlohmann::json canary_provenance(const v1::Canary& c) {
  return {{"unit", c.unit()},           {"precision", c.precision()}, {"value", c.value()},
          {"reference", c.reference()}, {"abs_diff", c.abs_diff()},   {"tolerance", c.tolerance()},
          {"pass", c.pass()},           {"unix_ms", c.unix_ms()},     {"device", c.device()},
          {"error", c.error()}};
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A canary's provenance, kept as an object (the rare fallback) and as its
// dump, which is spliced into every ok result's dump instead of copying and
// re-serialising the object per result.
struct CanaryProv {
  nlohmann::json json;
  std::string text;
};

// Placeholder for the splice: a string no executor writes (control bytes).
// dump_json writes it as "\u0001spt-canary\u0001"; any match of that text
// in a dump is a string token holding exactly the placeholder, since a quote
// inside a string is escaped.
const char kCanarySlot[] = "\x01spt-canary\x01";
const char kCanarySlotDumped[] = "\"\\u0001spt-canary\\u0001\"";

// dump_json(result) with result.provenance.canary = the canary, as the
// plain way would write it. `result` must be an object.
std::string dump_with_canary(nlohmann::json& result, const CanaryProv& c) {
  auto& prov = result["provenance"];
  if (prov.is_null()) prov = nlohmann::json::object();
  if (!prov.is_object()) return dump_json(result);  // nowhere to put it
  prov["canary"] = kCanarySlot;
  std::string out = dump_json(result);
  const size_t n = sizeof kCanarySlotDumped - 1;
  const size_t at = out.find(kCanarySlotDumped);
  if (at != std::string::npos && out.find(kCanarySlotDumped, at + n) == std::string::npos) {
    out.replace(at, n, c.text);
    return out;
  }
  prov["canary"] = c.json;  // the executor wrote the placeholder itself
  return dump_json(result);
}

}  // namespace

struct Worker::Impl {
  Impl(Options o, ExecutorRegistry& r) : opt(std::move(o)), reg(r) {}

  const Options opt;
  ExecutorRegistry& reg;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::WorkerService::Stub> stub;
  std::unique_ptr<BlobCache> blobs;
  ExecContext base_ctx;

  std::mutex reg_mu;  // serialises re-registration
  std::mutex mu;      // everything below
  std::condition_variable cv_work, cv_lease, cv_results, cv_drain, cv_wake;
  std::string worker_id;
  std::string worker_secret;  // proves worker_id: sent with every RPC naming it (RegisterResponse.worker_secret)
  int heartbeat_ms = 2000;
  std::unordered_map<std::string, Held> held;  // by lease id
  std::deque<std::shared_ptr<Group>> queue;     // leased, not started
  size_t queued_jobs = 0;
  std::set<std::shared_ptr<Group>> running;
  std::deque<Pending> results;                  // finished, not yet reported
  SteadyClock::time_point first_result_at;
  bool reporting = false;                       // a Report is in flight
  grpc::ClientContext* lease_ctx = nullptr;     // the long-poll in flight
  bool draining = false, exec_shutdown = false, reporter_shutdown = false, monitor_shutdown = false;
  SteadyClock::time_point drain_deadline;
  int fatal = 0;
  int64_t n_reported = 0, n_refused = 0, n_lost = 0;
  int64_t n_ok = 0, n_failed = 0;  // outcomes queued for report (metrics, Worker::stats)
  // Contact with the server, so an outage logs once and every loop retries
  // as soon as any one of them gets through.
  bool unreachable = false;
  double unreachable_since = 0;
  int64_t contact_gen = 0;
  // Canaries: the latest judged run per precision (provenance, Register),
  // runs not yet sent in a heartbeat, and the hold that keeps new groups
  // from starting while a GPU canary waits or runs.
  std::map<std::string, v1::Canary> canary_latest;
  std::map<std::string, CanaryProv> canary_prov;  // canary_latest as provenance, built once per run
  std::vector<v1::Canary> canary_unsent;
  bool canary_hold = false, canary_shutdown = false;
  std::string quarantined;  // as the server last said

  // ---- helpers (the _locked ones need mu held)

  // Sleeps up to `s` seconds; wakes early when `stop()` holds.
  template <typename Pred>
  void sleep_unless(double s, Pred stop) {
    std::unique_lock<std::mutex> lk(mu);
    cv_wake.wait_for(lk, duration<double>(s), stop);
  }

  // Sleeps up to `s` seconds after a failed RPC; wakes early on shutdown
  // (`stop()`) or when another loop has reached the server again.
  template <typename Pred>
  void backoff_sleep(double s, Pred stop) {
    std::unique_lock<std::mutex> lk(mu);
    const int64_t gen = contact_gen;
    cv_wake.wait_for(lk, duration<double>(s), [&] { return stop() || contact_gen != gen; });
  }

  // Bookkeeping for every RPC outcome: one warning when the server becomes
  // unreachable, one note when it is back.
  void contact(const char* what, const grpc::Status& s) {
    std::lock_guard<std::mutex> lk(mu);
    if (s.ok() || !is_transient(s.error_code())) {
      if (unreachable) {
        unreachable = false;
        ++contact_gen;
        cv_wake.notify_all();
        spdlog::info("server {} reachable again after {:.1f} s", opt.server, monotonic_s() - unreachable_since);
      }
      if (!s.ok()) spdlog::warn("{} failed: {}", what, rpc::status_text(s));
      return;
    }
    if (!unreachable) {
      unreachable = true;
      unreachable_since = monotonic_s();
      spdlog::warn("server {} unreachable ({} failed: {}); retrying with backoff up to {:.0f} s, keeping results",
                   opt.server, what, rpc::status_text(s), kBackoffMaxS);
    } else {
      spdlog::debug("{} failed: {}", what, rpc::status_text(s));
    }
  }

  std::atomic<bool> tls_diagnosed{false};  // a TLS mistake was logged

  // The id the server gave us and the secret that proves it, as sent with every RPC naming it.
  struct Identity {
    std::string id, secret;
  };
  Identity identity_locked() const { return {worker_id, worker_secret}; }
  Identity identity() {
    std::lock_guard<std::mutex> g(mu);
    return identity_locked();
  }

  // An exclusive job is queued, running, or not yet reported: lease nothing.
  bool exclusive_busy_locked() const {
    for (const auto& g : running)
      if (g->exclusive) return true;
    for (const auto& [lease, h] : held)
      if (h.group && h.group->exclusive) return true;
    return false;
  }
  // Whether `g` may start now: nothing starts beside a running exclusive
  // group, and an exclusive group starts only once no other group runs.
  bool may_start_locked(const Group& g) const {
    if (canary_hold) return false;
    if (g.exclusive && !running.empty()) return false;
    for (const auto& r : running)
      if (r->exclusive) return false;
    return true;
  }

  std::vector<v1::Canary> run_canaries();
  void canary_loop();
  void note_quarantine(const std::string& why);
  bool register_once(bool* retry);
  bool register_loop();
  void reregister(const std::string& stale);
  void lease_loop();
  void accept(v1::LeaseResponse& resp);
  void fetch_inputs(v1::Job& job);
  void exec_loop();
  void run_group(const std::shared_ptr<Group>& g);
  void answer_locked(Group& g, size_t i, Outcome o, bool progress);
  void push_result_locked(Pending p);
  void reporter_loop();
  void requeue_front_locked(std::vector<Pending>& batch);
  void monitor_loop();
  void heartbeat(Backoff& b, double* next_hb);
  void check_timeouts_locked();
  void release(const std::vector<std::string>& leases, const char* why);
  std::vector<std::string> hand_back_locked(Group& g);
  int run();
  void drain();
  void deregister();
};

// ---------------------------------------------------------------- registration

// One Register call. False with *retry set: try again later; false with
// *retry clear: the server refuses us for good (fatal is set).
bool Worker::Impl::register_once(bool* retry) {
  v1::RegisterRequest req;
  req.set_name(opt.name);
  *req.mutable_capabilities() =
      probe_capabilities(opt.device, opt.slots, opt.threads, opt.models, reg, opt.memory_bytes);
  {
    std::lock_guard<std::mutex> g(mu);
    for (const auto& [p, c] : canary_latest) *req.add_canaries() = c;
  }
  v1::RegisterResponse resp;
  grpc::ClientContext ctx;
  rpc::prepare(ctx, opt.token, kRegisterTimeoutS, true);
  const grpc::Status s = stub->Register(&ctx, req, &resp);
  *retry = false;
  if (s.ok() || is_transient(s.error_code())) contact("register", s);
  if (s.ok()) {
    {
      std::lock_guard<std::mutex> g(mu);
      worker_id = resp.worker_id();
      worker_secret = resp.worker_secret();
      if (resp.heartbeat_ms() > 0) heartbeat_ms = resp.heartbeat_ms();
      quarantined.clear();  // a new id starts unquarantined unless told otherwise
      spdlog::info("registered with {} as {} (worker id {}, lease ttl {} ms, heartbeat {} ms, {} kinds, {:.1f} GiB)",
                   opt.server, opt.name, worker_id, resp.lease_ttl_ms(), heartbeat_ms,
                   req.capabilities().job_kinds_size(), req.capabilities().memory_bytes() / double(1 << 30));
    }
    note_quarantine(resp.quarantined());
    return true;
  }
  const auto code = s.error_code();
  if (code == grpc::UNAUTHENTICATED || code == grpc::PERMISSION_DENIED || code == grpc::INVALID_ARGUMENT) {
    spdlog::error("server {} refused registration: {}{}", opt.server, rpc::status_text(s),
                  code == grpc::INVALID_ARGUMENT ? ""
                                                 : " (check --token-file / SPT_TOKEN: workers need the server's worker token, "
                                                   "<data-dir>/worker-token)");
    std::lock_guard<std::mutex> g(mu);
    fatal = 2;
    return false;
  }
  if (!is_transient(s.error_code())) spdlog::warn("cannot register with {}: {}", opt.server, rpc::status_text(s));
  // Name a TLS mistake once (gRPC reports it as unreachable); until one is
  // found each failed attempt probes again (the server may not be up yet).
  if ((code == grpc::UNAVAILABLE || code == grpc::DEADLINE_EXCEEDED) && !tls_diagnosed.load()) {
    if (const std::string why = rpc::diagnose_tls(opt.server, opt.tls); !why.empty()) {
      tls_diagnosed = true;
      spdlog::error("TLS: {} (retrying)", why);
    }
  }
  *retry = true;
  return false;
}

bool Worker::Impl::register_loop() {
  Backoff b;
  for (;;) {
    bool retry = false;
    if (register_once(&retry)) return true;
    if (!retry) return false;
    backoff_sleep(b.next(), [&] { return draining; });
    std::lock_guard<std::mutex> g(mu);
    if (draining) return false;
  }
}

// Logs a quarantine once, when the server first reports it.
void Worker::Impl::note_quarantine(const std::string& why) {
  std::lock_guard<std::mutex> g(mu);
  if (why.empty() || why == quarantined) return;
  quarantined = why;
  spdlog::error("the server quarantined this worker: {}; it will get no jobs until it registers again", why);
}

// Runs the canary unit once per precision this worker offers; each run is
// judged locally as the server will judge it (for provenance).
std::vector<v1::Canary> Worker::Impl::run_canaries() {
  std::vector<v1::Canary> out;
  if (!reg.hooks.canary) return out;
  std::set<std::string> precisions{"fp32"};
  for (const auto& p : reg.precisions()) precisions.insert(p);
  // This process's scratch: workers sharing a cache dir never read each
  // other's half-written canary model.
  const std::string dir = (std::filesystem::path(base_ctx.scratch_dir) / "canary").string();
  for (const auto& p : precisions) {
    v1::Canary c;
    c.set_unit(canary::kUnit);
    c.set_precision(p);
    try {
      const auto r = reg.hooks.canary(opt.device, p, dir, opt.threads);
      c.set_value(r.value + canary_perturbation());
      c.set_device(r.device);
    } catch (const std::exception& e) {
      c.set_error(e.what());
      c.set_device(opt.device);
    }
    c.set_unix_ms(now_unix_ms());
    const canary::Verdict v = canary::judge(c.unit(), c.precision(), c.value(), c.error());
    c.set_reference(v.reference);
    c.set_abs_diff(v.abs_diff);
    c.set_tolerance(v.tolerance);
    c.set_pass(v.pass);
    if (v.pass)
      spdlog::info("canary {} on {}: {:.6f} (reference {:.6f}, |diff| {:.2g} <= {:.2g})", p, c.device(), c.value(),
                   v.reference, v.abs_diff, v.tolerance);
    else
      spdlog::error("{}", v.why);
    out.push_back(std::move(c));
  }
  std::vector<CanaryProv> prov;
  for (const auto& c : out) {
    auto j = canary_provenance(c);
    std::string text = dump_json(j);
    prov.push_back(CanaryProv{std::move(j), std::move(text)});
  }
  std::lock_guard<std::mutex> g(mu);
  for (size_t i = 0; i < out.size(); ++i) {
    canary_latest[out[i].precision()] = out[i];
    canary_prov[out[i].precision()] = std::move(prov[i]);
  }
  return out;
}

// The periodic canary. On the CPU it runs beside jobs (TF32 switches change
// no CPU numbers); elsewhere it holds new groups back and waits for running
// ones to end, so no job computes while the switches are the canary's.
void Worker::Impl::canary_loop() {
  const bool beside_jobs = opt.device == "cpu";
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu);
      cv_wake.wait_for(lk, duration<double>(opt.canary_every_s), [&] { return canary_shutdown; });
      if (canary_shutdown) return;
      if (!beside_jobs) {
        canary_hold = true;
        cv_drain.wait(lk, [&] { return canary_shutdown || running.empty(); });
        if (canary_shutdown) {
          canary_hold = false;
          cv_work.notify_all();
          return;
        }
      }
    }
    auto runs = run_canaries();
    std::lock_guard<std::mutex> lk(mu);
    canary_hold = false;
    cv_work.notify_all();
    for (auto& c : runs) canary_unsent.push_back(std::move(c));
  }
}

// Called by a loop whose RPC under worker id `stale` got NOT_FOUND: the
// server has forgotten us (e.g. it expired the worker while unreachable).
void Worker::Impl::reregister(const std::string& stale) {
  std::lock_guard<std::mutex> serial(reg_mu);
  if (identity().id != stale) return;  // another loop already did it
  spdlog::warn("server does not know worker id {}; registering again", stale);
  if (!register_loop()) {
    bool refused;
    {
      std::lock_guard<std::mutex> g(mu);
      refused = fatal != 0;
    }
    if (refused) drain();  // nothing more can be reported; hand everything back
  }
}

// ---------------------------------------------------------------- leasing

void Worker::Impl::lease_loop() {
  Backoff b;
  const std::vector<std::string> no_models;
  for (;;) {
    Identity me;
    {
      std::unique_lock<std::mutex> lk(mu);
      // At most one batch waits for a slot; the rest stays with the server.
      // While an exclusive job is here the server would lease nothing more
      // (it holds the other slots back), so don't ask until it is reported.
      cv_lease.wait(lk, [&] { return draining || (queued_jobs == 0 && !exclusive_busy_locked()); });
      if (draining) return;
      me = identity_locked();
    }
    v1::LeaseRequest req;
    req.set_worker_id(me.id);
    req.set_worker_secret(me.secret);
    req.set_max_jobs(opt.batch);
    req.set_wait_ms(opt.lease_wait_ms);
    for (const auto& m : reg.loaded_models()) req.add_loaded_models(m);
    grpc::ClientContext ctx;
    rpc::prepare(ctx, opt.token, opt.lease_wait_ms / 1000.0 + kRpcTimeoutS, true);
    {
      std::lock_guard<std::mutex> g(mu);
      if (draining) return;
      lease_ctx = &ctx;
    }
    v1::LeaseResponse resp;
    const double t0 = monotonic_s();
    const grpc::Status s = stub->Lease(&ctx, req, &resp);
    {
      std::lock_guard<std::mutex> g(mu);
      lease_ctx = nullptr;
    }
    if (!s.ok()) {
      if (s.error_code() == grpc::CANCELLED) {
        std::lock_guard<std::mutex> g(mu);
        if (draining) return;
      }
      if (s.error_code() == grpc::NOT_FOUND) {
        reregister(me.id);
        continue;
      }
      contact("lease", s);
      backoff_sleep(b.next(), [&] { return draining; });
      continue;
    }
    contact("lease", s);
    b.reset();
    if (resp.jobs_size() == 0) {
      // A server that answers an empty long-poll at once must not make us spin.
      if (monotonic_s() - t0 < 0.1) sleep_unless(0.2, [&] { return draining; });
      continue;
    }
    accept(resp);
  }
}

// Fills job.inputs from the blob job.inputs_sha256 names (a serialised
// JobInputs), then drops the local copy: it serves this lease only.
void Worker::Impl::fetch_inputs(v1::Job& job) {
  const std::string path = blobs->fetch(job.inputs_sha256());
  const std::string bytes = read_file(path);
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(path).parent_path(), ec);
  v1::JobInputs all;
  if (!all.ParseFromString(bytes)) throw std::runtime_error("the blob is not a serialised JobInputs");
  job.mutable_inputs()->Swap(all.mutable_inputs());
  spdlog::debug("job {}: {} inputs ({} bytes) fetched as a blob", job.job_id(), job.inputs_size(), bytes.size());
}

// Turns leased jobs into groups (by kind) and queues them; jobs that cannot
// run here fail at once.
void Worker::Impl::accept(v1::LeaseResponse& resp) {
  std::map<std::string, std::shared_ptr<Group>> by_kind;
  std::vector<Pending> failed;
  auto fail_now = [&](const v1::Job& job, std::string why, bool retryable) {
    Pending p;
    p.r.set_job_id(job.job_id());
    p.r.set_lease_id(job.lease_id());
    p.r.set_error(std::move(why));
    p.r.set_retryable(retryable);
    failed.push_back(std::move(p));
  };
  for (auto& job : *resp.mutable_jobs()) {
    Executor* ex = reg.find(job.kind());
    if (!ex) {  // the server filters by our kinds, so this is a version skew
      fail_now(job, "worker " + opt.name + " has no executor for kind '" + job.kind() + "'", true);
      continue;
    }
    JobSpec spec;
    spec.id = job.job_id();
    spec.experiment = job.experiment();
    spec.name = job.name();
    spec.kind = job.kind();
    spec.model = job.model();
    spec.attempt = job.attempt();
    if (!job.inputs_sha256().empty()) {
      // Inputs too big for the lease come as one blob (issue 12).
      try {
        fetch_inputs(job);
      } catch (const std::exception& e) {
        fail_now(job, std::string("cannot fetch this job's inputs (blob ") + job.inputs_sha256() + "): " + e.what(),
                 true);
        continue;
      }
    }
    try {
      spec.params = job.params_json().empty() ? nlohmann::json::object() : nlohmann::json::parse(job.params_json());
      for (const auto& in : job.inputs())
        spec.inputs.push_back({in.name(), in.kind(),
                               in.result_json().empty() ? nlohmann::json() : nlohmann::json::parse(in.result_json())});
    } catch (const std::exception& e) {
      fail_now(job, std::string("malformed params or input JSON: ") + e.what(), false);
      continue;
    }
    // An exclusive job (the server leases it alone) is a group of its own.
    auto& g = by_kind[job.exclusive() ? "\x01exclusive/" + std::to_string(job.job_id()) : job.kind()];
    if (!g) {
      g = std::make_shared<Group>();
      g->exec = ex;
      g->exclusive = job.exclusive();
    }
    g->specs.push_back(std::move(spec));
    g->lease.push_back(job.lease_id());
    g->timeout_s.push_back(job.timeout_s() > 0 ? job.timeout_s() : opt.job_timeout_s);
    g->answered.push_back(0);
  }
  std::lock_guard<std::mutex> lk(mu);
  for (auto& p : failed) {
    held[p.r.lease_id()] = Held{};
    push_result_locked(std::move(p));
  }
  for (auto& [kind, g] : by_kind) {
    for (size_t i = 0; i < g->specs.size(); ++i) held[g->lease[i]] = Held{g, i};
    queued_jobs += g->specs.size();
    queue.push_back(g);
  }
  cv_work.notify_all();
}

// ---------------------------------------------------------------- execution

void Worker::Impl::exec_loop() {
  for (;;) {
    std::shared_ptr<Group> g;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv_work.wait(lk, [&] { return exec_shutdown || (!queue.empty() && may_start_locked(*queue.front())); });
      if (queue.empty()) return;
      g = std::move(queue.front());
      queue.pop_front();
      queued_jobs -= g->specs.size();
      cv_lease.notify_one();
      if (g->all_answered()) continue;  // every lease lost or handed back
      g->started = true;
      g->progress_s = monotonic_s();
      running.insert(g);
    }
    run_group(g);
    std::lock_guard<std::mutex> lk(mu);
    running.erase(g);
    cv_drain.notify_all();
    if (g->exclusive || !queue.empty()) cv_work.notify_all();  // may_start_locked
    if (g->exclusive) cv_lease.notify_all();
  }
}

void Worker::Impl::run_group(const std::shared_ptr<Group>& g) {
  // Jobs lost while queued are not handed to the executor.
  std::vector<size_t> idx;
  std::vector<JobSpec> subset;
  {
    std::lock_guard<std::mutex> lk(mu);
    if (g->n_answered > 0) {
      for (size_t i = 0; i < g->specs.size(); ++i)
        if (!g->answered[i]) {
          idx.push_back(i);
          subset.push_back(g->specs[i]);
        }
    }
  }
  const std::vector<JobSpec>& specs = idx.empty() ? g->specs : subset;
  ExecContext ctx = base_ctx;
  ctx.should_stop = [g] { return g->stop.load(std::memory_order_relaxed); };
  auto done = [&](size_t k, Outcome o) {
    const size_t i = idx.empty() ? k : (k < idx.size() ? idx[k] : g->specs.size());
    if (i >= g->specs.size()) {
      spdlog::error("executor for {} reported job index {} of a batch of {}", g->specs[0].kind, k, specs.size());
      return;
    }
    std::lock_guard<std::mutex> lk(mu);
    answer_locked(*g, i, std::move(o), true);
  };
  std::string crash;
  try {
    g->exec->run(specs, ctx, done);
  } catch (const std::exception& e) {
    crash = std::string("executor failed: ") + e.what();
  } catch (...) {
    crash = "executor failed with a non-standard exception";
  }
  std::lock_guard<std::mutex> lk(mu);
  if (!g->all_answered()) {
    const std::string why = crash.empty() ? "executor returned without an outcome for this job" : crash;
    spdlog::warn("{} ({} jobs of kind {})", why, g->specs.size() - g->n_answered, g->specs[0].kind);
    for (size_t i = 0; i < g->specs.size(); ++i)
      if (!g->answered[i]) answer_locked(*g, i, Outcome::failure(why, true), false);
  }
}

// Records job i's outcome (first one wins) and queues its result unless the
// lease is gone.
void Worker::Impl::answer_locked(Group& g, size_t i, Outcome o, bool progress) {
  if (g.answered[i]) return;  // late: timed out, lost, or handed back already
  g.answered[i] = 1;
  ++g.n_answered;
  const double now = monotonic_s();
  const double secs = now - g.progress_s;
  if (progress) g.progress_s = now;
  if (g.all_answered()) g.stop.store(true);
  if (!held.count(g.lease[i])) return;
  Pending p;
  p.r.set_job_id(g.specs[i].id);
  p.r.set_lease_id(g.lease[i]);
  p.r.set_ok(o.ok);
  if (o.ok) {
    // The device's numerics check travels with every result it produced.
    const auto& params = g.specs[i].params;
    const auto pp = params.is_object() ? params.find("precision") : params.end();
    const auto c = canary_prov.find(pp != params.end() && pp->is_string() ? pp->get<std::string>() : "fp32");
    if (c != canary_prov.end() && o.result.is_object())
      p.r.set_result_json(dump_with_canary(o.result, c->second));
    else
      p.r.set_result_json(dump_json(o.result));
  } else {
    p.r.set_error(o.error);
    p.r.set_retryable(o.retryable);
    spdlog::debug("job {} ({}) failed on attempt {}: {}", g.specs[i].name, g.specs[i].id, g.specs[i].attempt, o.error);
  }
  p.r.set_seconds(secs);
  p.files = std::move(o.files);
  push_result_locked(std::move(p));
}

void Worker::Impl::push_result_locked(Pending p) {
  ++(p.r.ok() ? n_ok : n_failed);
  if (results.empty()) first_result_at = SteadyClock::now();
  results.push_back(std::move(p));
  if (results.size() == 1 || results.size() == kFlushCount) cv_results.notify_one();
}

// ---------------------------------------------------------------- reporting

void Worker::Impl::requeue_front_locked(std::vector<Pending>& batch) {
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
    if (auto h = held.find(it->r.lease_id()); h != held.end()) h->second.in_report = false;
    results.push_front(std::move(*it));
  }
  first_result_at = SteadyClock::now();
}

void Worker::Impl::reporter_loop() {
  Backoff b;
  size_t single_left = 0;  // after a batch was rejected as invalid: report one by one
  for (;;) {
    std::vector<Pending> batch;
    Identity me;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv_results.wait(lk, [&] { return reporter_shutdown || !results.empty(); });
      if (reporter_shutdown) return;
      if (results.size() < kFlushCount)
        cv_results.wait_until(lk, first_result_at + kFlushDelay,
                              [&] { return reporter_shutdown || results.size() >= kFlushCount; });
      if (reporter_shutdown) return;
      const size_t n = single_left ? 1 : kMaxReportBatch;
      size_t bytes = 0;  // results up to the server's --max-result-bytes each: bound the batch by size too
      while (batch.size() < n && !results.empty() && bytes < kMaxReportBytes) {
        Pending p = std::move(results.front());
        results.pop_front();
        auto it = held.find(p.r.lease_id());
        if (it == held.end()) continue;  // lost: drop
        it->second.in_report = true;
        bytes += p.r.result_json().size() + p.r.log().size() + p.r.error().size();
        batch.push_back(std::move(p));
      }
      if (!results.empty()) first_result_at = SteadyClock::now();
      if (batch.empty()) {
        cv_drain.notify_all();
        continue;
      }
      reporting = true;
      me = identity_locked();
    }

    // Artifacts first: a reported result must only name uploaded blobs.
    bool upload_down = false;
    for (auto& p : batch) {
      while (!p.files.empty() && !upload_down) {
        const OutputFile& f = p.files.back();
        try {
          v1::Artifact a = rpc::put_blob(rpc::blob_writer(stub.get()), opt.token, f.path, f.name);
          a.set_name(f.name);
          if (!f.media_type.empty()) a.set_media_type(f.media_type);
          *p.r.add_artifacts() = std::move(a);
          p.files.pop_back();
        } catch (const rpc::RpcError& e) {
          if (is_transient(e.status().error_code())) {
            contact("artifact upload", e.status());
            upload_down = true;
          } else {
            p.r.set_ok(false);
            p.r.set_result_json("");
            p.r.set_error(std::string("artifact upload failed: ") + e.what());
            p.r.set_retryable(true);
            p.files.clear();
          }
        } catch (const std::exception& e) {
          p.r.set_ok(false);
          p.r.set_result_json("");
          p.r.set_error(std::string("artifact upload failed: ") + e.what());
          p.r.set_retryable(true);
          p.files.clear();
        }
      }
    }
    if (upload_down) {
      {
        std::lock_guard<std::mutex> lk(mu);
        requeue_front_locked(batch);
        reporting = false;
      }
      backoff_sleep(b.next(), [&] { return reporter_shutdown; });
      continue;
    }

    v1::ReportRequest req;
    req.set_worker_id(me.id);
    req.set_worker_secret(me.secret);
    for (const auto& p : batch) *req.add_results() = p.r;
    v1::ReportResponse resp;
    grpc::ClientContext ctx;
    rpc::prepare(ctx, opt.token, kRpcTimeoutS, true);
    const grpc::Status s = stub->Report(&ctx, req, &resp);
    const auto code = s.error_code();
    if (code != grpc::NOT_FOUND) contact("report", s);
    std::unique_lock<std::mutex> lk(mu);
    reporting = false;
    if (s.ok()) {
      for (const auto& p : batch) held.erase(p.r.lease_id());
      cv_lease.notify_all();  // exclusive_busy_locked
      n_reported += resp.accepted_size();
      n_refused += resp.refused_size();
      // Settled all the same (stored as the job's failure, or refused): the
      // results are dropped above, never resent.
      for (const auto& pr : resp.problems())
        spdlog::error("the server {} the result of job {}: {}",
                      pr.stored_as_failure() ? "stored as a failure" : "refused", pr.job_id(), pr.reason());
      if (resp.refused_size())
        spdlog::debug("server refused {} results (leases no longer current)", resp.refused_size());
      if (single_left) --single_left;
      b.reset();
      cv_drain.notify_all();
      continue;
    }
    if (code == grpc::NOT_FOUND) {
      requeue_front_locked(batch);
      lk.unlock();
      reregister(me.id);
      continue;
    }
    if (code == grpc::INVALID_ARGUMENT || code == grpc::RESOURCE_EXHAUSTED || code == grpc::FAILED_PRECONDITION ||
        code == grpc::OUT_OF_RANGE) {
      // The request itself is unacceptable: find the offending result and
      // replace it by a failure the server can store.
      if (batch.size() > 1) {
        single_left = batch.size();
      } else if (!batch[0].rejected_once) {
        Pending& p = batch[0];
        spdlog::error("server rejected the result of job {}: {}", p.r.job_id(), rpc::status_text(s));
        p.rejected_once = true;
        p.r.clear_result_json();
        p.r.clear_artifacts();
        p.r.set_ok(false);
        p.r.set_retryable(false);
        p.r.set_error("the server rejected this job's result: " + rpc::status_text(s));
      } else {
        spdlog::error("server rejected even a failure report for job {}: {}; giving it up", batch[0].r.job_id(),
                      rpc::status_text(s));
        held.erase(batch[0].r.lease_id());
        cv_lease.notify_all();
        if (single_left) --single_left;
        cv_drain.notify_all();
        continue;
      }
      requeue_front_locked(batch);
      continue;
    }
    requeue_front_locked(batch);
    lk.unlock();
    backoff_sleep(b.next(), [&] { return reporter_shutdown; });
  }
}

// ---------------------------------------------------------------- heartbeats, timeouts

void Worker::Impl::check_timeouts_locked() {
  const double now = monotonic_s();
  for (const auto& g : running)
    for (size_t i = 0; i < g->specs.size(); ++i)
      if (!g->answered[i] && g->timeout_s[i] > 0 && now - g->progress_s > g->timeout_s[i]) {
        char why[64];
        std::snprintf(why, sizeof why, "timed out after %g s", g->timeout_s[i]);
        spdlog::warn("job {} ({}) {}", g->specs[i].name, g->specs[i].id, why);
        answer_locked(*g, i, Outcome::failure(why, true), false);
      }
}

void Worker::Impl::heartbeat(Backoff& b, double* next_hb) {
  v1::HeartbeatRequest req;
  int hb_ms;
  {
    std::lock_guard<std::mutex> lk(mu);
    hb_ms = heartbeat_ms;
    const Identity me = identity_locked();
    req.set_worker_id(me.id);
    req.set_worker_secret(me.secret);
    for (const auto& [lease, h] : held)
      if (!h.in_report) req.add_lease_ids(lease);
    for (const auto& g : running)
      for (size_t i = 0; i < g->specs.size(); ++i)
        if (!g->answered[i]) req.add_running_job_ids(g->specs[i].id);
  }
  for (const auto& m : reg.loaded_models()) req.add_loaded_models(m);
  {
    std::lock_guard<std::mutex> lk(mu);
    for (auto& c : canary_unsent) *req.add_canaries() = std::move(c);
    canary_unsent.clear();
  }
  v1::HeartbeatResponse resp;
  grpc::ClientContext ctx;
  rpc::prepare(ctx, opt.token, std::max(1.0, hb_ms / 1000.0 * 2), true);
  const grpc::Status s = stub->Heartbeat(&ctx, req, &resp);
  if (!s.ok()) {
    {
      // Unsent canaries go with the next heartbeat (or registration).
      std::lock_guard<std::mutex> lk(mu);
      for (const auto& c : req.canaries()) canary_unsent.push_back(c);
    }
    if (s.error_code() == grpc::NOT_FOUND) {
      reregister(req.worker_id());
      *next_hb = monotonic_s();
      return;
    }
    contact("heartbeat", s);
    *next_hb = monotonic_s() + std::min(b.next(), hb_ms / 1000.0);
    return;
  }
  contact("heartbeat", s);
  b.reset();
  *next_hb = monotonic_s() + hb_ms / 1000.0;
  note_quarantine(resp.quarantined());
  if (resp.drain()) {
    bool first;
    {
      std::lock_guard<std::mutex> lk(mu);
      first = !draining;
    }
    if (first) spdlog::info("the coordinator asked this worker to drain");
    drain();
  }
  if (resp.lost_lease_ids_size() == 0) return;
  std::lock_guard<std::mutex> lk(mu);
  int n = 0;
  for (const auto& lease : resp.lost_lease_ids()) {
    auto it = held.find(lease);
    if (it == held.end()) continue;
    Held h = it->second;
    held.erase(it);
    ++n;
    if (h.group && !h.group->answered[h.index]) answer_locked(*h.group, h.index, Outcome::failure("lease lost"), false);
  }
  n_lost += n;
  if (n) cv_lease.notify_all();
  if (n) spdlog::warn("{} leases lost (the server gave the jobs to others); dropped their work", n);
}

void Worker::Impl::monitor_loop() {
  Backoff b;
  double next_hb = monotonic_s();
  double next_stats = monotonic_s() + kStatsEveryS;
  int64_t last_reported = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu);
      cv_wake.wait_for(lk, std::chrono::milliseconds(100), [&] { return monitor_shutdown; });
      if (monitor_shutdown) return;
      check_timeouts_locked();
    }
    const double now = monotonic_s();
    if (now >= next_hb) heartbeat(b, &next_hb);
    if (now >= next_stats) {
      std::lock_guard<std::mutex> lk(mu);
      if (n_reported != last_reported)
        spdlog::info("{} results accepted ({:.1f}/s over the last {:.0f} s), {} refused, {} leases lost", n_reported,
                     (n_reported - last_reported) / kStatsEveryS, kStatsEveryS, n_refused, n_lost);
      last_reported = n_reported;
      next_stats = now + kStatsEveryS;
    }
  }
}

// ---------------------------------------------------------------- drain

std::vector<std::string> Worker::Impl::hand_back_locked(Group& g) {
  std::vector<std::string> out;
  for (size_t i = 0; i < g.specs.size(); ++i) {
    if (g.answered[i]) continue;
    g.answered[i] = 1;
    ++g.n_answered;
    if (held.erase(g.lease[i])) out.push_back(g.lease[i]);
  }
  g.stop.store(true);
  return out;
}

void Worker::Impl::release(const std::vector<std::string>& leases, const char* why) {
  if (leases.empty()) return;
  v1::ReleaseRequest req;
  {
    const Identity me = identity();
    req.set_worker_id(me.id);
    req.set_worker_secret(me.secret);
  }
  for (const auto& l : leases) req.add_lease_ids(l);
  v1::ReleaseResponse resp;
  grpc::ClientContext ctx;
  rpc::prepare(ctx, opt.token, kReleaseTimeoutS, true);
  const grpc::Status s = stub->Release(&ctx, req, &resp);
  if (s.ok())
    spdlog::info("handed back {} {} jobs ({} released)", leases.size(), why, resp.released());
  else
    spdlog::warn("could not hand back {} {} jobs: {} (their leases will expire)", leases.size(), why,
                 rpc::status_text(s));
}

// A clean exit leaves the coordinator's worker list at once (its leases,
// all handed back above, would be released too).
void Worker::Impl::deregister() {
  v1::DeregisterRequest req;
  {
    const Identity me = identity();
    req.set_worker_id(me.id);
    req.set_worker_secret(me.secret);
  }
  if (req.worker_id().empty()) return;
  v1::DeregisterResponse resp;
  grpc::ClientContext ctx;
  rpc::prepare(ctx, opt.token, kReleaseTimeoutS, true);
  const grpc::Status s = stub->Deregister(&ctx, req, &resp);
  if (s.ok())
    spdlog::info("deregistered from the coordinator");
  else
    spdlog::warn("could not deregister: {} (the coordinator will list this worker as gone)", rpc::status_text(s));
}

void Worker::Impl::drain() {
  std::lock_guard<std::mutex> lk(mu);
  if (draining) return;
  draining = true;
  drain_deadline = SteadyClock::now() + std::chrono::milliseconds(static_cast<int64_t>(opt.drain_timeout_s * 1000));
  if (lease_ctx) lease_ctx->TryCancel();
  cv_lease.notify_all();
  cv_wake.notify_all();
  cv_drain.notify_all();
}

int Worker::Impl::run() {
  namespace fs = std::filesystem;
  const std::string scratch = (fs::path(opt.cache_dir) / "scratch" / (opt.name + "-" + std::to_string(getpid()))).string();
  fs::create_directories(opt.cache_dir);
  fs::create_directories(scratch);
  channel = rpc::make_channel(opt.server, opt.tls);
  stub = v1::WorkerService::NewStub(channel);
  blobs = std::make_unique<BlobCache>((fs::path(opt.cache_dir) / "blobs").string(), stub.get(), opt.token);
  base_ctx.device = opt.device;
  base_ctx.threads = opt.threads;
  base_ctx.scratch_dir = scratch;
  base_ctx.cache_dir = opt.cache_dir;
  base_ctx.worker_name = opt.name;
  base_ctx.fetch_blob = [this](const std::string& s) { return blobs->fetch(s); };

  run_canaries();  // the registration canary
  if (!register_loop()) {
    std::lock_guard<std::mutex> lk(mu);
    return fatal;
  }
  std::thread canary_thread;
  if (reg.hooks.canary && opt.canary_every_s > 0) canary_thread = std::thread([this] { canary_loop(); });
  std::thread monitor([this] { monitor_loop(); });
  std::thread reporter([this] { reporter_loop(); });
  std::vector<std::thread> execs;
  for (int i = 0; i < std::max(1, opt.slots); ++i) execs.emplace_back([this] { exec_loop(); });

  lease_loop();  // until drain

  std::vector<std::string> back;
  SteadyClock::time_point deadline;
  {
    std::lock_guard<std::mutex> lk(mu);
    deadline = drain_deadline;
    spdlog::info("draining: {} jobs queued, {} groups running, {} results to report", queued_jobs, running.size(),
                 results.size());
    for (auto& g : queue)
      for (auto& l : hand_back_locked(*g)) back.push_back(std::move(l));
  }
  release(back, "queued");
  back.clear();
  bool stuck = false;
  {
    std::unique_lock<std::mutex> lk(mu);
    cv_drain.wait_until(lk, deadline, [&] { return running.empty(); });
    if (!running.empty())
      spdlog::warn("drain deadline: stopping {} running groups and handing back their jobs", running.size());
    for (auto& g : running)
      for (auto& l : hand_back_locked(*g)) back.push_back(std::move(l));
  }
  release(back, "unfinished");
  {
    std::unique_lock<std::mutex> lk(mu);
    exec_shutdown = true;
    cv_work.notify_all();
    stuck = !cv_drain.wait_for(lk, duration<double>(kExecGraceS), [&] { return running.empty(); });
    if (!cv_drain.wait_for(lk, duration<double>(kFlushTimeoutS), [&] { return results.empty() && !reporting; }))
      spdlog::warn("drain: gave up reporting {} results", results.size());
    reporter_shutdown = true;
    cv_results.notify_all();
    cv_wake.notify_all();
  }
  reporter.join();
  back.clear();
  {
    std::lock_guard<std::mutex> lk(mu);
    for (const auto& [lease, h] : held) back.push_back(lease);
    held.clear();
  }
  release(back, "unreported");
  deregister();
  {
    std::lock_guard<std::mutex> lk(mu);
    monitor_shutdown = true;
    canary_shutdown = true;
    cv_wake.notify_all();
    cv_drain.notify_all();
  }
  monitor.join();
  if (canary_thread.joinable()) canary_thread.join();
  std::error_code ec;
  fs::remove_all(scratch, ec);
  int code;
  {
    std::lock_guard<std::mutex> lk(mu);
    code = fatal;
    spdlog::info("drained: {} results accepted, {} refused, {} leases lost", n_reported, n_refused, n_lost);
  }
  if (stuck) {
    // An executor ignores should_stop; its thread cannot be joined, and the
    // process must not wait for it.
    spdlog::error("an executor did not stop within {} s of the drain deadline; exiting anyway", kExecGraceS);
    spdlog::default_logger()->flush();
    std::_Exit(code);
  }
  for (auto& t : execs) t.join();
  return code;
}

// ---------------------------------------------------------------- public

Worker::Worker(Options opt, ExecutorRegistry& reg) : impl_(std::make_unique<Impl>(std::move(opt), reg)) {}
Worker::~Worker() = default;
int Worker::run() { return impl_->run(); }
void Worker::drain() { impl_->drain(); }

Worker::Stats Worker::stats() const {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lk(m.mu);
  Stats s;
  s.worker_id = m.worker_id;
  s.quarantined = m.quarantined;
  s.draining = m.draining;
  s.jobs_ok = m.n_ok;
  s.jobs_failed = m.n_failed;
  s.results_accepted = m.n_reported;
  s.results_refused = m.n_refused;
  s.leases_lost = m.n_lost;
  s.leases_held = static_cast<int64_t>(m.held.size());
  s.jobs_queued = static_cast<int64_t>(m.queued_jobs);
  for (const auto& g : m.running) s.jobs_running += static_cast<int64_t>(g->specs.size() - g->n_answered);
  return s;
}

}  // namespace spt::worker
