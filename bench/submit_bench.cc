// submit_bench: what a large submission costs the coordinator (issue 12).
//
// For each n it starts a fresh spt-server (SQLite in a temp dir), submits a
// selftest of n map jobs (work=0, no workers) and, while the submission is
// being stored, calls Status from another thread every 100 ms (as
// `spt-client status` does: running experiments plus the latest), timing
// each call. It prints the submission's wall time, status latency
// p50/p99/max over the calls made meanwhile, the server's peak RSS (VmHWM)
// once it holds the n jobs, and the database's size.
//
// --server-bin points at another build (e.g. the tree before issue 12, for
// before/after figures); --server-arg passes flags to it (e.g. a higher
// --max-jobs-per-submission). Not a test: it prints figures.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

// A /proc/<pid>/status field in kB ("VmHWM", "VmRSS"); -1 if unreadable.
int64_t proc_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

int64_t file_bytes(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

struct Row {
  int64_t n = 0;
  double submit_s = 0;
  std::vector<double> status_ms;
  int64_t hwm_kb = 0, idle_kb = 0, db_bytes = 0;
  std::string error;
};

Row run_one(const std::string& server_bin, const std::vector<std::string>& server_args, int64_t n,
            const std::string& root) {
  Row row;
  row.n = n;
  const std::string dir = root + "/n" + std::to_string(n);
  fs::create_directories(dir);
  const std::string token = "bench-token";
  spt::write_file_atomic(dir + "/token", token + "\n");
  const std::string addr = "127.0.0.1:" + std::to_string(spt::bench::free_port());
  std::vector<std::string> argv = {server_bin, "--listen", addr, "--db", dir + "/spt.db", "--data-dir", dir + "/data",
                                   "--token-file", dir + "/token", "--log-level", "warn"};
  argv.insert(argv.end(), server_args.begin(), server_args.end());
  Child server =
      spt::bench::spawn(argv, dir + "/server.log", token, [](const std::string& e) { return e.rfind("SPT_", 0) == 0; });
  auto stub = v1::ControlService::NewStub(spt::rpc::make_channel(addr));
  auto status = [&](double timeout_s) {
    grpc::ClientContext ctx;
    spt::rpc::prepare(ctx, token, timeout_s, true);
    v1::StatusRequest req;
    v1::StatusResponse resp;
    return stub->Status(&ctx, req, &resp);
  };
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    up = status(2).ok();
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!up) {
    row.error = "server did not start; see " + dir + "/server.log";
    spt::bench::stop(server);
    return row;
  }
  row.idle_kb = proc_kb(server.pid, "VmHWM");

  std::atomic<bool> submitting{true};
  std::thread prober([&] {
    while (submitting) {
      const double t0 = spt::monotonic_s();
      if (status(120).ok() && submitting) row.status_ms.push_back((spt::monotonic_s() - t0) * 1000);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const double t0 = spt::monotonic_s();
  {
    grpc::ClientContext ctx;
    spt::rpc::prepare(ctx, token, 1200, true);
    v1::SubmitRequest req;
    req.set_experiment("selftest");
    (*req.mutable_params())["n"] = std::to_string(n);
    (*req.mutable_params())["work"] = "0";
    v1::SubmitResponse resp;
    const grpc::Status s = stub->Submit(&ctx, req, &resp);
    if (!s.ok()) row.error = "submit failed: " + spt::rpc::status_text(s);
  }
  row.submit_s = spt::monotonic_s() - t0;
  submitting = false;
  prober.join();
  (void)status(120);
  row.hwm_kb = proc_kb(server.pid, "VmHWM");
  spt::bench::stop(server);
  row.db_bytes = file_bytes(dir + "/spt.db") + file_bytes(dir + "/spt.db-wal");
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"submit_bench: status latency and coordinator memory during large submissions"};
  std::string server_bin = SPT_BENCH_SERVER_BIN, label = "this build";
  std::vector<int64_t> ns = {100000, 500000, 1000000};
  std::vector<std::string> server_args;
  bool keep = false;
  app.add_flag("--keep", keep, "keep the temp dir (server logs, databases)");
  app.add_option("--server-bin", server_bin, "spt-server to measure")->capture_default_str();
  app.add_option("--label", label, "name of the build in the output");
  app.add_option("--n", ns, "selftest sizes (map jobs)")->capture_default_str();
  app.add_option("--server-arg", server_args, "extra spt-server flag (repeatable)")->allow_extra_args(false);
  CLI11_PARSE(app, argc, argv);

  char tmpl[] = "/tmp/spt_submit_bench_XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  const std::string root = tmpl;
  std::printf("submit_bench: %s (%s)\n", label.c_str(), server_bin.c_str());
  std::printf("%9s %9s %8s %11s %11s %11s %9s %9s %10s\n", "jobs", "submit_s", "calls", "status_p50",
              "status_p99", "status_max", "rss_MiB", "MiB/1e5", "db_MiB");
  int rc = 0;
  for (int64_t n : ns) {
    const Row r = run_one(server_bin, server_args, n, root);
    if (!r.error.empty()) {
      std::printf("%9lld  error: %s\n", static_cast<long long>(n + 1), r.error.c_str());
      rc = 1;
      continue;
    }
    const double rss_mib = r.hwm_kb / 1024.0;
    std::printf("%9lld %9.1f %8zu %9.1fms %9.1fms %9.1fms %9.0f %9.1f %10.0f\n", static_cast<long long>(n + 1),
                r.submit_s, r.status_ms.size(), pct(r.status_ms, 0.5), pct(r.status_ms, 0.99),
                pct(r.status_ms, 1.0), rss_mib, (r.hwm_kb - r.idle_kb) / 1024.0 / ((n + 1) / 1e5),
                r.db_bytes / 1048576.0);
    std::fflush(stdout);
  }
  if (keep)
    std::printf("kept %s\n", root.c_str());
  else
    fs::remove_all(root);
  return rc;
}
