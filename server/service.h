#pragma once
// The two gRPC services of spt.v1 over a Store and a BlobStore.
//
// Every RPC first checks the bearer token (metadata
// `authorization: Bearer <token>`, constant-time compare) and then
// validates the request; the store is only ever called with well-formed
// input. Errors map as: bad input -> INVALID_ARGUMENT, unknown
// experiment/job/worker/blob -> NOT_FOUND (a worker re-registers on it),
// bad token -> UNAUTHENTICATED, anything else -> INTERNAL (logged).
#include <string>

#include "artifacts.h"
#include "spt/v1/spt.grpc.pb.h"
#include "store.h"

namespace spt::server {

class Auth {
 public:
  explicit Auth(std::string token);
  grpc::Status check(const grpc::ServerContext* ctx) const;

 private:
  std::string token_digest_;  // sha256 hex of the token; compared in constant time
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

class ControlServiceImpl final : public v1::ControlService::Service {
 public:
  ControlServiceImpl(Store& store, BlobStore& blobs, const Auth& auth) : store_(store), blobs_(blobs), auth_(auth) {}

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
};

}  // namespace spt::server
