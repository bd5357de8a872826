// spt-server: the coordinator. Flags around server::Server, plus logging and
// signal handling (SIGINT/SIGTERM -> graceful shutdown).
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "server.h"
#include "tls.h"
#include "spt/cli_conventions.h"
#include "spt/json_log.h"
#include "spt/ops_flags.h"
#include "spt/metrics.h"
#include "spt/version.h"

int main(int argc, char** argv) {
  using namespace spt::server;
  CLI::App app{"spt-server: the spt coordinator (SQLite store, scheduler, artifact store, gRPC API)"};
  ServerConfig cfg;
  std::string token_file, log_level = "info";
  std::string worker_token_file, submitter_token_file;  // roles (issue 12)
  int64_t lease_ttl_ms = cfg.store.lease_ttl_ms, heartbeat_ms = cfg.store.heartbeat_ms,
          backoff_ms = cfg.store.backoff_base_ms, backoff_cap_ms = cfg.store.backoff_cap_ms;
  int max_attempts = cfg.store.max_attempts;
  app.add_option("--listen", cfg.listen, "host:port to serve on (port 0 = any free port)")->capture_default_str();
  app.add_option("--db", cfg.db_path, "SQLite database file (default <data-dir>/spt.db)");
  app.add_option("--data-dir", cfg.data_dir, "blob store and generated token live here")->capture_default_str();
  app.add_option("--token-file", token_file,
                 "file holding the bearer token (default $SPT_TOKEN, else <data-dir>/token, generated if absent)");
  app.add_option("--worker-token-file", worker_token_file,
                 "token of the worker role: WorkerService only (default <data-dir>/worker-token, generated if absent)");
  app.add_option("--submitter-token-file", submitter_token_file,
                 "token of the submitter role: submit, status, results, cancel, retry, logs, blobs, list workers "
                 "(default <data-dir>/submitter-token, generated if absent); --token-file's admin token may do all");
  // issue 12: TLS, and plaintext only on loopback unless --insecure.
  app.add_option("--tls-cert", cfg.tls_cert, "PEM server certificate (chain); enables TLS (make one: spt-certs.sh)");
  app.add_option("--tls-key", cfg.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", cfg.tls_client_ca,
                 "PEM CA bundle: clients and workers must present a certificate it signed (mTLS)");
  app.add_flag("--insecure", cfg.insecure,
               "allow plaintext on a non-loopback --listen address (token and traffic unencrypted)");
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
  // issue 12: a coordinator no submission can sink.
  app.add_option("--max-jobs-per-submission", cfg.submit_limits.max_jobs,
                 "refuse a submission whose plan has more jobs (RESOURCE_EXHAUSTED)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--max-submission-bytes", cfg.submit_limits.max_bytes,
                 "refuse a larger submission request (params, tag)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 30));
  // Report hardening (issue 12): results are small JSON (arrays travel as
  // artifacts); reduce inputs above the second limit travel as a blob.
  app.add_option("--max-result-bytes", cfg.store.max_result_bytes,
                 "a job result (result_json) larger than this fails its job with a clear error")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1024}, int64_t{15} << 20));
  app.add_option("--inline-inputs-max-bytes", cfg.store.inline_inputs_max_bytes,
                 "a job whose upstream results exceed this gets them as one blob instead of inside its lease")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{8} << 20));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string log_format = "text";
  spt::cli::add_ops_flags(app, log_format, cfg.metrics_listen);
  app.set_version_flag("--version", std::string("spt-server ") + SPT_CODE_VERSION);
  app.footer(spt::cli::footer(
      {{"spt-server", "serve on 127.0.0.1:7070, state in ./spt-data"},
       {"spt-server --listen 0.0.0.0:7070 --tls-cert server.pem --tls-key server.key", "serve the network over TLS"},
       {"spt-certs.sh certs coordinator.lab 10.0.0.5", "make a CA, server and client certificates"},
       {"spt-server --listen 0.0.0.0 --insecure", "plaintext on 7070 (trusted networks only)"}},
      {{"SPT_TOKEN", "bearer token (when --token-file is not given)"}}));
  if (const int rc = spt::cli::parse(app, argc, argv); rc >= 0) return rc;
  cfg.listen = spt::cli::with_default_port(cfg.listen, spt::cli::kDefaultPort);

  spdlog::set_level(spdlog::level::from_str(log_level));
  if (log_format == "json") spt::log::use_json_format("spt-server");
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
    check_listen_policy(cfg.listen, !cfg.tls_cert.empty() || !cfg.tls_key.empty(), cfg.insecure);  // before any file is made
    cfg.token = resolve_token(token_file, cfg.data_dir, &source);
    spdlog::info("bearer token {}", source);
    cfg.worker_token = resolve_role_token(worker_token_file, cfg.data_dir, "worker", &source);
    spdlog::info("worker token {}", source);
    cfg.submitter_token = resolve_role_token(submitter_token_file, cfg.data_dir, "submitter", &source);
    spdlog::info("submitter token {}", source);
    if (cfg.worker_token == cfg.token || cfg.submitter_token == cfg.token || cfg.worker_token == cfg.submitter_token)
      spdlog::warn("two roles share one token: they are not separated");
    server = Server::start(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spt-server: error: %s\n", e.what());
    return 1;
  }
  spdlog::info("spt-server {} store {} (schema v{}), data {}", SPT_CODE_VERSION,
               cfg.db_path.empty() ? cfg.data_dir + "/spt.db" : cfg.db_path, Store::schema_version(), cfg.data_dir);
  const char* transport = cfg.tls_cert.empty()         ? " (plaintext)"
                          : cfg.tls_client_ca.empty() ? " (TLS)"
                                                      : " (TLS, client certificates required)";
  if (log_format == "json")  // stdout stays one JSON object per line
    spdlog::info("spt-server listening on {}{}", server->address(), transport);
  else
    std::printf("spt-server listening on %s%s\n", server->address().c_str(), transport);
  if (!cfg.metrics_listen.empty()) spdlog::info("metrics on http://{}/metrics", server->metrics_address());
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
