// spt-server: the coordinator. Flags around server::Server, plus logging and
// signal handling (SIGINT/SIGTERM -> graceful shutdown).
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "server.h"
#include "spt/cli_conventions.h"
#include "spt/version.h"

int main(int argc, char** argv) {
  using namespace spt::server;
  CLI::App app{"spt-server: the spt coordinator (SQLite store, scheduler, artifact store, gRPC API)"};
  ServerConfig cfg;
  std::string token_file, log_level = "info";
  int64_t lease_ttl_ms = cfg.store.lease_ttl_ms, heartbeat_ms = cfg.store.heartbeat_ms,
          backoff_ms = cfg.store.backoff_base_ms, backoff_cap_ms = cfg.store.backoff_cap_ms;
  int max_attempts = cfg.store.max_attempts;
  app.add_option("--listen", cfg.listen, "host:port to serve on (port 0 = any free port)")->capture_default_str();
  app.add_option("--db", cfg.db_path, "SQLite database file (default <data-dir>/spt.db)");
  app.add_option("--data-dir", cfg.data_dir, "blob store and generated token live here")->capture_default_str();
  app.add_option("--token-file", token_file,
                 "file holding the bearer token (default $SPT_TOKEN, else <data-dir>/token, generated if absent)");
  app.add_option("--lease-ttl-ms", lease_ttl_ms, "a lease not renewed within this is lost")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{86400000}));
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval advised to workers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  app.add_option("--max-attempts", max_attempts, "leases per job before it fails (plans may override)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--backoff-ms", backoff_ms, "retry backoff base: attempt n waits base*2^(n-1)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{3600000}));
  app.add_option("--backoff-cap-ms", backoff_cap_ms, "longest retry backoff")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{86400000}));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.set_version_flag("--version", std::string("spt-server ") + SPT_CODE_VERSION);
  app.footer(spt::cli::footer(
      {{"spt-server", "serve on 127.0.0.1:7070, state in ./spt-data"},
       {"spt-server --listen 0.0.0.0:7070 --data-dir /var/lib/spt", "serve the network"},
       {"spt-server --listen 0.0.0.0", "a host without a port listens on 7070"}},
      {{"SPT_TOKEN", "bearer token (when --token-file is not given)"}}));
  if (const int rc = spt::cli::parse(app, argc, argv); rc >= 0) return rc;
  cfg.listen = spt::cli::with_default_port(cfg.listen, spt::cli::kDefaultPort);

  spdlog::set_level(spdlog::level::from_str(log_level));
  cfg.store.lease_ttl_ms = lease_ttl_ms;
  cfg.store.heartbeat_ms = heartbeat_ms;
  cfg.store.max_attempts = max_attempts;
  cfg.store.backoff_base_ms = backoff_ms;
  cfg.store.backoff_cap_ms = backoff_cap_ms;
  if (heartbeat_ms >= lease_ttl_ms)
    spdlog::warn("--heartbeat-ms {} >= --lease-ttl-ms {}: leases will expire between heartbeats", heartbeat_ms,
                 lease_ttl_ms);

  // Block the signals in every thread (gRPC's included); one thread waits.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  std::unique_ptr<Server> server;
  try {
    std::string source;
    cfg.token = resolve_token(token_file, cfg.data_dir, &source);
    spdlog::info("bearer token {}", source);
    server = Server::start(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spt-server: error: %s\n", e.what());
    return 1;
  }
  spdlog::info("spt-server {} store {} (schema v{}), data {}", SPT_CODE_VERSION,
               cfg.db_path.empty() ? cfg.data_dir + "/spt.db" : cfg.db_path, Store::schema_version(), cfg.data_dir);
  std::printf("spt-server listening on %s\n", server->address().c_str());
  std::fflush(stdout);

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    spdlog::info("{}: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server->shutdown();
  });
  server->wait();
  waiter.join();
  spdlog::info("bye");
  return 0;
}
