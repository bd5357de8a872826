#pragma once
// An in-process, in-memory WorkerService for testing spt-worker's protocol
// handling in situations the real server makes hard to stage: leases the
// server declares lost, a server that forgets the worker, a server that
// goes away and comes back with its state, blob transfers.
//
// Thread-safe; every RPC records what it saw.
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "spt/v1/spt.grpc.pb.h"

namespace spt::test {

class FakeCoordinator final : public v1::WorkerService::Service {
 public:
  explicit FakeCoordinator(int heartbeat_ms = 200, int lease_ttl_ms = 5000) : hb_ms_(heartbeat_ms), ttl_ms_(lease_ttl_ms) {}
  ~FakeCoordinator() override { stop(); }

  // Serves on 127.0.0.1:port (0 = pick one; a restart reuses the port).
  void start(int port = 0);
  void stop();
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Queues a job to lease (attempt defaults to 1).
  void add_job(v1::Job job);
  // The next heartbeat listing this job's lease reports it lost.
  void lose_job(int64_t job_id);
  // From now on every id issued so far is unknown (NOT_FOUND).
  void forget_workers();
  void put_blob(const std::string& name, const std::string& bytes);

  // Observations.
  std::vector<v1::JobResult> results();
  std::vector<std::string> released();
  std::string lease_of(int64_t job_id);
  int registrations();
  int lease_calls();
  int heartbeats();
  // Worker RPCs whose worker_secret was not the one Register issued for
  // their worker_id (each is refused with PERMISSION_DENIED, except Release,
  // which is only counted).
  int secret_mismatches();
  std::map<std::string, std::string> blobs();  // sha256 -> bytes
  std::vector<v1::Capabilities> capabilities();

  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest*, v1::RegisterResponse*) override;
  grpc::Status Lease(grpc::ServerContext*, const v1::LeaseRequest*, v1::LeaseResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status Report(grpc::ServerContext*, const v1::ReportRequest*, v1::ReportResponse*) override;
  grpc::Status Release(grpc::ServerContext*, const v1::ReleaseRequest*, v1::ReleaseResponse*) override;
  grpc::Status PutBlob(grpc::ServerContext*, grpc::ServerReader<v1::BlobChunk>*, v1::PutBlobResponse*) override;
  grpc::Status FetchBlob(grpc::ServerContext*, const v1::FetchBlobRequest*, grpc::ServerWriter<v1::BlobChunk>*) override;

 private:
  bool known_locked(const std::string& id) const { return ids_.count(id) && !forgotten_.count(id); }
  // NOT_FOUND for an unknown id, PERMISSION_DENIED (counted) for a wrong secret.
  grpc::Status identify_locked(const std::string& id, const std::string& secret);

  const int hb_ms_, ttl_ms_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::Job> queue_;
  std::map<std::string, v1::Job> leased_;  // by lease id
  std::map<int64_t, std::string> lease_of_;
  std::set<int64_t> to_lose_;
  std::set<std::string> ids_, forgotten_;
  std::map<std::string, std::string> secret_of_;  // worker id -> the secret Register issued
  int n_secret_mismatches_ = 0;
  std::vector<v1::JobResult> results_;
  std::vector<std::string> released_;
  std::vector<v1::Capabilities> caps_;
  std::map<std::string, std::pair<std::string, std::string>> blobs_;  // sha -> (name, bytes)
  bool serving_ = false;
  int n_leases_ = 0, n_lease_calls_ = 0, n_heartbeats_ = 0;
};

}  // namespace spt::test
