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
  StoreOptions store;
  int reaper_interval_ms = 250;
  int max_message_bytes = 16 << 20;       // larger requests: RESOURCE_EXHAUSTED
};

class Server {
 public:
  // Opens the store (StoreOpenError if unusable), binds, starts serving.
  // Throws std::runtime_error if the address cannot be bound.
  static std::unique_ptr<Server> start(ServerConfig cfg);
  ~Server();  // shutdown() + wait()

  std::string address() const;  // host:port actually bound
  int port() const { return port_; }
  Store& store() { return *store_; }

  // Graceful: ends long-polls, lets in-flight RPCs finish (up to a few
  // seconds), stops the reaper. Safe to call from any thread, repeatedly.
  void shutdown();
  void wait();  // until shutdown() has completed

 private:
  Server() = default;
  ServerConfig cfg_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<Auth> auth_;
  std::unique_ptr<WorkerServiceImpl> worker_svc_;
  std::unique_ptr<ControlServiceImpl> control_svc_;
  std::unique_ptr<grpc::Server> grpc_;
  int port_ = 0;
  std::thread reaper_;
  std::atomic<bool> stop_{false};
  std::once_flag shutdown_once_;
};

// The bearer token: the contents of token_file if given, else $SPT_TOKEN,
// else <data_dir>/token, created (mode 0600) with a random token if absent.
// `source` receives a description for the log. Throws std::runtime_error.
std::string resolve_token(const std::string& token_file, const std::string& data_dir, std::string* source);

}  // namespace spt::server
