#pragma once
// spt-server as a library: the store, the blob store, both gRPC services and
// the lease reaper, started and stopped together. main.cc is flags around
// this; integration tests start it in-process on port 0.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "artifacts.h"
#include "metrics.h"
#include "service.h"
#include "store.h"

namespace grpc {
class Server;
}

namespace spt::server {

struct ServerConfig {
  std::string listen = "127.0.0.1:7070";  // host:port; port 0 picks a free one
  std::string data_dir = "spt-data";      // blobs/, tmp/, token
  std::string db_path;                    // "" = <data_dir>/spt.db
  std::string token;                      // bearer token; required
  // Role tokens (issue 12, see service.h Role); "" = none: only the admin
  // token (`token`) then works, for every RPC.
  std::string worker_token, submitter_token;
  StoreOptions store;
  int reaper_interval_ms = 250;
  int max_message_bytes = 16 << 20;       // larger requests: RESOURCE_EXHAUSTED
  // TLS (issue 12, see tls.h): PEM files; no cert = plaintext, which start()
  // refuses on a non-loopback address unless `insecure`.
  std::string tls_cert, tls_key;
  std::string tls_client_ca;  // set: clients must present a certificate it signed
  bool insecure = false;
  // Prometheus /metrics and /healthz over HTTP (issue 12, metrics.h); "" = off.
  std::string metrics_listen;
  // Per-submission limits (issue 12, service.h SubmitLimits).
  SubmitLimits submit_limits;
};

class Server {
 public:
  // Opens the store (StoreOpenError if unusable), binds, starts serving.
  // Throws std::runtime_error if the address cannot be bound.
  static std::unique_ptr<Server> start(ServerConfig cfg);
  ~Server();  // shutdown() + wait()

  std::string address() const;  // host:port actually bound
  int port() const { return port_; }
  std::string metrics_address() const;  // host:port of /metrics; "" when off
  Store& store() { return *store_; }

  // Graceful: ends long-polls, lets in-flight RPCs finish (up to a few
  // seconds), stops the reaper. Safe to call from any thread, repeatedly.
  void shutdown();
  void wait();  // until shutdown() has completed

 private:
  Server() = default;
  void set_serving(bool on);  // health service status and /healthz
  ServerConfig cfg_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<Auth> auth_;
  std::unique_ptr<WorkerServiceImpl> worker_svc_;
  std::unique_ptr<ControlServiceImpl> control_svc_;
  // issue 12 operations: metrics (interceptor + HTTP endpoint) and health;
  // metrics_ outlives grpc_, whose interceptors use it.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<metrics::HttpEndpoint> metrics_http_;
  std::atomic<bool> serving_{false};
  int port_ = 0;
  std::thread reaper_;
  std::atomic<bool> stop_{false};
  std::once_flag shutdown_once_;
};

// The admin bearer token: the contents of token_file if given, else $SPT_TOKEN,
// else <data_dir>/token, created (mode 0600) with a random token if absent.
// `source` receives a description for the log. Throws std::runtime_error.
std::string resolve_token(const std::string& token_file, const std::string& data_dir, std::string* source);
// A role's token (role "worker" or "submitter"): the contents of token_file
// if given, else <data_dir>/<role>-token, created (mode 0600) if absent.
std::string resolve_role_token(const std::string& token_file, const std::string& data_dir, const std::string& role,
                               std::string* source);

}  // namespace spt::server
