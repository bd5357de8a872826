// remote_bench: how often a client call succeeds over a slow link (issue 12,
// "remote clients must connect").
//
// Starts spt-server on loopback and a DelayProxy (tests/runner) in front of
// it with a fixed one-way delay, then makes --calls Status calls the way
// spt-client does (a fresh channel per call, fail-fast, a 30 s deadline)
// with two sets of channel args:
//   before: the old make_channel args (MIN_RECONNECT_BACKOFF_MS=100, which
//           gRPC also takes as the connect timeout);
//   after:  spt::rpc::make_channel as it is now.
// Each twice: idle, and while a worker (itself behind the proxy) runs a
// selftest sweep. Prints success rate and median latency of the successes,
// plus the first error seen. Optionally also the spt-client binary itself.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "children.h"
#include "client/connection.h"
#include "spt/util.h"
#include "tests/runner/delay_proxy.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = spt::v1;
using spt::bench::Child;

Child spawn(const std::vector<std::string>& argv, const std::string& log, const std::string& token) {
  return spt::bench::spawn(argv, log, token, [](const std::string& e) { return e.rfind("SPT_", 0) == 0; });
}

// The channel spt-client made before issue 12.
std::shared_ptr<grpc::Channel> old_channel(const std::string& addr) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}

struct Tally {
  int ok = 0, n = 0;
  std::vector<double> ok_s;
  std::string first_error;
};

Tally measure(int calls, const std::string& addr, const std::string& token, bool old_args) {
  Tally t;
  for (int i = 0; i < calls; ++i) {
    auto ch = old_args ? old_channel(addr) : spt::rpc::make_channel(addr);
    auto stub = v1::ControlService::NewStub(ch);
    grpc::ClientContext ctx;
    spt::rpc::prepare(ctx, token, 30, /*wait_for_ready=*/false);  // as spt-client
    v1::StatusResponse r;
    const double t0 = spt::monotonic_s();
    const grpc::Status s = stub->Status(&ctx, v1::StatusRequest(), &r);
    ++t.n;
    if (s.ok()) {
      ++t.ok;
      t.ok_s.push_back(spt::monotonic_s() - t0);
    } else if (t.first_error.empty()) {
      t.first_error = spt::rpc::status_text(s);
    }
  }
  return t;
}

Tally measure_cli(int calls, const std::string& client_bin, const std::string& addr, const std::string& token_file) {
  Tally t;
  for (int i = 0; i < calls; ++i) {
    const double t0 = spt::monotonic_s();
    const std::string cmd = spt::shell_quote(client_bin) + " --server " + addr + " --token-file " +
                            spt::shell_quote(token_file) + " status >/dev/null 2>&1";
    ++t.n;
    if (std::system(cmd.c_str()) == 0) {
      ++t.ok;
      t.ok_s.push_back(spt::monotonic_s() - t0);
    }
  }
  return t;
}

void print(const char* args, const char* load, const Tally& t) {
  std::vector<double> v = t.ok_s;
  std::sort(v.begin(), v.end());
  const double med = v.empty() ? 0 : v[v.size() / 2];
  std::printf("%-14s %-8s %4d/%-4d %6.1f%%   %8.3f   %s\n", args, load, t.ok, t.n, 100.0 * t.ok / std::max(1, t.n),
              med, t.first_error.substr(t.first_error.size() > 70 ? t.first_error.size() - 70 : 0).c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string server_bin = SPT_BENCH_SERVER_BIN, worker_bin = SPT_BENCH_WORKER_BIN, client_bin = SPT_BENCH_CLIENT_BIN;
  int calls = 50, delay_ms = 200;
  bool cli = false;
  CLI::App app{"remote_bench: Status success rate through a delaying proxy, old vs new channel args"};
  app.add_option("--calls", calls, "calls per condition")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--delay-ms", delay_ms, "one-way delay")->capture_default_str()->check(CLI::Range(0, 10000));
  app.add_flag("--cli", cli, "also time the spt-client binary (after only)");
  CLI11_PARSE(app, argc, argv);

  char tmpl[] = "/tmp/spt-remote-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string token = "bench-token";
  spt::write_file_atomic(dir + "/token", token + "\n");
  const int port = spt::bench::free_port();
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  Child server = spawn({server_bin, "--listen", addr, "--db", dir + "/spt.db", "--data-dir", dir + "/data",
                        "--token-file", dir + "/token"},
                       dir + "/server.log", token);
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    up = measure(1, addr, token, false).ok == 1;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!up) {
    std::fprintf(stderr, "server did not start; see %s/server.log\n", dir.c_str());
    return 1;
  }
  spt::test::DelayProxy proxy(port, delay_ms);
  std::printf("# spt-client-style Status calls through a %d ms one-way proxy (fresh channel per call, fail-fast)\n",
              delay_ms);
  std::printf("%-14s %-8s %9s %7s   %8s   %s\n", "channel args", "load", "ok/n", "rate", "median_s", "first error");
  // The error is shown by its tail (gRPC puts the cause last).
  print("before", "idle", measure(calls, proxy.address(), token, true));
  print("after", "idle", measure(calls, proxy.address(), token, false));
  if (cli) print("after (cli)", "idle", measure_cli(calls, client_bin, proxy.address(), dir + "/token"));

  // Load: a worker behind the same proxy working through a selftest sweep.
  Child worker = spawn({worker_bin, "--server", proxy.address(), "--name", "bench-far", "--slots", "2", "--threads",
                        "1", "--batch", "16", "--cache-dir", dir + "/cache"},
                       dir + "/worker.log", token);
  {
    auto stub = v1::ControlService::NewStub(spt::rpc::make_channel(addr));
    grpc::ClientContext ctx;
    spt::rpc::prepare(ctx, token, 60, true);
    v1::SubmitRequest req;
    req.set_experiment("selftest");
    (*req.mutable_params())["n"] = "20000";
    (*req.mutable_params())["work"] = "200000";
    v1::SubmitResponse sub;
    const grpc::Status s = stub->Submit(&ctx, req, &sub);
    if (!s.ok()) std::fprintf(stderr, "submit failed: %s\n", spt::rpc::status_text(s).c_str());
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));  // the worker registers and leases
  print("before", "worker", measure(calls, proxy.address(), token, true));
  print("after", "worker", measure(calls, proxy.address(), token, false));
  if (cli) print("after (cli)", "worker", measure_cli(calls, client_bin, proxy.address(), dir + "/token"));
  spt::bench::stop(worker, 2000);
  spt::bench::stop(server, 2000);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
