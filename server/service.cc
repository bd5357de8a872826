#include "service.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <set>

#include "spt/hash.h"
#include "spt/plan.h"
#include "spt/utf8.h"

namespace spt::server {

namespace {

constexpr size_t kChunk = 1 << 20;  // FetchBlob chunk size
constexpr int kMaxLeaseBatch = 10000;
constexpr size_t kMaxName = 512;

grpc::Status invalid(const std::string& msg) { return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, msg); }

// Text from clients and workers (names, devices, errors) as it goes into a
// log line: no raw escape sequence reaches an operator's terminal (issue 12).
std::string log_safe(const std::string& s) { return utf8::escape_controls(s, /*multiline=*/false); }

// Runs a handler body, mapping the store's exceptions to gRPC statuses.
template <class F>
grpc::Status guarded(const char* rpc, F&& body) {
  try {
    return body();
  } catch (const NotFound& e) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, e.what());
  } catch (const BadRequest& e) {
    return invalid(e.what());
  } catch (const plan::PlanError& e) {
    return invalid(e.what());
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", rpc, log_safe(e.what()));
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(rpc) + ": " + e.what());
  }
}

// The call's token must grant `role` (see Role); `action` names the RPC in
// the refusal ("this token may not <action>: ...").
#define SPT_AUTH(ctx, role, action)                            \
  do {                                                         \
    grpc::Status auth_status = auth_.check(ctx, role, action); \
    if (!auth_status.ok()) return auth_status;                 \
  } while (0)

grpc::Status check_ref(const v1::ExperimentRef& ref) {
  if (ref.id() < 0) return invalid("experiment id must be positive");
  if (ref.id() == 0 && ref.name().empty()) return invalid("name an experiment by id or by name");
  return grpc::Status::OK;
}

grpc::Status check_worker_id(const std::string& id) {
  if (id.empty()) return invalid("worker_id is required (call Register first)");
  return grpc::Status::OK;
}

// A worker RPC acts as the worker it names only with that worker's secret
// (an in-memory digest compare). Unknown ids get NOT_FOUND, on which a
// worker registers again.
template <class Request>
grpc::Status check_worker(Store& store, const Request& req) {
  const std::string& id = req.worker_id();
  if (auto s = check_worker_id(id); !s.ok()) return s;
  switch (store.check_worker_secret(id, req.worker_secret())) {
    case Store::WorkerCheck::kOk:
      return grpc::Status::OK;
    case Store::WorkerCheck::kUnknown:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown worker id '" + id + "'; register again");
    case Store::WorkerCheck::kMismatch:
      break;
  }
  if (req.worker_secret().empty())
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "request for worker " + id +
                            " carries no worker_secret (the one Register returned); is spt-worker older than "
                            "spt-server?");
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      "worker secret does not match worker id " + id + ": a worker may act only as itself");
}

grpc::Status put_blob(grpc::ServerContext* ctx, Store& store, BlobStore& blobs, grpc::ServerReader<v1::BlobChunk>* in,
                      v1::PutBlobResponse* out, bool register_name) {
  v1::BlobChunk chunk;
  std::string expected, name;
  int64_t total = -1;
  bool first = true;
  auto w = blobs.writer();
  while (in->Read(&chunk)) {
    if (first) {
      expected = chunk.sha256();
      name = chunk.name();
      total = chunk.total_size() > 0 ? chunk.total_size() : -1;
      if (!expected.empty() && !valid_sha256(expected))
        return invalid("sha256 must be 64 lower-case hex characters, got '" + expected + "'");
      if (name.size() > kMaxName) return invalid("blob name longer than " + std::to_string(kMaxName));
      if (chunk.total_size() < 0) return invalid("total_size must not be negative");
      first = false;
    }
    w->append(chunk.data());
    if (total >= 0 && w->size() > total)
      return invalid("upload is larger than its total_size " + std::to_string(total));
  }
  // Read() also ends when the client cancels or the connection drops: only
  // a stream the client half-closed is a finished upload (issue 12: one
  // cancelled without total_size was stored as complete). The writer's
  // temp file goes with it.
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "upload cancelled by the client; discarded");
  if (first) return invalid("empty upload: send at least one chunk");
  if (total >= 0 && w->size() != total)
    return invalid("upload truncated: got " + std::to_string(w->size()) + " of " + std::to_string(total) + " bytes");
  std::string sha;
  try {
    sha = w->finish(expected);
  } catch (const BlobError& e) {
    return grpc::Status(grpc::StatusCode::DATA_LOSS, e.what());
  }
  const std::string media = media_type_for(name);
  store.record_blob(sha, w->size(), media);
  if (register_name && !name.empty()) store.name_blob(name, sha);
  v1::Artifact* a = out->mutable_artifact();
  a->set_name(name);
  a->set_sha256(sha);
  a->set_size(w->size());
  a->set_media_type(media);
  spdlog::info("stored blob {} ({} bytes){}{}", sha.substr(0, 12), w->size(), name.empty() ? "" : " as ",
               log_safe(name));
  return grpc::Status::OK;
}

// Large reduce inputs (issue 12): moves a leased job's inputs into one blob
// (a serialised JobInputs) that the worker fetches with FetchBlob, instead
// of copying every upstream result into the lease. Runs outside the store's
// lock; blobs are content-addressed, so a re-leased job reuses its blob. On
// a blob store error the inputs stay inline (logged).
void spill_inputs(Store& store, BlobStore& blobs, v1::Job& job) {
  v1::JobInputs all;
  all.mutable_inputs()->Swap(job.mutable_inputs());
  std::string bytes;
  all.SerializeToString(&bytes);
  try {
    auto w = blobs.writer();
    w->append(bytes);
    const std::string sha = w->finish("");
    store.record_blob(sha, w->size(), "application/x-protobuf");
    job.set_inputs_sha256(sha);
    job.set_inputs_blob_bytes(w->size());
  } catch (const BlobError& e) {
    spdlog::warn("job {}: cannot store its {} inputs as a blob ({}); sending them inline", job.job_id(),
                 all.inputs_size(), e.what());
    job.mutable_inputs()->Swap(all.mutable_inputs());
  }
}

// Spills the inputs of jobs above the inline limit, and of any job once the
// response's inline inputs pass four times it (a batch of reduces).
void spill_large_inputs(Store& store, BlobStore& blobs, v1::LeaseResponse& resp) {
  const int64_t limit = store.options().inline_inputs_max_bytes;
  int64_t inline_total = 0;
  for (auto& job : *resp.mutable_jobs()) {
    int64_t bytes = 0;
    for (const auto& in : job.inputs()) bytes += static_cast<int64_t>(in.result_json().size() + in.name().size());
    if (bytes == 0) continue;
    if (bytes > limit || inline_total + bytes > 4 * limit)
      spill_inputs(store, blobs, job);
    else
      inline_total += bytes;
  }
}

grpc::Status fetch_blob(Store& store, BlobStore& blobs, const v1::FetchBlobRequest* req,
                        grpc::ServerWriter<v1::BlobChunk>* out) {
  std::string sha = req->sha256(), name = req->name();
  if (sha.empty() && name.empty()) return invalid("give a sha256 or a registered name");
  if (!sha.empty() && !valid_sha256(sha))
    return invalid("sha256 must be 64 lower-case hex characters, got '" + sha + "'");
  if (sha.empty()) {
    auto a = store.named_blob(name);
    if (!a) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no blob registered under the name '" + name + "'");
    sha = a->sha256();
  }
  std::unique_ptr<BlobStore::Reader> r;
  try {
    r = blobs.reader(sha);
  } catch (const BlobError&) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no blob " + sha);
  }
  v1::BlobChunk c;
  c.set_sha256(sha);
  c.set_name(name);
  c.set_total_size(r->size());
  bool sent = false;
  for (;;) {
    std::string data = r->read(kChunk);
    if (data.empty() && sent) break;
    c.set_data(std::move(data));
    if (!out->Write(c)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    sent = true;
    c.Clear();
  }
  return grpc::Status::OK;
}

}  // namespace

// ---------------------------------------------------------------- auth

namespace {

std::string digest_or_empty(const std::string& token) { return token.empty() ? "" : sha256_hex(token); }

// Digests have a fixed length, so the compare leaks nothing, not even it.
bool digest_equal(const std::string& got, const std::string& want) {
  return !want.empty() && CRYPTO_memcmp(got.data(), want.data(), got.size()) == 0;
}

const char* who_may(Role needed) {
  switch (needed) {
    case Role::kWorker: return "needs the worker token";
    case Role::kSubmitter: return "needs the submitter or admin token";
    case Role::kAdmin: break;
  }
  return "needs the admin token";
}

}  // namespace

Auth::Auth(const std::string& admin_token, const std::string& worker_token, const std::string& submitter_token)
    : admin_digest_(sha256_hex(admin_token)),
      worker_digest_(digest_or_empty(worker_token)),
      submitter_digest_(digest_or_empty(submitter_token)) {}

grpc::Status Auth::check(const grpc::ServerContext* ctx, Role needed, const char* action) const {
  static const std::string kPrefix = "Bearer ";
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) {
    std::string v(it->second.data(), it->second.size());
    if (v.compare(0, kPrefix.size(), kPrefix) == 0) {
      const std::string got = sha256_hex(std::string_view(v).substr(kPrefix.size()));
      // Every digest is compared, so the time taken does not tell which matched.
      const bool admin = digest_equal(got, admin_digest_), worker = digest_equal(got, worker_digest_),
                 submitter = digest_equal(got, submitter_digest_);
      if (admin || (worker && needed == Role::kWorker) || (submitter && needed == Role::kSubmitter))
        return grpc::Status::OK;
      if (worker || submitter) {
        const std::string why = worker ? "the worker role only runs jobs"
                                       : "the submitter role only submits and inspects experiments";
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            std::string("this token may not ") + action + ": " + why + " (" +
                                who_may(needed) + ")");
      }
    }
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or invalid bearer token");
}

// ---------------------------------------------------------------- worker service

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                                         v1::RegisterResponse* resp) {
  SPT_AUTH(ctx, Role::kWorker, "register as a worker");
  if (req->name().empty()) return invalid("worker name is required");
  if (req->name().size() > kMaxName) return invalid("worker name longer than " + std::to_string(kMaxName));
  if (req->capabilities().slots() < 0) return invalid("capabilities.slots must not be negative");
  for (const auto& k : req->capabilities().job_kinds())
    if (k.empty()) return invalid("capabilities.job_kinds has an empty kind");
  if (req->capabilities().memory_bytes() < 0) return invalid("capabilities.memory_bytes must not be negative");
  for (const auto& c : req->canaries())
    if (c.precision().empty()) return invalid("a canary without a precision");
  return guarded("Register", [&] {
    *resp = store_.register_worker(req->name(), req->capabilities(),
                                   std::vector<v1::Canary>(req->canaries().begin(), req->canaries().end()));
    const auto& c = req->capabilities();
    spdlog::info("worker {} registered as {} ({} {}, {:.1f} GiB, {} kinds, {} slots, {} canaries, version {})",
                 log_safe(req->name()), resp->worker_id(), log_safe(c.device_kind()), log_safe(c.device_name()),
                 c.memory_bytes() / double(1 << 30), c.job_kinds_size(), c.slots(), req->canaries_size(),
                 log_safe(c.version()));
    if (!resp->quarantined().empty())
      spdlog::warn("worker {} ({}) quarantined at registration: {}", log_safe(req->name()), resp->worker_id(),
                   log_safe(resp->quarantined()));
    return grpc::Status::OK;
  });
}

grpc::Status WorkerServiceImpl::Lease(grpc::ServerContext* ctx, const v1::LeaseRequest* req,
                                      v1::LeaseResponse* resp) {
  SPT_AUTH(ctx, Role::kWorker, "lease jobs");
  if (auto s = check_worker(store_, *req); !s.ok()) return s;
  if (req->max_jobs() < 1 || req->max_jobs() > kMaxLeaseBatch)
    return invalid("max_jobs must be in 1.." + std::to_string(kMaxLeaseBatch) + ", got " +
                   std::to_string(req->max_jobs()));
  if (req->wait_ms() < 0) return invalid("wait_ms must not be negative");
  return guarded("Lease", [&] {
    *resp = store_.lease(*req, [ctx] { return ctx->IsCancelled(); });
    spill_large_inputs(store_, blobs_, *resp);
    if (resp->jobs_size()) spdlog::debug("leased {} jobs to {}", resp->jobs_size(), req->worker_id());
    return grpc::Status::OK;
  });
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  SPT_AUTH(ctx, Role::kWorker, "heartbeat as a worker");
  if (auto s = check_worker(store_, *req); !s.ok()) return s;
  for (const auto& l : req->lease_ids())
    if (l.empty()) return invalid("lease_ids has an empty id");
  for (const auto& c : req->canaries())
    if (c.precision().empty()) return invalid("a canary without a precision");
  return guarded("Heartbeat", [&] {
    *resp = store_.heartbeat(*req);
    if (!resp->quarantined().empty() && req->canaries_size())
      spdlog::warn("worker {} quarantined: {}", req->worker_id(), log_safe(resp->quarantined()));
    if (resp->lost_lease_ids_size())
      spdlog::info("worker {}: {} leases lost", req->worker_id(), resp->lost_lease_ids_size());
    return grpc::Status::OK;
  });
}

grpc::Status WorkerServiceImpl::Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                                       v1::ReportResponse* resp) {
  SPT_AUTH(ctx, Role::kWorker, "report results");
  if (auto s = check_worker(store_, *req); !s.ok()) return s;
  // Each result is judged alone (issue 12): one that cannot be stored as
  // sent becomes a failure of its job, saying why, and one that names no
  // job is refused; never an error for the whole batch (which the worker
  // would resend until its leases expired). Either way the response's
  // problems tell the worker to drop it. The store checks the rest
  // (run time, size).
  v1::ReportRequest fixed = *req;
  fixed.clear_results();
  std::vector<v1::ResultProblem> problems, unsent;
  auto problem = [](std::vector<v1::ResultProblem>& to, const v1::JobResult& r, const std::string& why) {
    v1::ResultProblem p;
    p.set_job_id(r.job_id());
    p.set_lease_id(r.lease_id());
    p.set_reason(why);
    to.push_back(std::move(p));
  };
  for (const auto& sent : req->results()) {
    if (sent.job_id() <= 0 || sent.lease_id().empty()) {
      const std::string id = std::to_string(sent.job_id());
      problem(unsent, sent,
              sent.job_id() <= 0 ? "result with job_id " + id + ": ids are positive"
                                 : "result for job " + id + " has no lease_id");
      continue;
    }
    v1::JobResult& r = *fixed.add_results();
    r = sent;
    if (!r.ok()) {
      if (r.error().empty()) r.set_error("worker reported a failure without a message");
      continue;
    }
    auto fail = [&](const std::string& why, bool retryable) {
      r.set_ok(false);
      r.set_error(why);
      r.set_retryable(retryable);
      r.clear_artifacts();
      problem(problems, r, why);
    };
    if (!nlohmann::json::accept(r.result_json())) {
      fail("worker sent a result_json that is not valid JSON", false);
      continue;
    }
    for (const auto& a : r.artifacts()) {
      if (a.name().empty() || a.name().size() > kMaxName) {
        fail("artifact with an empty or overlong name", false);
        break;
      }
      if (!valid_sha256(a.sha256()) || !blobs_.has(a.sha256())) {
        fail("artifact " + a.name() + " (" + a.sha256() + ") was not uploaded with PutBlob", true);
        break;
      }
    }
  }
  return guarded("Report", [&] {
    *resp = store_.report(fixed);
    const std::set<int64_t> accepted(resp->accepted().begin(), resp->accepted().end());
    for (auto& p : unsent) resp->add_refused(p.job_id());
    for (auto& p : unsent) problems.push_back(std::move(p));
    for (auto& p : problems) {
      p.set_stored_as_failure(accepted.count(p.job_id()) != 0);
      *resp->add_problems() = std::move(p);
    }
    for (const auto& p : resp->problems())
      spdlog::warn("worker {}: result for job {} {}: {}", req->worker_id(), p.job_id(),
                   p.stored_as_failure() ? "stored as a failure" : "refused", p.reason());
    spdlog::debug("worker {} reported {} results: {} accepted, {} refused", req->worker_id(), req->results_size(),
                  resp->accepted_size(), resp->refused_size());
    return grpc::Status::OK;
  });
}

grpc::Status WorkerServiceImpl::Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* req,
                                        v1::ReleaseResponse* resp) {
  SPT_AUTH(ctx, Role::kWorker, "release leases");
  if (auto s = check_worker(store_, *req); !s.ok()) return s;
  for (const auto& l : req->lease_ids())
    if (l.empty()) return invalid("lease_ids has an empty id");
  return guarded("Release", [&] {
    std::vector<std::string> ids(req->lease_ids().begin(), req->lease_ids().end());
    resp->set_released(store_.release(req->worker_id(), ids));
    spdlog::info("worker {} released {} leases", req->worker_id(), resp->released());
    return grpc::Status::OK;
  });
}

grpc::Status WorkerServiceImpl::Deregister(grpc::ServerContext* ctx, const v1::DeregisterRequest* req,
                                           v1::DeregisterResponse* resp) {
  SPT_AUTH(ctx, Role::kWorker, "deregister a worker");
  if (auto s = check_worker(store_, *req); !s.ok()) return s;
  return guarded("Deregister", [&] {
    resp->set_released(store_.deregister_worker(req->worker_id()));
    spdlog::info("worker {} deregistered ({} leases released)", req->worker_id(), resp->released());
    return grpc::Status::OK;
  });
}

grpc::Status WorkerServiceImpl::PutBlob(grpc::ServerContext* ctx, grpc::ServerReader<v1::BlobChunk>* in,
                                        v1::PutBlobResponse* out) {
  SPT_AUTH(ctx, Role::kWorker, "upload job outputs");
  return guarded("PutBlob", [&] { return put_blob(ctx, store_, blobs_, in, out, false); });
}

grpc::Status WorkerServiceImpl::FetchBlob(grpc::ServerContext* ctx, const v1::FetchBlobRequest* req,
                                          grpc::ServerWriter<v1::BlobChunk>* out) {
  SPT_AUTH(ctx, Role::kWorker, "fetch blobs as a worker");
  return guarded("FetchBlob", [&] { return fetch_blob(store_, blobs_, req, out); });
}

// ---------------------------------------------------------------- control service

grpc::Status ControlServiceImpl::Submit(grpc::ServerContext* ctx, const v1::SubmitRequest* req,
                                        v1::SubmitResponse* resp) {
  SPT_AUTH(ctx, Role::kSubmitter, "submit");
  if (req->experiment().empty()) {
    std::string known;
    for (const auto& n : plan::experiment_names()) known += (known.empty() ? "" : ", ") + n;
    return invalid("experiment is required (known: " + known + ")");
  }
  // Params are text (plans and the store hold them as JSON): name the one
  // that is not, rather than fail INTERNAL later (issue 12).
  for (const auto& [k, v] : req->params()) {
    if (const size_t at = utf8::invalid_at(k); at != utf8::Validator::npos)
      return invalid("param '" + log_safe(k) + "': name is not valid UTF-8 (byte offset " + std::to_string(at) + ")");
    if (const size_t at = utf8::invalid_at(v); at != utf8::Validator::npos)
      return invalid("param '" + log_safe(k) + "': value is not valid UTF-8 (byte offset " + std::to_string(at) + ")");
  }
  return guarded("Submit", [&] {
    // Limits (issue 12): the request's size first, then a job budget that
    // stops plan building as soon as it is exceeded.
    if (const int64_t bytes = static_cast<int64_t>(req->ByteSizeLong()); bytes > limits_.max_bytes)
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "submission refused: the request is " + std::to_string(bytes) + " bytes, over the limit of " +
                              std::to_string(limits_.max_bytes) + " bytes per submission (spt-server "
                              "--max-submission-bytes=" + std::to_string(limits_.max_bytes) + "); shorten its params "
                              "(e.g. the tag)");
    plan::Request preq;
    preq.experiment = req->experiment();
    preq.parts = req->parts();
    preq.params = std::map<std::string, std::string>(req->params().begin(), req->params().end());
    preq.max_jobs = limits_.max_jobs;
    plan::Plan p;
    try {
      p = plan::make_plan(preq);
    } catch (const plan::PlanTooLarge& e) {
      spdlog::warn("submission of {} refused: {}", req->experiment(), e.what());
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "submission refused: " + std::string(e.what()) + " (spt-server --max-jobs-per-submission=" +
                              std::to_string(limits_.max_jobs) + "); submit fewer parts or a smaller model/params, "
                              "or ask the operator to raise the limit");
    }
    const SubmitResult r = store_.submit(p, req->priority(), req->force(), [ctx] { return ctx->IsCancelled(); });
    resp->set_experiment_id(r.experiment_id);
    resp->set_n_jobs(r.n_jobs);
    resp->set_n_reused(r.n_reused);
    spdlog::info("submitted {} parts '{}' as experiment {}: {} jobs, {} from stored results{}", p.experiment,
                 p.parts, r.experiment_id, r.n_jobs, r.n_reused, req->force() ? " (forced)" : "");
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::Status(grpc::ServerContext* ctx, const v1::StatusRequest* req,
                                        v1::StatusResponse* resp) {
  SPT_AUTH(ctx, Role::kSubmitter, "read status");
  const auto& ref = req->experiment();
  const bool named = ref.id() != 0 || !ref.name().empty();
  if (named)
    if (auto s = check_ref(ref); !s.ok()) return s;
  return guarded("Status", [&] {
    if (named)
      *resp->add_experiments() = store_.experiment_status(store_.resolve(ref));
    else
      for (auto& e : store_.experiments(req->all())) *resp->add_experiments() = std::move(e);
    for (auto& w : store_.workers()) *resp->add_workers() = std::move(w);
    for (auto& u : store_.unschedulable()) *resp->add_unschedulable() = std::move(u);
    resp->set_server_time_unix_ms(store_.now());
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::Results(grpc::ServerContext* ctx, const v1::ResultsRequest* req,
                                         v1::ResultsResponse* resp) {
  SPT_AUTH(ctx, Role::kSubmitter, "read results");
  if (auto s = check_ref(req->experiment()); !s.ok()) return s;
  return guarded("Results", [&] {
    *resp = store_.results(store_.resolve(req->experiment()));
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::Cancel(grpc::ServerContext* ctx, const v1::CancelRequest* req,
                                        v1::CancelResponse* resp) {
  SPT_AUTH(ctx, Role::kSubmitter, "cancel");
  if (auto s = check_ref(req->experiment()); !s.ok()) return s;
  return guarded("Cancel", [&] {
    const int64_t id = store_.resolve(req->experiment());
    resp->set_cancelled_jobs(store_.cancel(id));
    spdlog::info("experiment {} cancelled: {} jobs", id, resp->cancelled_jobs());
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::Retry(grpc::ServerContext* ctx, const v1::RetryRequest* req,
                                       v1::RetryResponse* resp) {
  SPT_AUTH(ctx, Role::kSubmitter, "retry");
  if (auto s = check_ref(req->experiment()); !s.ok()) return s;
  return guarded("Retry", [&] {
    const int64_t id = store_.resolve(req->experiment());
    resp->set_retried_jobs(store_.retry(id));
    spdlog::info("experiment {}: {} jobs retried", id, resp->retried_jobs());
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::ListWorkers(grpc::ServerContext* ctx, const v1::ListWorkersRequest*,
                                             v1::ListWorkersResponse* resp) {
  SPT_AUTH(ctx, Role::kSubmitter, "list workers");
  return guarded("ListWorkers", [&] {
    for (auto& w : store_.workers()) *resp->add_workers() = std::move(w);
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::DrainWorker(grpc::ServerContext* ctx, const v1::DrainWorkerRequest* req,
                                             v1::DrainWorkerResponse* resp) {
  SPT_AUTH(ctx, Role::kAdmin, "drain workers");
  if (req->name().empty()) return invalid("name is required (a worker's name or id)");
  return guarded("DrainWorker", [&] {
    resp->set_workers(store_.ask_drain(req->name()));
    if (resp->workers() == 0)
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no live worker named '" + req->name() + "'");
    spdlog::info("asked {} worker(s) named {} to drain", resp->workers(), log_safe(req->name()));
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::PruneWorkers(grpc::ServerContext* ctx, const v1::PruneWorkersRequest*,
                                              v1::PruneWorkersResponse* resp) {
  SPT_AUTH(ctx, Role::kAdmin, "prune workers");
  return guarded("PruneWorkers", [&] {
    resp->set_pruned(store_.prune_workers());
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::Logs(grpc::ServerContext* ctx, const v1::LogsRequest* req, v1::LogsResponse* resp) {
  SPT_AUTH(ctx, Role::kSubmitter, "read logs");
  if (req->job_id() < 0) return invalid("job_id must be positive");
  if (req->job_id() == 0) {
    if (req->job_name().empty()) return invalid("give a job_id, or an experiment and a job_name");
    if (auto s = check_ref(req->experiment()); !s.ok()) return s;
  }
  return guarded("Logs", [&] {
    const int64_t job =
        req->job_id() ? req->job_id() : store_.find_job(store_.resolve(req->experiment()), req->job_name());
    *resp = store_.logs(job);
    return grpc::Status::OK;
  });
}

grpc::Status ControlServiceImpl::PutBlob(grpc::ServerContext* ctx, grpc::ServerReader<v1::BlobChunk>* in,
                                         v1::PutBlobResponse* out) {
  SPT_AUTH(ctx, Role::kSubmitter, "upload files");
  return guarded("PutBlob", [&] { return put_blob(ctx, store_, blobs_, in, out, true); });
}

grpc::Status ControlServiceImpl::FetchBlob(grpc::ServerContext* ctx, const v1::FetchBlobRequest* req,
                                           grpc::ServerWriter<v1::BlobChunk>* out) {
  SPT_AUTH(ctx, Role::kSubmitter, "fetch blobs");
  return guarded("FetchBlob", [&] { return fetch_blob(store_, blobs_, req, out); });
}

grpc::Status ControlServiceImpl::ListArtifacts(grpc::ServerContext* ctx, const v1::ListArtifactsRequest* req,
                                               v1::ListArtifactsResponse* resp) {
  SPT_AUTH(ctx, Role::kSubmitter, "list artifacts");
  return guarded("ListArtifacts", [&] {
    for (auto& a : store_.list_named(req->prefix())) *resp->add_artifacts() = std::move(a);
    return grpc::Status::OK;
  });
}

}  // namespace spt::server
