// spt-worker: the job-running daemon. See worker.h for its contract.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "client/connection.h"
#include "spt/cli_conventions.h"
#include "spt/job.h"
#include "spt/version.h"
#include "capabilities.h"
#include "worker.h"
#include "worker_metrics.h"
#include "spt/json_log.h"
#include "spt/ops_flags.h"
#include "spt/metrics.h"

namespace {

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("SPT_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/spt";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/spt";
  return "/tmp/spt-cache";
}

std::string default_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host[0] ? host : "worker") + "-" + std::to_string(getpid());
}

}  // namespace

int main(int argc, char** argv) {
  spt::worker::Options opt;
  const char* env_server = std::getenv("SPT_SERVER");
  if (env_server && *env_server) opt.server = env_server;
  opt.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  opt.name = default_name();
  opt.cache_dir = default_cache_dir();
  std::string token_file, log_level = "info", models;

  CLI::App app{"spt-worker: leases spt jobs from an spt-server and runs them"};
  app.set_version_flag("--version", std::string("spt-worker ") + SPT_CODE_VERSION);
  app.add_option("--server", opt.server, "coordinator address host:port (env SPT_SERVER)")->capture_default_str();
  app.add_option("--token-file", token_file,
                 "file holding the worker token (the server's <data-dir>/worker-token; else env SPT_TOKEN / "
                 "SPT_TOKEN_FILE)");
  // issue 12: TLS to the coordinator (env SPT_TLS_* when the flag is absent).
  app.add_option("--tls-ca", opt.tls.ca_file, "PEM CA that signed the server's certificate; enables TLS (env SPT_TLS_CA)");
  app.add_option("--tls-cert", opt.tls.cert_file, "PEM client certificate, for servers that require one (env SPT_TLS_CERT)");
  app.add_option("--tls-key", opt.tls.key_file, "PEM key of --tls-cert (env SPT_TLS_KEY)");
  app.add_option("--tls-server-name", opt.tls.server_name,
                 "name to check in the server's certificate instead of --server's host (env SPT_TLS_SERVER_NAME)");
  app.add_option("--device", opt.device, "cpu | cuda | cuda:N | mps")
      ->capture_default_str()
      ->check([](const std::string& d) -> std::string {
        if (d == "cpu" || d == "mps" || d == "cuda") return "";
        if (d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.find_first_not_of("0123456789", 5) == std::string::npos)
          return "";
        return "device must be cpu, cuda, cuda:N or mps (got '" + d + "')";
      });
  app.add_option("--slots", opt.slots, "job groups run concurrently")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--threads", opt.threads, "compute threads per job")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--batch", opt.batch, "max jobs per lease")->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--name", opt.name, "worker name shown by spt-client workers")->capture_default_str();
  app.add_option("--cache-dir", opt.cache_dir, "model/dataset cache and scratch space (env SPT_CACHE_DIR)")
      ->capture_default_str();
  app.add_option("--job-timeout-s", opt.job_timeout_s, "default per-job timeout, 0 = none")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--drain-timeout-s", opt.drain_timeout_s, "on SIGTERM, how long running jobs may finish")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--lease-wait-ms", opt.lease_wait_ms, "long-poll duration of a lease request")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  app.add_option("--models", models, "comma-separated models this worker can load without fetching");
  std::string memory;
  app.add_option("--memory", memory,
                 "memory this worker offers to hold, e.g. 16G or 512M (default: the GPU's total, or RAM / the "
                 "cgroup limit less headroom); jobs planned to need more are not leased to it")
      ->check([](const std::string& v) -> std::string {
        try {
          spt::worker::parse_bytes(v);
          return "";
        } catch (const std::exception& e) {
          return e.what();
        }
      });
  app.add_option("--canary-every-s", opt.canary_every_s,
                 "re-run the numerics canary this often (0 = only at registration)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--log-level", log_level, "log verbosity")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string log_format = "text", metrics_listen;
  spt::cli::add_ops_flags(app, log_format, metrics_listen);
  app.footer(spt::cli::footer(
      {{"spt-worker --server coordinator:7070 --token-file worker-token", "one CPU worker"},
       {"spt-worker --server coordinator --device cuda --slots 1", "a GPU worker (port defaults to 7070)"},
       {"kill -TERM <pid>", "drain: finish running jobs, hand the rest back, exit"}},
      {{"SPT_SERVER", "coordinator address (when --server is not given)"},
       {"SPT_TOKEN / SPT_TOKEN_FILE", "worker token, or the file holding it"},
       {"SPT_TLS_CA, SPT_TLS_CERT, SPT_TLS_KEY", "as --tls-ca, --tls-cert, --tls-key (SPT_TLS_SERVER_NAME too)"},
       {"SPT_CACHE_DIR", "model/dataset cache (when --cache-dir is not given)"},
       {"SPT_TOKENIZER_DIR", "GPT-2 tokenizer files (vocab.json, merges.txt), overriding the built-in search"},
       {"SPT_MODEL_CACHE", "models kept loaded per worker (default 2)"}}));
  if (const int rc = spt::cli::parse(app, argc, argv); rc >= 0) return rc;
  opt.server = spt::cli::with_default_port(opt.server, spt::cli::kDefaultPort);
  spt::rpc::tls_from_env(opt.tls);

  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e [" + opt.name + "] %^%l%$ %v");
  if (log_format == "json") spt::log::use_json_format("spt-worker", {{"worker", opt.name}});
  try {
    opt.token = spt::rpc::load_token("", token_file);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  // Probed once here (nvidia-smi on a GPU) and read by registration and metrics alike.
  opt.memory_bytes = memory.empty() ? spt::worker::default_memory_bytes(opt.device) : spt::worker::parse_bytes(memory);
  for (size_t b = 0; !models.empty() && b <= models.size();) {
    const size_t e = std::min(models.find(',', b), models.size());
    if (e > b) opt.models.push_back(models.substr(b, e - b));
    b = e + 1;
  }

  // SIGTERM/SIGINT become a drain. Threads that libraries started before
  // main() (LibTorch's pools) may receive the signal, so a handler is
  // installed for the process rather than relying on a blocked mask; it
  // only writes the signal number to a pipe that a plain thread reads.
  if (pipe(g_signal_pipe) != 0) {
    spdlog::error("pipe: {}", std::strerror(errno));
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  spt::ExecutorRegistry reg;
  try {
    spt::register_all_executors(reg);
  } catch (const std::exception& e) {
    spdlog::error("cannot set up executors: {}", e.what());
    return 1;
  }
  if (reg.hooks.check_device) {
    try {
      spdlog::info("device {}", reg.hooks.check_device(opt.device));
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 2;
    }
  } else if (opt.device != "cpu") {
    spdlog::error("device {}: this spt-worker was built without LibTorch and runs CPU-only jobs (selftest)", opt.device);
    return 2;
  }
  spt::worker::Worker worker(opt, reg);
  std::thread([&worker, drain_s = opt.drain_timeout_s] {
    int n = 0;
    unsigned char sig = 0;
    while (read(g_signal_pipe[0], &sig, 1) == 1) {
      if (++n == 1) {
        spdlog::info("{} received: draining (finishing running jobs for up to {} s)", strsignal(sig), drain_s);
        worker.drain();
      } else {
        spdlog::warn("second {}: exiting now", strsignal(sig));
        spdlog::default_logger()->flush();
        std::_Exit(1);
      }
    }
  }).detach();
  std::unique_ptr<spt::worker::WorkerMetrics> metrics;
  std::unique_ptr<spt::metrics::HttpEndpoint> metrics_http;
  if (!metrics_listen.empty()) {
    try {
      metrics = std::make_unique<spt::worker::WorkerMetrics>(worker, reg, opt);
      metrics_http = spt::metrics::HttpEndpoint::start(metrics_listen, [m = metrics.get()] { return m->render(); });
      spdlog::info("metrics on http://{}/metrics", metrics_http->address());
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 1;
    }
  }
  try {
    return worker.run();
  } catch (const std::exception& e) {
    spdlog::error("fatal: {}", e.what());
    return 1;
  }
}
