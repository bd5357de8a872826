// issue 12 operations through real processes on loopback: the standard gRPC
// health service, /metrics of spt-server and spt-worker after a selftest run
// (counts asserted against the coordinator's own Status), JSON log lines; and
// in process, health turning NOT_SERVING while the server shuts down.
#include <signal.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "exposition_check.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "harness.h"
#include "http_get.h"
#include "server.h"

namespace spt::test {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// Scrapes and checks the format; fails the test on a format error.
Exposition scrape(int port) {
  const auto r = http_get(port, "/metrics");
  EXPECT_EQ(r.status, 200) << r.headers;
  auto e = parse_exposition(r.body);
  EXPECT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors) << "\n" << r.body;
  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    const std::string path = ::testing::TempDir() + "/scrape.txt";
    std::ofstream(path) << r.body;
    EXPECT_EQ(std::system(("promtool check metrics < " + path + " >/dev/null").c_str()), 0) << r.body;
  }
  return e;
}

// Every line of a log is one JSON object; returns them.
std::vector<nlohmann::json> json_lines(const std::string& log) {
  std::vector<nlohmann::json> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    EXPECT_TRUE(nlohmann::json::accept(line)) << "not JSON: " << line;
    if (!nlohmann::json::accept(line)) continue;
    out.push_back(nlohmann::json::parse(line));
    EXPECT_TRUE(out.back().is_object() && out.back().contains("time") && out.back().contains("level") &&
                out.back().contains("message") && out.back().contains("logger"))
        << line;
  }
  return out;
}

bool any_message(const std::vector<nlohmann::json>& lines, const std::string& part) {
  for (const auto& j : lines)
    if (j.value("message", "").find(part) != std::string::npos) return true;
  return false;
}

HealthCheckResponse::ServingStatus check(Health::Stub& h, const std::string& service, grpc::StatusCode* code) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  HealthCheckRequest req;
  req.set_service(service);
  HealthCheckResponse resp;
  *code = h.Check(&ctx, req, &resp).error_code();
  return resp.status();
}

TEST(Ops, HealthMetricsAndJsonLogsOfARealPool) {
  TempDir dir;
  const int mport = free_port(), wport = free_port();
  ServerOptions so;
  so.extra = {"--metrics-listen", "127.0.0.1:" + std::to_string(mport), "--log-format", "json"};
  Server server(dir, so);
  ASSERT_TRUE(server.start()) << server.process()->log();

  // The standard health service, through its own stub.
  auto health = Health::NewStub(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  grpc::StatusCode code;
  EXPECT_EQ(check(*health, "", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(check(*health, "spt.v1.WorkerService", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(check(*health, "spt.v1.ControlService", &code), HealthCheckResponse::SERVING);
  check(*health, "no.such.Service", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(http_get(mport, "/healthz").status, 200);

  auto before = scrape(mport);
  EXPECT_EQ(before.value("spt_submissions_total"), 0);
  EXPECT_EQ(before.sum("spt_jobs"), 0);
  EXPECT_EQ(before.value("spt_rpcs_total{code=\"OK\",method=\"Check\",service=\"grpc.health.v1.Health\"}"), 3);

  WorkerOptions wo;
  wo.name = "metered";
  wo.slots = 2;
  wo.extra = {"--metrics-listen", std::to_string(wport), "--log-format", "json"};  // bare port: loopback
  auto worker = start_worker(dir, server.address(), server.token(), wo);
  const int64_t n = 40;
  const auto sub = submit_parts(server, "selftest", "", {{"n", std::to_string(n)}, {"work", "200"}});
  ASSERT_GT(sub.experiment_id(), 0);
  expect_complete(server, sub.experiment_id(), n, 120);
  const int64_t jobs = sub.n_jobs();
  ASSERT_GT(jobs, n);  // maps and the reduce

  // Coordinator: gauges come from a cache at most ~1 s old.
  Exposition s;
  ASSERT_TRUE(wait_until([&] { return (s = scrape(mport)).value("spt_jobs{state=\"done\"}") == jobs; }, 10, 0.2))
      << s.value("spt_jobs{state=\"done\"}") << " of " << jobs;
  for (const char* st : {"blocked", "pending", "leased", "failed", "cancelled"})
    EXPECT_EQ(s.value(std::string("spt_jobs{state=\"") + st + "\"}"), 0) << st;
  EXPECT_EQ(s.value("spt_submissions_total"), 1);
  EXPECT_EQ(s.types.at("spt_rpc_duration_seconds"), "histogram");
  EXPECT_EQ(s.value("spt_rpcs_total{code=\"OK\",method=\"Submit\",service=\"spt.v1.ControlService\"}"), 1);
  EXPECT_EQ(s.value("spt_rpcs_total{code=\"OK\",method=\"Register\",service=\"spt.v1.WorkerService\"}"), 1);
  const double reports = s.sum("spt_rpcs_total", {{"method", "Report"}});
  EXPECT_GE(reports, 1);
  EXPECT_LE(reports, jobs);  // batched
  EXPECT_EQ(s.value("spt_rpc_duration_seconds_count{method=\"Report\",service=\"spt.v1.WorkerService\"}"), reports);
  EXPECT_GE(s.value("spt_rpc_duration_seconds_count{method=\"Lease\",service=\"spt.v1.WorkerService\"}"), 1);
  EXPECT_GE(s.sum("spt_rpcs_total", {{"method", "Status"}}), 1);  // the harness polled
  EXPECT_EQ(s.value("spt_workers{state=\"live\"}"), 1);
  EXPECT_EQ(s.value("spt_workers{state=\"quarantined\"}"), 0);
  EXPECT_GT(s.value("process_resident_memory_bytes"), 0);

  // Worker: every job it ran, each result accepted, nothing held after.
  Exposition w;
  ASSERT_TRUE(wait_until(
      [&] {
        w = scrape(wport);
        return w.value("spt_worker_results_total{verdict=\"accepted\"}") == jobs && w.value("spt_worker_leases") == 0;
      },
      10, 0.2))
      << w.value("spt_worker_results_total{verdict=\"accepted\"}") << " accepted of " << jobs;
  EXPECT_EQ(w.value("spt_worker_jobs_total{outcome=\"ok\"}"), jobs);
  EXPECT_EQ(w.value("spt_worker_jobs_total{outcome=\"failed\"}"), 0);
  EXPECT_EQ(w.value("spt_worker_results_total{verdict=\"refused\"}"), 0);
  EXPECT_EQ(w.sum("spt_worker_jobs"), 0);
  EXPECT_EQ(w.sum("spt_worker_info", {{"name", "metered"}, {"device", "cpu"}}), 1);
  EXPECT_GT(w.value("spt_worker_memory_bytes{device=\"cpu\"}"), 0);
  EXPECT_GT(w.value("process_resident_memory_bytes"), 0);
  EXPECT_TRUE(w.has("spt_worker_models_loaded"));
  EXPECT_TRUE(w.has("spt_worker_cache_bytes"));
  EXPECT_EQ(w.value("spt_worker_quarantined"), 0);

  // JSON logs from both daemons, including their shutdown.
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(30).value_or(-999), 0);
  server.process()->signal(SIGTERM);
  EXPECT_EQ(server.process()->wait(30).value_or(-999), 0);
  const auto wl = json_lines(worker->log());
  EXPECT_TRUE(any_message(wl, "metrics on http://127.0.0.1:" + std::to_string(wport) + "/metrics")) << worker->log();
  EXPECT_TRUE(any_message(wl, "drained"));
  for (const auto& j : wl) {
    EXPECT_EQ(j.value("logger", ""), "spt-worker");
    EXPECT_EQ(j.value("worker", ""), "metered");
  }
  const auto sl = json_lines(server.process()->log());
  EXPECT_TRUE(any_message(sl, "spt-server listening on " + server.address())) << server.process()->log();
  EXPECT_TRUE(any_message(sl, "bye"));
}

TEST(Ops, MetricsAreOffByDefaultAndBadAddressesAreUsageErrors) {
  TempDir dir;
  const int mport = free_port();
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  EXPECT_EQ(http_get(mport, "/metrics").status, -1);
  const auto r = run({server_bin(), "--metrics-listen", "nohost:", "--data-dir", dir.file("x")});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("--metrics-listen"), std::string::npos) << r.out << r.err;
  const auto f = run({server_bin(), "--log-format", "xml", "--data-dir", dir.file("x")});
  EXPECT_EQ(f.code, 2) << f.out << f.err;
  const auto w = run({worker_bin(), "--metrics-listen", "99999"});
  EXPECT_EQ(w.code, 2) << w.out << w.err;
}

// In process: a Watch sees SERVING, then NOT_SERVING once shutdown begins
// (while shutdown waits for in-flight calls, /healthz answers 503).
TEST(Ops, HealthIsNotServingDuringShutdown) {
  TempDir dir;
  server::ServerConfig cfg;
  cfg.listen = "127.0.0.1:0";
  cfg.data_dir = dir.path();
  cfg.token = "t";
  cfg.metrics_listen = "127.0.0.1:0";
  auto srv = server::Server::start(cfg);
  const int mport = std::stoi(srv->metrics_address().substr(srv->metrics_address().rfind(':') + 1));
  auto health = Health::NewStub(grpc::CreateChannel(srv->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  HealthCheckRequest req;
  auto stream = health->Watch(&ctx, req);
  HealthCheckResponse r;
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_EQ(r.status(), HealthCheckResponse::SERVING);
  EXPECT_EQ(http_get(mport, "/healthz").status, 200);

  std::thread stopper([&] { srv->shutdown(); });
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_EQ(r.status(), HealthCheckResponse::NOT_SERVING);
  const int during = http_get(mport, "/healthz").status;
  EXPECT_TRUE(during == 503 || during == -1) << during;  // -1: shutdown already finished
  ctx.TryCancel();
  stopper.join();
  srv->wait();
}

}  // namespace
}  // namespace spt::test
