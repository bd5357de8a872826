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
#include "tls.h"

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

namespace {

// The token in `path`, or a new random one written there (mode 0600, O_EXCL)
// when the file does not exist. `use` ends the log line of a generated one.
std::string token_at(const std::string& path, const std::string& data_dir, const std::string& use,
                     std::string* source) {
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
  *source = "generated into " + path + " (" + use + ")";
  return token;
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
  return token_at(data_dir + "/token", data_dir,
                  "the admin token: keep it for operators; give workers worker-token, researchers submitter-token",
                  source);
}

std::string resolve_role_token(const std::string& token_file, const std::string& data_dir, const std::string& role,
                               std::string* source) {
  if (!token_file.empty()) {
    *source = "from " + token_file;
    return read_token(token_file);
  }
  return token_at(data_dir + "/" + role + "-token", data_dir,
                  role == "worker" ? "pass it to spt-worker with --token-file"
                                   : "pass it to spt-client with --token-file or token_file in its config",
                  source);
}

std::unique_ptr<Server> Server::start(ServerConfig cfg) {
  if (cfg.token.empty()) throw std::runtime_error("no bearer token configured");
  if (cfg.db_path.empty()) cfg.db_path = cfg.data_dir + "/spt.db";
  // Transport checks first: a bad certificate must not cost a store open.
  const ServerTls tls{cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca};
  check_listen_policy(cfg.listen, tls.enabled(), cfg.insecure);
  const auto creds = server_credentials(tls);
  std::error_code ec;
  std::filesystem::create_directories(cfg.data_dir, ec);
  if (ec) throw std::runtime_error("cannot create data dir " + cfg.data_dir + ": " + ec.message());

  std::unique_ptr<Server> s(new Server());
  s->cfg_ = cfg;
  s->store_ = Store::open(cfg.db_path, cfg.store);
  s->blobs_ = std::make_unique<BlobStore>(cfg.data_dir);
  s->auth_ = std::make_unique<Auth>(cfg.token, cfg.worker_token, cfg.submitter_token);
  s->worker_svc_ = std::make_unique<WorkerServiceImpl>(*s->store_, *s->blobs_, *s->auth_);
  s->control_svc_ = std::make_unique<ControlServiceImpl>(*s->store_, *s->blobs_, *s->auth_);
  s->control_svc_->set_submit_limits(cfg.submit_limits);

  // The standard grpc.health.v1.Health service (Check/Watch): SERVING once
  // started, NOT_SERVING from the start of shutdown().
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder b;
  if (!cfg.metrics_listen.empty()) {
    s->metrics_ = std::make_unique<ServerMetrics>(*s->store_, cfg.db_path);
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> icpt;
    icpt.push_back(s->metrics_->interceptor_factory());
    b.experimental().SetInterceptorCreators(std::move(icpt));
  }
  // gRPC sets SO_REUSEPORT by default, so a second coordinator on the same
  // port would share it and clients would alternate between the two.
  b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  b.AddListeningPort(cfg.listen, creds, &s->port_);
  b.RegisterService(s->worker_svc_.get());
  b.RegisterService(s->control_svc_.get());
  b.SetMaxReceiveMessageSize(cfg.max_message_bytes);
  b.SetMaxSendMessageSize(-1);  // lease batches with many inputs may be large
  s->grpc_ = b.BuildAndStart();
  if (!s->grpc_ || s->port_ == 0)
    throw std::runtime_error("cannot listen on " + cfg.listen +
                             ": address in use or unavailable (is another spt-server running there?)");
  s->set_serving(true);
  if (s->metrics_)
    s->metrics_http_ = metrics::HttpEndpoint::start(
        cfg.metrics_listen, [m = s->metrics_.get()] { return m->render(); },
        [srv = s.get()] { return srv->serving_.load(); });

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
    if (grpc_) set_serving(false);  // health checks see NOT_SERVING while in-flight RPCs finish
    if (store_) store_->shutdown();  // long-polls return empty now
    if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    stop_ = true;
    if (reaper_.joinable()) reaper_.join();
    if (metrics_http_) metrics_http_->stop();
  });
}

void Server::set_serving(bool on) {
  serving_ = on;
  auto* h = grpc_->GetHealthCheckService();
  if (!h) return;
  h->SetServingStatus(on);  // "" (the whole server)
  for (const char* svc : {"spt.v1.WorkerService", "spt.v1.ControlService"}) h->SetServingStatus(svc, on);
}

std::string Server::metrics_address() const { return metrics_http_ ? metrics_http_->address() : ""; }

void Server::wait() {
  if (grpc_) grpc_->Wait();
}

Server::~Server() {
  shutdown();
  wait();
}

}  // namespace spt::server
