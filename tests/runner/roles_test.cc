// Roles and worker identity (issue 12), against the real spt-server over
// loopback gRPC: what each token may do, that worker RPCs act only as the
// worker whose secret they carry and only on that worker's leases, and
// that a real spt-worker with the worker token runs a submitter's
// experiment through a coordinator restart.
#include <signal.h>
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/connection.h"
#include "harness.h"
#include "spt/selftest.h"
#include "spt/util.h"

namespace spt::test {
namespace {

using grpc::StatusCode;

class Roles : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(srv.start()) << srv.process()->log(); }

  template <class Call>
  grpc::Status as(const std::string& token, Call call) {
    grpc::ClientContext ctx;
    srv.prepare_as(ctx, token, 10);
    return call(ctx);
  }
  grpc::Status submit_as(const std::string& token, int n, v1::SubmitResponse* out = nullptr) {
    v1::SubmitRequest req;
    req.set_experiment("selftest");
    (*req.mutable_params())["n"] = std::to_string(n);
    (*req.mutable_params())["tag"] = dir.path();  // nothing reused from earlier runs
    v1::SubmitResponse resp;
    auto s = as(token, [&](auto& c) { return srv.control().Submit(&c, req, &resp); });
    if (out) *out = resp;
    return s;
  }
  // Registers a worker (raw stub) with `token`; returns the response.
  v1::RegisterResponse register_as(const std::string& token, const std::string& name) {
    v1::RegisterRequest req;
    req.set_name(name);
    req.mutable_capabilities()->add_job_kinds("selftest.map");
    v1::RegisterResponse resp;
    auto s = as(token, [&](auto& c) { return srv.workers().Register(&c, req, &resp); });
    EXPECT_TRUE(s.ok()) << rpc::status_text(s);
    return resp;
  }
  grpc::Status lease(const std::string& id, const std::string& secret, v1::LeaseResponse* out, int max_jobs = 1) {
    v1::LeaseRequest req;
    req.set_worker_id(id);
    req.set_worker_secret(secret);
    req.set_max_jobs(max_jobs);
    return as(srv.worker_token(), [&](auto& c) { return srv.workers().Lease(&c, req, out); });
  }
  v1::LogsResponse logs(int64_t job_id) { return job_logs(srv, job_id); }

  TempDir dir;
  Server srv{dir};
};

void expect_denied(const grpc::Status& s, const std::string& needle) {
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << rpc::status_text(s);
  EXPECT_NE(s.error_message().find(needle), std::string::npos) << s.error_message();
}

TEST_F(Roles, WorkerTokenMayNotSubmitCancelReadOrDrain) {
  const std::string w = srv.worker_token();
  auto s = submit_as(w, 3);
  expect_denied(s, "this token may not submit: the worker role only runs jobs");
  v1::SubmitResponse sub;
  ASSERT_TRUE(submit_as(srv.submitter_token(), 3, &sub).ok());
  v1::CancelRequest creq;
  creq.mutable_experiment()->set_id(sub.experiment_id());
  v1::CancelResponse cresp;
  expect_denied(as(w, [&](auto& c) { return srv.control().Cancel(&c, creq, &cresp); }), "may not cancel");
  v1::StatusResponse st;
  expect_denied(as(w, [&](auto& c) { return srv.control().Status(&c, v1::StatusRequest(), &st); }), "worker role");
  v1::DrainWorkerRequest dreq;
  dreq.set_name("anyone");
  v1::DrainWorkerResponse dresp;
  expect_denied(as(w, [&](auto& c) { return srv.control().DrainWorker(&c, dreq, &dresp); }), "may not drain workers");
  v1::PruneWorkersResponse presp;
  expect_denied(as(w, [&](auto& c) { return srv.control().PruneWorkers(&c, v1::PruneWorkersRequest(), &presp); }),
                "needs the admin token");
  // Nothing was cancelled, and the worker token does register.
  EXPECT_EQ(experiment_status(srv, sub.experiment_id()).state(), "running");
  EXPECT_FALSE(register_as(w, "honest").worker_secret().empty());
}

TEST_F(Roles, SubmitterTokenMayNotLeaseReportDrainOrPrune) {
  const std::string sub = srv.submitter_token();
  v1::RegisterRequest rreq;
  rreq.set_name("impostor");
  v1::RegisterResponse rresp;
  expect_denied(as(sub, [&](auto& c) { return srv.workers().Register(&c, rreq, &rresp); }),
                "may not register as a worker: the submitter role only submits and inspects experiments");
  // Even holding a real worker's id and secret, the submitter token cannot act as it.
  const auto reg = register_as(srv.worker_token(), "real");
  v1::LeaseRequest lreq;
  lreq.set_worker_id(reg.worker_id());
  lreq.set_worker_secret(reg.worker_secret());
  lreq.set_max_jobs(1);
  v1::LeaseResponse lresp;
  expect_denied(as(sub, [&](auto& c) { return srv.workers().Lease(&c, lreq, &lresp); }), "may not lease jobs");
  v1::ReportRequest rep;
  rep.set_worker_id(reg.worker_id());
  rep.set_worker_secret(reg.worker_secret());
  v1::ReportResponse repr;
  expect_denied(as(sub, [&](auto& c) { return srv.workers().Report(&c, rep, &repr); }), "needs the worker token");
  v1::DrainWorkerRequest dreq;
  dreq.set_name("real");
  v1::DrainWorkerResponse dresp;
  expect_denied(as(sub, [&](auto& c) { return srv.control().DrainWorker(&c, dreq, &dresp); }),
                "may not drain workers: the submitter role only submits and inspects experiments (needs the admin");
  v1::PruneWorkersResponse presp;
  expect_denied(as(sub, [&](auto& c) { return srv.control().PruneWorkers(&c, v1::PruneWorkersRequest(), &presp); }),
                "may not prune workers");
  // What a researcher needs works.
  v1::SubmitResponse s;
  ASSERT_TRUE(submit_as(sub, 2, &s).ok());
  v1::ListWorkersResponse lw;
  EXPECT_TRUE(as(sub, [&](auto& c) { return srv.control().ListWorkers(&c, v1::ListWorkersRequest(), &lw); }).ok());
  EXPECT_EQ(lw.workers_size(), 1);
  v1::CancelRequest creq;
  creq.mutable_experiment()->set_id(s.experiment_id());
  v1::CancelResponse cresp;
  EXPECT_TRUE(as(sub, [&](auto& c) { return srv.control().Cancel(&c, creq, &cresp); }).ok());
  EXPECT_EQ(cresp.cancelled_jobs(), 3);
}

TEST_F(Roles, AdminTokenMayDoEverythingAndUnknownTokensNothing) {
  const std::string admin = srv.token();
  const auto reg = register_as(admin, "by-admin");
  v1::LeaseResponse lr;
  EXPECT_TRUE(lease(reg.worker_id(), reg.worker_secret(), &lr).ok());
  v1::SubmitResponse s;
  EXPECT_TRUE(submit_as(admin, 2, &s).ok());
  v1::DrainWorkerRequest dreq;
  dreq.set_name("by-admin");
  v1::DrainWorkerResponse dresp;
  auto st = as(admin, [&](auto& c) { return srv.control().DrainWorker(&c, dreq, &dresp); });
  EXPECT_TRUE(st.ok()) << rpc::status_text(st);
  EXPECT_EQ(dresp.workers(), 1);
  v1::PruneWorkersResponse presp;
  EXPECT_TRUE(as(admin, [&](auto& c) { return srv.control().PruneWorkers(&c, v1::PruneWorkersRequest(), &presp); }).ok());
  for (const std::string bad : {"", "test-worker-token-x", "nope"}) {
    v1::StatusResponse sr;
    auto u = as(bad, [&](auto& c) { return srv.control().Status(&c, v1::StatusRequest(), &sr); });
    EXPECT_EQ(u.error_code(), StatusCode::UNAUTHENTICATED) << bad;
  }
}

TEST_F(Roles, WorkerRpcsNeedTheNamedWorkersOwnSecret) {
  const auto a = register_as(srv.worker_token(), "a");
  const auto b = register_as(srv.worker_token(), "b");
  ASSERT_NE(a.worker_secret(), b.worker_secret());
  EXPECT_EQ(a.worker_secret().size(), 64u);
  v1::SubmitResponse sub;
  ASSERT_TRUE(submit_as(srv.submitter_token(), 2, &sub).ok());
  v1::LeaseResponse lr;
  auto s = lease(a.worker_id(), b.worker_secret(), &lr);  // b posing as a
  expect_denied(s, "worker secret does not match worker id " + a.worker_id());
  s = lease(a.worker_id(), "", &lr);
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << rpc::status_text(s);
  EXPECT_NE(s.error_message().find("carries no worker_secret"), std::string::npos) << s.error_message();
  s = lease(a.worker_id(), std::string(64, 'f'), &lr);
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED);
  s = lease("w-0000000000000000", a.worker_secret(), &lr);  // an id nobody registered
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(lr.jobs_size(), 0);
  EXPECT_EQ(experiment_status(srv, sub.experiment_id()).counts().leased(), 0);  // nothing was handed out

  // Every other RPC naming a worker is held to the same rule.
  v1::HeartbeatRequest hb;
  hb.set_worker_id(a.worker_id());
  hb.set_worker_secret(b.worker_secret());
  v1::HeartbeatResponse hbr;
  EXPECT_EQ(as(srv.worker_token(), [&](auto& c) { return srv.workers().Heartbeat(&c, hb, &hbr); }).error_code(),
            StatusCode::PERMISSION_DENIED);
  v1::ReleaseRequest rel;
  rel.set_worker_id(a.worker_id());
  rel.set_worker_secret(b.worker_secret());
  v1::ReleaseResponse relr;
  EXPECT_EQ(as(srv.worker_token(), [&](auto& c) { return srv.workers().Release(&c, rel, &relr); }).error_code(),
            StatusCode::PERMISSION_DENIED);
  v1::DeregisterRequest dr;
  dr.set_worker_id(a.worker_id());
  dr.set_worker_secret(b.worker_secret());
  v1::DeregisterResponse drr;
  EXPECT_EQ(as(srv.worker_token(), [&](auto& c) { return srv.workers().Deregister(&c, dr, &drr); }).error_code(),
            StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(worker_named(srv, "a").has_value());  // still registered
  EXPECT_TRUE(lease(a.worker_id(), a.worker_secret(), &lr).ok());
  EXPECT_EQ(lr.jobs_size(), 1);
}

// The honest owner's result for a selftest map job, as the executor computes it.
std::string honest_result(const v1::Job& job) {
  const auto p = nlohmann::json::parse(job.params_json());
  const int64_t i = p["i"].get<int64_t>();
  const uint64_t d = selftest::digest(p["seed"].get<uint64_t>(), static_cast<uint64_t>(i), p["work"].get<int64_t>());
  return nlohmann::json{{"i", i}, {"value", i}, {"digest", selftest::hex64(d)}}.dump();
}

TEST_F(Roles, AForgedResultForAnotherWorkersLeaseIsRefusedAndTheOwnerCompletesIt) {
  const auto owner = register_as(srv.worker_token(), "owner");
  const auto forger = register_as(srv.worker_token(), "forger");
  v1::SubmitResponse sub;
  ASSERT_TRUE(submit_as(srv.submitter_token(), 3, &sub).ok());
  v1::LeaseResponse lr;
  ASSERT_TRUE(lease(owner.worker_id(), owner.worker_secret(), &lr).ok());
  ASSERT_EQ(lr.jobs_size(), 1);
  const v1::Job job = lr.jobs(0);

  // The forger knows the lease id but is not its holder: its result, its
  // renewal and its release are all refused, and the lease stays the owner's.
  v1::ReportRequest forged;
  forged.set_worker_id(forger.worker_id());
  forged.set_worker_secret(forger.worker_secret());
  auto* r = forged.add_results();
  r->set_job_id(job.job_id());
  r->set_lease_id(job.lease_id());
  r->set_ok(true);
  r->set_result_json(R"({"i": 0, "value": 1000000, "digest": "0000000000000000"})");
  v1::ReportResponse fr;
  ASSERT_TRUE(as(srv.worker_token(), [&](auto& c) { return srv.workers().Report(&c, forged, &fr); }).ok());
  EXPECT_EQ(fr.accepted_size(), 0);
  ASSERT_EQ(fr.refused_size(), 1);
  EXPECT_EQ(fr.refused(0), job.job_id());

  v1::HeartbeatRequest hb;
  hb.set_worker_id(forger.worker_id());
  hb.set_worker_secret(forger.worker_secret());
  hb.add_lease_ids(job.lease_id());
  v1::HeartbeatResponse hbr;
  ASSERT_TRUE(as(srv.worker_token(), [&](auto& c) { return srv.workers().Heartbeat(&c, hb, &hbr); }).ok());
  ASSERT_EQ(hbr.lost_lease_ids_size(), 1);  // not the forger's to keep
  v1::ReleaseRequest rel;
  rel.set_worker_id(forger.worker_id());
  rel.set_worker_secret(forger.worker_secret());
  rel.add_lease_ids(job.lease_id());
  v1::ReleaseResponse relr;
  ASSERT_TRUE(as(srv.worker_token(), [&](auto& c) { return srv.workers().Release(&c, rel, &relr); }).ok());
  EXPECT_EQ(relr.released(), 0);

  auto l = logs(job.job_id());
  EXPECT_EQ(l.job().state(), "leased");
  bool refusal_logged = false, renewed = false;
  for (const auto& e : l.events()) {
    refusal_logged |= e.event() == "refused" && e.detail().find("held by worker " + owner.worker_id()) != std::string::npos;
    renewed |= e.event() == "renewed";
  }
  EXPECT_TRUE(refusal_logged) << l.DebugString();
  EXPECT_FALSE(renewed) << l.DebugString();

  // The owner's own result is accepted and the experiment completes right:
  // a real worker runs the rest, and the reduce checks every map's digest.
  v1::ReportRequest honest;
  honest.set_worker_id(owner.worker_id());
  honest.set_worker_secret(owner.worker_secret());
  auto* h = honest.add_results();
  h->set_job_id(job.job_id());
  h->set_lease_id(job.lease_id());
  h->set_ok(true);
  h->set_result_json(honest_result(job));
  v1::ReportResponse hr;
  ASSERT_TRUE(as(srv.worker_token(), [&](auto& c) { return srv.workers().Report(&c, honest, &hr); }).ok());
  ASSERT_EQ(hr.accepted_size(), 1);
  auto w = start_worker(dir, srv.address(), srv.worker_token(), {.name = "finisher"});
  expect_complete(srv, sub.experiment_id(), 3, 60);
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(30).value_or(-999), 0) << w->log();
}

TEST_F(Roles, RealWorkerWithTheWorkerTokenRunsASubmittersExperimentThroughARestart) {
  auto w = start_worker(dir, srv.address(), srv.worker_token(), {.name = "steady", .batch = 4});
  ASSERT_TRUE(wait_until([&] { return worker_named(srv, "steady").has_value(); }, 30)) << w->log();
  const std::string id_before = worker_named(srv, "steady")->worker_id();
  v1::SubmitRequest req;
  req.set_experiment("selftest");
  (*req.mutable_params())["n"] = "60";
  (*req.mutable_params())["stall"] = "1";  // each map's first attempt takes 0.1 s: the restart lands mid-run
  (*req.mutable_params())["stall_s"] = "0.1";
  (*req.mutable_params())["tag"] = dir.path();
  v1::SubmitResponse sub;
  auto s = as(srv.submitter_token(), [&](auto& c) { return srv.control().Submit(&c, req, &sub); });
  ASSERT_TRUE(s.ok()) << rpc::status_text(s);
  ASSERT_TRUE(wait_until([&] { return experiment_status(srv, sub.experiment_id()).counts().done() >= 5; }, 60))
      << w->log();
  srv.kill9();
  ASSERT_TRUE(srv.start()) << srv.process()->log();
  expect_complete(srv, sub.experiment_id(), 60, 120);
  // The worker kept its identity: its secret still verified after the restart.
  const auto after = worker_named(srv, "steady");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->worker_id(), id_before) << w->log();
  EXPECT_EQ(w->log().find("registering again"), std::string::npos) << w->log();
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(30).value_or(-999), 0) << w->log();
}

TEST_F(Roles, AWorkerGivenTheSubmitterTokenIsRefusedClearly) {
  auto w = start_worker(dir, srv.address(), srv.submitter_token(), {.name = "misconfigured"});
  const auto rc = w->wait(60);
  ASSERT_TRUE(rc.has_value()) << w->log();
  EXPECT_EQ(*rc, 2) << w->log();
  EXPECT_NE(w->log().find("may not register as a worker"), std::string::npos) << w->log();
}

TEST(RoleTokens, GeneratedPrivatelyLoggedByPlaceNeverByValue) {
  TempDir dir;
  Server srv(dir, {.worker_token = "", .submitter_token = ""});
  ASSERT_TRUE(srv.start()) << srv.process()->log();
  for (const std::string role : {"worker", "submitter"}) {
    const std::string path = srv.data_dir() + "/" + role + "-token";
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
    const std::string token = read_file(path).substr(0, 64);
    EXPECT_EQ(token.size(), 64u);
    const std::string log = srv.process()->log();
    EXPECT_NE(log.find(role + " token generated into " + path), std::string::npos) << log;
    EXPECT_EQ(log.find(token), std::string::npos) << "the log shows the " << role << " token";
  }
  // The generated worker token works as one, and only as one.
  const std::string wt = read_file(srv.data_dir() + "/worker-token").substr(0, 64);
  grpc::ClientContext c1;
  srv.prepare_as(c1, wt);
  v1::RegisterRequest rreq;
  rreq.set_name("gen");
  v1::RegisterResponse rresp;
  EXPECT_TRUE(srv.workers().Register(&c1, rreq, &rresp).ok());
  grpc::ClientContext c2;
  srv.prepare_as(c2, wt);
  v1::StatusResponse sr;
  EXPECT_EQ(srv.control().Status(&c2, v1::StatusRequest(), &sr).error_code(), StatusCode::PERMISSION_DENIED);
  // Restarted on the same data dir, the tokens are reused.
  srv.kill9();
  ASSERT_TRUE(srv.start()) << srv.process()->log();
  grpc::ClientContext c3;
  srv.prepare_as(c3, wt);
  EXPECT_TRUE(srv.workers().Register(&c3, rreq, &rresp).ok());
}

}  // namespace
}  // namespace spt::test
