#include "server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "spt/util.h"

namespace spt::server {

namespace {

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(s.find_last_not_of(ws) + 1);
  s.erase(0, s.find_first_not_of(ws));
  return s;
}

std::string read_token(const std::string& path) {
  std::string t = trim(read_file(path));
  if (t.empty()) throw std::runtime_error("token file " + path + " is empty");
  return t;
}

}  // namespace

std::string resolve_token(const std::string& token_file, const std::string& data_dir, std::string* source) {
  if (!token_file.empty()) {
    *source = "from " + token_file;
    return read_token(token_file);
  }
  if (const char* env = std::getenv("SPT_TOKEN"); env && *env) {
    *source = "from $SPT_TOKEN";
    return trim(env);
  }
  const std::string path = data_dir + "/token";
  if (::access(path.c_str(), F_OK) == 0) {
    *source = "from " + path;
    return read_token(path);
  }
  std::filesystem::create_directories(data_dir);
  unsigned char r[32];
  if (RAND_bytes(r, sizeof r) != 1) throw std::runtime_error("RAND_bytes failed");
  std::string token;
  static const char* d = "0123456789abcdef";
  for (unsigned char c : r) {
    token += d[c >> 4];
    token += d[c & 15];
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  const std::string line = token + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path);
  *source = "generated into " + path + " (pass it to workers and clients with --token-file)";
  return token;
}

std::unique_ptr<Server> Server::start(ServerConfig cfg) {
  if (cfg.token.empty()) throw std::runtime_error("no bearer token configured");
  if (cfg.db_path.empty()) cfg.db_path = cfg.data_dir + "/spt.db";
  std::error_code ec;
  std::filesystem::create_directories(cfg.data_dir, ec);
  if (ec) throw std::runtime_error("cannot create data dir " + cfg.data_dir + ": " + ec.message());

  std::unique_ptr<Server> s(new Server());
  s->cfg_ = cfg;
  s->store_ = Store::open(cfg.db_path, cfg.store);
  s->blobs_ = std::make_unique<BlobStore>(cfg.data_dir);
  s->auth_ = std::make_unique<Auth>(cfg.token);
  s->worker_svc_ = std::make_unique<WorkerServiceImpl>(*s->store_, *s->blobs_, *s->auth_);
  s->control_svc_ = std::make_unique<ControlServiceImpl>(*s->store_, *s->blobs_, *s->auth_);

  grpc::ServerBuilder b;
  // gRPC sets SO_REUSEPORT by default, so a second coordinator on the same
  // port would share it and clients would alternate between the two.
  b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  b.AddListeningPort(cfg.listen, grpc::InsecureServerCredentials(), &s->port_);
  b.RegisterService(s->worker_svc_.get());
  b.RegisterService(s->control_svc_.get());
  b.SetMaxReceiveMessageSize(cfg.max_message_bytes);
  b.SetMaxSendMessageSize(-1);  // lease batches with many inputs may be large
  s->grpc_ = b.BuildAndStart();
  if (!s->grpc_ || s->port_ == 0)
    throw std::runtime_error("cannot listen on " + cfg.listen +
                             ": address in use or unavailable (is another spt-server running there?)");

  s->reaper_ = std::thread([srv = s.get()] {
    while (!srv->stop_.load()) {
      try {
        if (int n = srv->store_->reap_expired()) spdlog::info("reaper: {} expired leases", n);
      } catch (const std::exception& e) {
        spdlog::error("reaper: {}", e.what());
      }
      for (int slept = 0; slept < srv->cfg_.reaper_interval_ms && !srv->stop_.load(); slept += 50)
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50, srv->cfg_.reaper_interval_ms)));
    }
  });
  return s;
}

std::string Server::address() const {
  const auto colon = cfg_.listen.rfind(':');
  return cfg_.listen.substr(0, colon) + ":" + std::to_string(port_);
}

void Server::shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (store_) store_->shutdown();  // long-polls return empty now
    if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    stop_ = true;
    if (reaper_.joinable()) reaper_.join();
  });
}

void Server::wait() {
  if (grpc_) grpc_->Wait();
}

Server::~Server() {
  shutdown();
  wait();
}

}  // namespace spt::server
