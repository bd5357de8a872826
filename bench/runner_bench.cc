// runner_bench: unit completions per second through the real coordinator.
//
// For each worker count W it starts a fresh spt-server (SQLite in a temp
// dir) and W spt-worker processes on loopback, submits a selftest sweep of
// trivial jobs (work=0), and times submit -> experiment done. It reports
// completions/s, wall time per unit, and CPU time per unit spent in the
// server and in the workers (from /proc), which is the per-unit overhead of
// the runner itself since the jobs do no work. --tls runs the same over TLS
// (certificates from scripts/spt-certs.sh, server-authenticated only).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "children.h"
#include "client/connection.h"
#include "spt/util.h"


namespace {

namespace fs = std::filesystem;
namespace v1 = spt::v1;
using spt::bench::Child;
using spt::bench::cpu_s;
using spt::bench::free_port;
using spt::bench::stop;

// Children see no SPT_* variable of the bench's environment.
Child spawn(const std::vector<std::string>& argv, const std::string& log, const std::string& token) {
  return spt::bench::spawn(argv, log, token, [](const std::string& e) { return e.rfind("SPT_", 0) == 0; });
}

struct Row {
  int workers;
  int64_t units;
  double wall_s, submit_s, server_cpu_s, worker_cpu_s;
};

// TLS for one run: empty certs_dir = plaintext.
struct BenchTls {
  std::string certs_dir;
  std::vector<std::string> server_args() const {
    if (certs_dir.empty()) return {};
    return {"--tls-cert", certs_dir + "/server.pem", "--tls-key", certs_dir + "/server.key"};
  }
  std::vector<std::string> worker_args() const {
    if (certs_dir.empty()) return {};
    return {"--tls-ca", certs_dir + "/ca.pem"};
  }
  spt::rpc::TlsOptions client() const {
    spt::rpc::TlsOptions t;
    if (!certs_dir.empty()) t.ca_file = certs_dir + "/ca.pem";
    return t;
  }
};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

bool run_one(const std::string& server_bin, const std::string& worker_bin, int W, int64_t n, int batch, int slots,
             const std::string& tmp_root, const BenchTls& tls, Row* row) {
  const std::string dir = tmp_root + "/w" + std::to_string(W);
  fs::create_directories(dir);
  const std::string token = "bench-token";
  spt::write_file_atomic(dir + "/token", token + "\n");
  const std::string addr = "127.0.0.1:" + std::to_string(free_port());
  Child server = spawn(std::vector<std::string>{server_bin, "--listen", addr, "--db", dir + "/spt.db", "--data-dir",
                                                dir + "/data", "--token-file", dir + "/token"} +
                           tls.server_args(),
                       dir + "/server.log", token);
  auto stub = v1::ControlService::NewStub(spt::rpc::make_channel(addr, tls.client()));
  auto call_status = [&](v1::StatusResponse* resp, int64_t id) {
    grpc::ClientContext ctx;
    spt::rpc::prepare(ctx, token, 5, true);
    v1::StatusRequest req;
    if (id) req.mutable_experiment()->set_id(id);
    return stub->Status(&ctx, req, resp);
  };
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    v1::StatusResponse r;
    up = call_status(&r, 0).ok();
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!up) {
    std::fprintf(stderr, "server did not start; see %s/server.log\n", dir.c_str());
    stop(server);
    return false;
  }
  std::vector<Child> workers;
  for (int w = 0; w < W; ++w)
    workers.push_back(spawn(std::vector<std::string>{worker_bin, "--server", addr, "--name",
                                                     "bench-" + std::to_string(w), "--slots", std::to_string(slots),
                                                     "--threads", "1", "--batch", std::to_string(batch),
                                                     "--cache-dir", dir + "/cache"} +
                                tls.worker_args(),
                            dir + "/worker-" + std::to_string(w) + ".log", token));
  // Wait for every worker to register.
  for (int i = 0; i < 200; ++i) {
    v1::StatusResponse r;
    if (call_status(&r, 0).ok() && r.workers_size() >= W) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<double> cpu0;
  cpu0.push_back(cpu_s(server.pid));
  for (auto& w : workers) cpu0.push_back(cpu_s(w.pid));

  const double t0 = spt::monotonic_s();
  v1::SubmitResponse sub;
  {
    grpc::ClientContext ctx;
    spt::rpc::prepare(ctx, token, 120, true);
    v1::SubmitRequest req;
    req.set_experiment("selftest");
    (*req.mutable_params())["n"] = std::to_string(n);
    (*req.mutable_params())["work"] = "0";
    const grpc::Status s = stub->Submit(&ctx, req, &sub);
    if (!s.ok()) {
      std::fprintf(stderr, "submit failed: %s\n", spt::rpc::status_text(s).c_str());
      return false;
    }
  }
  const double t_submitted = spt::monotonic_s();
  std::string state;
  v1::ExperimentStatus last;
  while (spt::monotonic_s() - t0 < 600) {
    v1::StatusResponse r;
    if (call_status(&r, sub.experiment_id()).ok() && r.experiments_size()) {
      last = r.experiments(0);
      state = last.state();
      if (state != "running") break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double wall = spt::monotonic_s() - t0;
  row->workers = W;
  row->units = last.counts().done();
  row->wall_s = wall;
  row->submit_s = t_submitted - t0;
  row->server_cpu_s = cpu_s(server.pid) - cpu0[0];
  row->worker_cpu_s = 0;
  for (size_t i = 0; i < workers.size(); ++i) row->worker_cpu_s += cpu_s(workers[i].pid) - cpu0[i + 1];
  for (auto& w : workers) stop(w);
  stop(server);
  if (state != "done") {
    std::fprintf(stderr, "W=%d: experiment ended '%s' (%lld/%lld done); logs in %s\n", W, state.c_str(),
                 static_cast<long long>(last.counts().done()), static_cast<long long>(last.counts().total()),
                 dir.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server_bin = SPT_BENCH_SERVER_BIN, worker_bin = SPT_BENCH_WORKER_BIN;
  std::vector<int> counts = {1, 2, 4};
  int64_t n = 20000;
  int batch = 256, slots = 1;
  bool keep = false, use_tls = false;
  CLI::App app{"runner_bench: selftest completions/s through spt-server with W local workers"};
  app.add_option("--server-bin", server_bin)->capture_default_str();
  app.add_option("--worker-bin", worker_bin)->capture_default_str();
  app.add_option("--workers", counts, "worker counts to measure")->delimiter(',')->capture_default_str();
  app.add_option("-n,--units", n, "map jobs per run")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--batch", batch, "worker lease batch")->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--slots", slots, "slots per worker")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_flag("--keep", keep, "keep the temp dir (logs, dbs)");
  app.add_flag("--tls", use_tls, "server and workers talk TLS (certificates made by spt-certs.sh)");
  CLI11_PARSE(app, argc, argv);

  char tmpl[] = "/tmp/spt-runner-bench-XXXXXX";
  const std::string root = mkdtemp(tmpl);
  BenchTls tls;
  if (use_tls) {
    tls.certs_dir = root + "/certs";
    const std::string cmd = std::string("bash '") + SPT_BENCH_CERTS_SCRIPT + "' '" + tls.certs_dir + "' > /dev/null";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "runner_bench: %s failed\n", cmd.c_str());
      return 1;
    }
  }
  std::printf("runner_bench: selftest n=%lld work=0, batch %d, slots %d, %u cores, %s\n", static_cast<long long>(n),
              batch, slots, std::thread::hardware_concurrency(), use_tls ? "TLS" : "plaintext");
  // wall_s: Submit sent -> experiment done (includes planning and inserting
  // the jobs, submit_s); run/s excludes submit_s. CPU columns: CPU seconds
  // of the server and of all workers over the same interval, per unit.
  std::printf("%7s %7s %7s %8s %8s %8s %12s %14s %14s\n", "workers", "units", "wall_s", "submit_s", "units/s",
              "run/s", "wall_us/unit", "server_cpu_us", "worker_cpu_us");
  int rc = 0;
  for (int W : counts) {
    Row r{};
    if (!run_one(server_bin, worker_bin, W, n, batch, slots, root, tls, &r)) {
      rc = 1;
      continue;
    }
    std::printf("%7d %7lld %7.2f %8.2f %8.0f %8.0f %12.1f %14.1f %14.1f\n", r.workers, static_cast<long long>(r.units),
                r.wall_s, r.submit_s, r.units / r.wall_s, r.units / (r.wall_s - r.submit_s), 1e6 * r.wall_s / r.units,
                1e6 * r.server_cpu_s / r.units, 1e6 * r.worker_cpu_s / r.units);
    std::fflush(stdout);
  }
  if (!keep) fs::remove_all(root);
  else std::printf("logs in %s\n", root.c_str());
  return rc;
}
