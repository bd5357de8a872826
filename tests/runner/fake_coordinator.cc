#include "fake_coordinator.h"

#include <chrono>

#include "spt/hash.h"

namespace spt::test {

void FakeCoordinator::start(int port) {
  grpc::ServerBuilder b;
  int bound = 0;
  b.AddListeningPort("127.0.0.1:" + std::to_string(port ? port : port_), grpc::InsecureServerCredentials(), &bound);
  b.RegisterService(this);
  server_ = b.BuildAndStart();
  if (!server_) throw std::runtime_error("fake coordinator cannot listen");
  port_ = bound;
  std::lock_guard<std::mutex> lk(mu_);
  serving_ = true;
}

void FakeCoordinator::stop() {
  if (!server_) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    serving_ = false;
    cv_.notify_all();
  }
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  server_->Wait();
  server_.reset();
}

void FakeCoordinator::add_job(v1::Job job) {
  if (job.attempt() == 0) job.set_attempt(1);
  std::lock_guard<std::mutex> lk(mu_);
  queue_.push_back(std::move(job));
  cv_.notify_all();
}

void FakeCoordinator::lose_job(int64_t job_id) {
  std::lock_guard<std::mutex> lk(mu_);
  to_lose_.insert(job_id);
}

void FakeCoordinator::forget_workers() {
  std::lock_guard<std::mutex> lk(mu_);
  forgotten_ = ids_;
}

void FakeCoordinator::put_blob(const std::string& name, const std::string& bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  blobs_[sha256_hex(bytes)] = {name, bytes};
}

std::vector<v1::JobResult> FakeCoordinator::results() {
  std::lock_guard<std::mutex> lk(mu_);
  return results_;
}
std::vector<std::string> FakeCoordinator::released() {
  std::lock_guard<std::mutex> lk(mu_);
  return released_;
}
std::string FakeCoordinator::lease_of(int64_t job_id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = lease_of_.find(job_id);
  return it == lease_of_.end() ? "" : it->second;
}
int FakeCoordinator::registrations() {
  std::lock_guard<std::mutex> lk(mu_);
  return static_cast<int>(ids_.size());
}
int FakeCoordinator::lease_calls() {
  std::lock_guard<std::mutex> lk(mu_);
  return n_lease_calls_;
}
int FakeCoordinator::heartbeats() {
  std::lock_guard<std::mutex> lk(mu_);
  return n_heartbeats_;
}
int FakeCoordinator::secret_mismatches() {
  std::lock_guard<std::mutex> lk(mu_);
  return n_secret_mismatches_;
}

grpc::Status FakeCoordinator::identify_locked(const std::string& id, const std::string& secret) {
  if (!known_locked(id)) return {grpc::NOT_FOUND, "unknown worker " + id};
  if (secret_of_[id] == secret) return grpc::Status::OK;
  ++n_secret_mismatches_;
  return {grpc::PERMISSION_DENIED, "worker secret does not match worker id " + id};
}
std::map<std::string, std::string> FakeCoordinator::blobs() {
  std::lock_guard<std::mutex> lk(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [sha, nb] : blobs_) out[sha] = nb.second;
  return out;
}
std::vector<v1::Capabilities> FakeCoordinator::capabilities() {
  std::lock_guard<std::mutex> lk(mu_);
  return caps_;
}

grpc::Status FakeCoordinator::Register(grpc::ServerContext*, const v1::RegisterRequest* req,
                                       v1::RegisterResponse* resp) {
  std::lock_guard<std::mutex> lk(mu_);
  const std::string id = "w" + std::to_string(ids_.size() + 1);
  ids_.insert(id);
  caps_.push_back(req->capabilities());
  resp->set_worker_id(id);
  resp->set_worker_secret(secret_of_[id] = "secret-of-" + id);
  resp->set_heartbeat_ms(hb_ms_);
  resp->set_lease_ttl_ms(ttl_ms_);
  return grpc::Status::OK;
}

grpc::Status FakeCoordinator::Lease(grpc::ServerContext* ctx, const v1::LeaseRequest* req, v1::LeaseResponse* resp) {
  std::unique_lock<std::mutex> lk(mu_);
  ++n_lease_calls_;
  if (auto s = identify_locked(req->worker_id(), req->worker_secret()); !s.ok()) return s;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(req->wait_ms());
  while (queue_.empty() && std::chrono::steady_clock::now() < end && !ctx->IsCancelled() && serving_)
    cv_.wait_for(lk, std::chrono::milliseconds(50));
  while (!queue_.empty() && resp->jobs_size() < req->max_jobs()) {
    v1::Job j = std::move(queue_.front());
    queue_.pop_front();
    j.set_lease_id("L" + std::to_string(++n_leases_));
    lease_of_[j.job_id()] = j.lease_id();
    leased_[j.lease_id()] = j;
    *resp->add_jobs() = std::move(j);
  }
  return grpc::Status::OK;
}

grpc::Status FakeCoordinator::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                                        v1::HeartbeatResponse* resp) {
  std::lock_guard<std::mutex> lk(mu_);
  ++n_heartbeats_;
  if (auto s = identify_locked(req->worker_id(), req->worker_secret()); !s.ok()) return s;
  for (const auto& l : req->lease_ids()) {
    auto it = leased_.find(l);
    if (it != leased_.end() && to_lose_.count(it->second.job_id())) {
      resp->add_lost_lease_ids(l);
      leased_.erase(it);
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeCoordinator::Report(grpc::ServerContext*, const v1::ReportRequest* req, v1::ReportResponse* resp) {
  std::lock_guard<std::mutex> lk(mu_);
  if (auto s = identify_locked(req->worker_id(), req->worker_secret()); !s.ok()) return s;
  for (const auto& r : req->results()) {
    results_.push_back(r);  // recorded even when stale, so tests see duplicates
    if (leased_.erase(r.lease_id()))
      resp->add_accepted(r.job_id());
    else
      resp->add_refused(r.job_id());
  }
  return grpc::Status::OK;
}

grpc::Status FakeCoordinator::Release(grpc::ServerContext*, const v1::ReleaseRequest* req, v1::ReleaseResponse* resp) {
  std::lock_guard<std::mutex> lk(mu_);
  if (known_locked(req->worker_id())) (void)identify_locked(req->worker_id(), req->worker_secret());  // counts only
  int n = 0;
  for (const auto& l : req->lease_ids()) {
    released_.push_back(l);
    n += static_cast<int>(leased_.erase(l));
  }
  resp->set_released(n);
  return grpc::Status::OK;
}

grpc::Status FakeCoordinator::PutBlob(grpc::ServerContext*, grpc::ServerReader<v1::BlobChunk>* reader,
                                      v1::PutBlobResponse* resp) {
  v1::BlobChunk c;
  std::string data, name, want;
  bool first = true;
  while (reader->Read(&c)) {
    if (first) {
      name = c.name();
      want = c.sha256();
      first = false;
    }
    data += c.data();
  }
  const std::string sha = sha256_hex(data);
  if (!want.empty() && want != sha) return {grpc::INVALID_ARGUMENT, "sha256 mismatch"};
  std::lock_guard<std::mutex> lk(mu_);
  blobs_[sha] = {name, data};
  resp->mutable_artifact()->set_sha256(sha);
  resp->mutable_artifact()->set_name(name);
  resp->mutable_artifact()->set_size(static_cast<int64_t>(data.size()));
  return grpc::Status::OK;
}

grpc::Status FakeCoordinator::FetchBlob(grpc::ServerContext*, const v1::FetchBlobRequest* req,
                                        grpc::ServerWriter<v1::BlobChunk>* writer) {
  std::string sha, name, data;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [s, nb] : blobs_)
      if (s == req->sha256() || (!req->name().empty() && nb.first == req->name())) {
        sha = s;
        name = nb.first;
        data = nb.second;
      }
  }
  if (sha.empty()) return {grpc::NOT_FOUND, "no such blob"};
  v1::BlobChunk c;
  c.set_sha256(sha);
  c.set_name(name);
  c.set_total_size(static_cast<int64_t>(data.size()));
  const size_t step = 1000;  // several chunks even for small test blobs
  for (size_t off = 0; off == 0 || off < data.size(); off += step) {
    c.set_data(data.substr(off, step));
    writer->Write(c);
    c.Clear();
  }
  return grpc::Status::OK;
}

}  // namespace spt::test
