#pragma once
// The two gRPC services of spt.v1 over a Store and a BlobStore.
//
// Every RPC first checks the bearer token (metadata
// `authorization: Bearer <token>`, constant-time compare) and the role it
// grants, and then validates the request; the store is only ever called
// with well-formed input. Worker RPCs that name a worker_id must carry that
// worker's secret (RegisterResponse.worker_secret), checked in memory
// (Store::check_worker_secret). Errors map as: bad input ->
// INVALID_ARGUMENT, unknown experiment/job/worker/blob -> NOT_FOUND (a
// worker re-registers on it), bad token or missing worker secret ->
// UNAUTHENTICATED, a token without the RPC's role or a wrong worker secret
// -> PERMISSION_DENIED, anything else -> INTERNAL (logged).
//
// Report answers per result (issue 12): a result that cannot be stored as
// sent (invalid JSON, an artifact not uploaded, a bad run time, over
// StoreOptions::max_result_bytes) is stored as its job's failure and one
// that names no job is refused; each is listed in ReportResponse.problems
// with the reason, and the batch itself succeeds. Lease moves a job's
// inputs above StoreOptions::inline_inputs_max_bytes into one blob
// (Job.inputs_sha256, a serialised JobInputs) written outside the store's lock.
#include <string>

#include "artifacts.h"
#include "spt/v1/spt.grpc.pb.h"
#include "store.h"

namespace spt::server {

// Roles (issue 12). A token grants one role; an RPC names the role it
// needs. worker: WorkerService only. submitter: ControlService except pool
// upkeep (submit, status, results, cancel, retry, logs, blobs, artifacts,
// list workers). admin: everything, including DrainWorker/PruneWorkers.
enum class Role { kWorker, kSubmitter, kAdmin };

// The tokens, as sha256 digests compared in constant time per RPC. Only
// the admin token is required; an empty worker or submitter token means no
// token has that role (admin still does). Immutable, so thread-safe.
class Auth {
 public:
  explicit Auth(const std::string& admin_token, const std::string& worker_token = "",
                const std::string& submitter_token = "");
  // OK if the call's bearer token has `needed` (or admin); UNAUTHENTICATED
  // for no or an unknown token; PERMISSION_DENIED naming the role needed,
  // with `action` ("submit", "lease jobs") in the message.
  grpc::Status check(const grpc::ServerContext* ctx, Role needed, const char* action) const;

 private:
  std::string admin_digest_, worker_digest_, submitter_digest_;  // sha256 hex; "" = no such token
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Store& store, BlobStore& blobs, const Auth& auth) : store_(store), blobs_(blobs), auth_(auth) {}

  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest*, v1::RegisterResponse*) override;
  grpc::Status Lease(grpc::ServerContext*, const v1::LeaseRequest*, v1::LeaseResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status Report(grpc::ServerContext*, const v1::ReportRequest*, v1::ReportResponse*) override;
  grpc::Status Release(grpc::ServerContext*, const v1::ReleaseRequest*, v1::ReleaseResponse*) override;
  grpc::Status Deregister(grpc::ServerContext*, const v1::DeregisterRequest*, v1::DeregisterResponse*) override;
  // Uploads from workers are job outputs: stored, never given a global name.
  grpc::Status PutBlob(grpc::ServerContext*, grpc::ServerReader<v1::BlobChunk>*, v1::PutBlobResponse*) override;
  grpc::Status FetchBlob(grpc::ServerContext*, const v1::FetchBlobRequest*,
                         grpc::ServerWriter<v1::BlobChunk>*) override;

 private:
  Store& store_;
  BlobStore& blobs_;
  const Auth& auth_;
};

// Per-submission limits (issue 12): a request over either is refused with
// RESOURCE_EXHAUSTED naming the limit, the value and the spt-server flag,
// before its plan is built past the limit or anything is stored.
struct SubmitLimits {
  // 2^20: admits the largest plan any family makes within its validated
  // params (selftest n = 10^6: 10^6 + 1 jobs; exp10 on gpt2-xl, all parts:
  // ~10^4) and bounds what one submission costs the coordinator
  // (bench/submit_bench: ~0.65 GiB peak RSS, ~0.3 GiB of database at 10^6).
  int64_t max_jobs = 1 << 20;
  // 4 MiB: the serialised SubmitRequest (params, tag); real params are
  // names, hashes and numbers, a few KiB at most.
  int64_t max_bytes = 4 << 20;
};

class ControlServiceImpl final : public v1::ControlService::Service {
 public:
  ControlServiceImpl(Store& store, BlobStore& blobs, const Auth& auth) : store_(store), blobs_(blobs), auth_(auth) {}
  void set_submit_limits(const SubmitLimits& l) { limits_ = l; }  // before serving

  grpc::Status Submit(grpc::ServerContext*, const v1::SubmitRequest*, v1::SubmitResponse*) override;
  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*, v1::StatusResponse*) override;
  grpc::Status Results(grpc::ServerContext*, const v1::ResultsRequest*, v1::ResultsResponse*) override;
  grpc::Status Cancel(grpc::ServerContext*, const v1::CancelRequest*, v1::CancelResponse*) override;
  grpc::Status Retry(grpc::ServerContext*, const v1::RetryRequest*, v1::RetryResponse*) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const v1::ListWorkersRequest*, v1::ListWorkersResponse*) override;
  grpc::Status DrainWorker(grpc::ServerContext*, const v1::DrainWorkerRequest*, v1::DrainWorkerResponse*) override;
  grpc::Status PruneWorkers(grpc::ServerContext*, const v1::PruneWorkersRequest*, v1::PruneWorkersResponse*) override;
  grpc::Status Logs(grpc::ServerContext*, const v1::LogsRequest*, v1::LogsResponse*) override;
  // Uploads with a name register it (models, datasets): FetchBlob by name.
  grpc::Status PutBlob(grpc::ServerContext*, grpc::ServerReader<v1::BlobChunk>*, v1::PutBlobResponse*) override;
  grpc::Status FetchBlob(grpc::ServerContext*, const v1::FetchBlobRequest*,
                         grpc::ServerWriter<v1::BlobChunk>*) override;
  grpc::Status ListArtifacts(grpc::ServerContext*, const v1::ListArtifactsRequest*,
                             v1::ListArtifactsResponse*) override;

 private:
  Store& store_;
  BlobStore& blobs_;
  const Auth& auth_;
  SubmitLimits limits_;
};

}  // namespace spt::server
