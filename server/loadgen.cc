// spt-loadgen: measures job completions per second through a running
// spt-server. Submits a selftest sweep, then N fake workers lease batches
// and report every job done at once, so the server is the only bottleneck.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "client/connection.h"
#include "spt/v1/spt.grpc.pb.h"

int main(int argc, char** argv) {
  CLI::App app{"spt-loadgen: job throughput through a running spt-server"};
  std::string server = "127.0.0.1:7070", token;
  int n = 20000, workers = 2, batch = 256;
  app.add_option("--server", server)->capture_default_str();
  app.add_option("--token", token, "bearer token")->required();
  app.add_option("--n", n, "jobs in the sweep")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--workers", workers, "concurrent fake workers")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--batch", batch, "jobs per lease")->capture_default_str()->check(CLI::Range(1, 10000));
  spt::rpc::TlsOptions tls;
  app.add_option("--tls-ca", tls.ca_file, "PEM CA of the server's certificate: connect over TLS");
  app.add_option("--tls-server-name", tls.server_name, "name to check instead of --server's host");
  CLI11_PARSE(app, argc, argv);

  std::shared_ptr<grpc::Channel> ch;
  try {
    ch = spt::rpc::make_channel(server, tls);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spt-loadgen: %s\n", e.what());
    return 1;
  }
  auto control = spt::v1::ControlService::NewStub(ch);
  auto ctx = [&] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->AddMetadata("authorization", "Bearer " + token);
    return c;
  };

  const auto t0 = std::chrono::steady_clock::now();
  spt::v1::SubmitRequest sreq;
  sreq.set_experiment("selftest");
  (*sreq.mutable_params())["n"] = std::to_string(n);
  (*sreq.mutable_params())["work"] = "0";
  sreq.set_force(true);
  spt::v1::SubmitResponse sresp;
  if (auto s = control->Submit(ctx().get(), sreq, &sresp); !s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.error_message().c_str());
    return 1;
  }
  const auto t_submit = std::chrono::steady_clock::now();

  std::atomic<bool> stop{false};
  std::atomic<int64_t> done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i)
    threads.emplace_back([&, i] {
      auto stub = spt::v1::WorkerService::NewStub(ch);
      spt::v1::RegisterRequest rreq;
      rreq.set_name("loadgen-" + std::to_string(i));
      rreq.mutable_capabilities()->add_job_kinds("selftest.map");
      rreq.mutable_capabilities()->add_job_kinds("selftest.reduce");
      spt::v1::RegisterResponse rresp;
      if (!stub->Register(ctx().get(), rreq, &rresp).ok()) return;
      while (!stop) {
        spt::v1::LeaseRequest lreq;
        lreq.set_worker_id(rresp.worker_id());
        lreq.set_worker_secret(rresp.worker_secret());
        lreq.set_max_jobs(batch);
        lreq.set_wait_ms(200);
        spt::v1::LeaseResponse lresp;
        if (!stub->Lease(ctx().get(), lreq, &lresp).ok()) return;
        if (lresp.jobs_size() == 0) continue;
        spt::v1::ReportRequest rep;
        rep.set_worker_id(rresp.worker_id());
        rep.set_worker_secret(rresp.worker_secret());
        for (const auto& j : lresp.jobs()) {
          auto* r = rep.add_results();
          r->set_job_id(j.job_id());
          r->set_lease_id(j.lease_id());
          r->set_ok(true);
          r->set_result_json(R"({"x":1})");
        }
        spt::v1::ReportResponse repr;
        if (!stub->Report(ctx().get(), rep, &repr).ok()) return;
        done += repr.accepted_size();
      }
    });
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    spt::v1::StatusRequest st;
    st.mutable_experiment()->set_id(sresp.experiment_id());
    spt::v1::StatusResponse str;
    if (!control->Status(ctx().get(), st, &str).ok() || str.experiments(0).state() != "running") break;
  }
  const auto t1 = std::chrono::steady_clock::now();
  stop = true;
  for (auto& t : threads) t.join();
  const double submit_s = std::chrono::duration<double>(t_submit - t0).count();
  const double run_s = std::chrono::duration<double>(t1 - t_submit).count();
  std::printf("%d jobs: submit %.2f s, lease+report %.2f s -> %.0f completions/s (%lld accepted)\n", n + 1,
              submit_s, run_s, done.load() / run_s, static_cast<long long>(done.load()));
  return 0;
}
