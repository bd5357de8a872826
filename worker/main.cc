// spt-worker: the job-running daemon. See worker.h for its contract.
#include <csignal>
#include <cstdlib>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "client/connection.h"
#include "spt/job.h"
#include "spt/version.h"
#include "worker.h"

namespace {

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
  app.set_version_flag("--version", SPT_CODE_VERSION);
  app.add_option("--server", opt.server, "coordinator address host:port (env SPT_SERVER)")->capture_default_str();
  app.add_option("--token-file", token_file, "file holding the bearer token (else env SPT_TOKEN / SPT_TOKEN_FILE)");
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
  app.add_option("--log-level", log_level, "log verbosity")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e [" + opt.name + "] %^%l%$ %v");
  try {
    opt.token = spt::rpc::load_token("", token_file);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  for (size_t b = 0; !models.empty() && b <= models.size();) {
    const size_t e = std::min(models.find(',', b), models.size());
    if (e > b) opt.models.push_back(models.substr(b, e - b));
    b = e + 1;
  }

  // Signals go to one thread that turns them into a drain; every other
  // thread inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  spt::ExecutorRegistry reg;
  try {
    spt::register_all_executors(reg);
  } catch (const std::exception& e) {
    spdlog::error("cannot set up executors: {}", e.what());
    return 1;
  }
  spt::worker::Worker worker(opt, reg);
  std::thread([&worker, set, drain_s = opt.drain_timeout_s] {
    int sig = 0, n = 0;
    while (sigwait(&set, &sig) == 0) {
      if (++n == 1) {
        spdlog::info("{} received: draining (finishing running jobs for up to {} s)", strsignal(sig),
                     drain_s);
        worker.drain();
      } else {
        spdlog::warn("second {}: exiting now", strsignal(sig));
        spdlog::default_logger()->flush();
        std::_Exit(1);
      }
    }
  }).detach();
  try {
    return worker.run();
  } catch (const std::exception& e) {
    spdlog::error("fatal: {}", e.what());
    return 1;
  }
}
