// spt-server's gRPC surface, in process on a loopback port: auth,
// validation, message limits, blobs, and one job through the real API.
#include "server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "spt/hash.h"

namespace spt::server {
namespace {

namespace fs = std::filesystem;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/spt_server_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ServerConfig cfg;
    cfg.listen = "127.0.0.1:0";
    cfg.data_dir = dir_;
    cfg.token = "s3cret";
    server_ = Server::start(cfg);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    auto ch = grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args);
    worker_ = v1::WorkerService::NewStub(ch);
    control_ = v1::ControlService::NewStub(ch);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  std::unique_ptr<grpc::ClientContext> ctx(const std::string& token = "s3cret") {
    auto c = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) c->AddMetadata("authorization", "Bearer " + token);
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return c;
  }
  std::string register_worker() {
    v1::RegisterRequest req;
    req.set_name("test-worker");
    req.mutable_capabilities()->add_job_kinds("selftest.map");
    req.mutable_capabilities()->add_job_kinds("selftest.reduce");
    v1::RegisterResponse resp;
    EXPECT_TRUE(worker_->Register(ctx().get(), req, &resp).ok());
    secrets_[resp.worker_id()] = resp.worker_secret();  // worker RPCs must carry it (issue 12)
    return resp.worker_id();
  }
  int64_t submit_selftest(int n) {
    v1::SubmitRequest req;
    req.set_experiment("selftest");
    (*req.mutable_params())["n"] = std::to_string(n);
    (*req.mutable_params())["tag"] = dir_;  // no reuse across test runs
    v1::SubmitResponse resp;
    auto s = control_->Submit(ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.experiment_id();
  }
  v1::LeaseResponse lease(const std::string& w, int max = 100) {
    v1::LeaseRequest req;
    req.set_worker_id(w);
    req.set_worker_secret(secrets_[w]);
    req.set_max_jobs(max);
    v1::LeaseResponse resp;
    EXPECT_TRUE(worker_->Lease(ctx().get(), req, &resp).ok());
    return resp;
  }

  std::string dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::WorkerService::Stub> worker_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::map<std::string, std::string> secrets_;  // worker id -> RegisterResponse.worker_secret
};

TEST_F(ServerTest, EveryServiceRequiresTheBearerToken) {
  v1::StatusRequest sreq;
  v1::StatusResponse sresp;
  for (const std::string tok : {"", "wrong", "s3cret-but-longer"}) {
    auto s = control_->Status(ctx(tok).get(), sreq, &sresp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << tok;
    EXPECT_EQ(s.error_message(), "missing or invalid bearer token");
  }
  v1::RegisterRequest rreq;
  rreq.set_name("x");
  v1::RegisterResponse rresp;
  EXPECT_EQ(worker_->Register(ctx("nope").get(), rreq, &rresp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto c = std::make_unique<grpc::ClientContext>();
  c->AddMetadata("authorization", "s3cret");  // no "Bearer "
  EXPECT_EQ(control_->Status(c.get(), sreq, &sresp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(control_->Status(ctx().get(), sreq, &sresp).ok());
}

TEST_F(ServerTest, BadSubmissionsSayWhatIsWrong) {
  v1::SubmitRequest req;
  v1::SubmitResponse resp;
  auto s = control_->Submit(ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("selftest"), std::string::npos) << s.error_message();

  req.set_experiment("exp99");
  s = control_->Submit(ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("unknown experiment 'exp99'"), std::string::npos) << s.error_message();

  req.set_experiment("selftest");
  (*req.mutable_params())["nn"] = "3";
  s = control_->Submit(ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("unknown param 'nn'"), std::string::npos) << s.error_message();

  v1::StatusRequest sreq;
  sreq.mutable_experiment()->set_name("never-submitted");
  v1::StatusResponse sresp;
  EXPECT_EQ(control_->Status(ctx().get(), sreq, &sresp).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::CancelRequest creq;  // no experiment named
  v1::CancelResponse cresp;
  EXPECT_EQ(control_->Cancel(ctx().get(), creq, &cresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServerTest, BadWorkerRequestsAreRejected) {
  v1::LeaseRequest req;
  v1::LeaseResponse resp;
  req.set_max_jobs(1);
  EXPECT_EQ(worker_->Lease(ctx().get(), req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_worker_id("w-unknown");
  auto s = worker_->Lease(ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);  // the worker registers again
  req.set_worker_id(register_worker());
  req.set_worker_secret(secrets_[req.worker_id()]);
  req.set_max_jobs(0);
  EXPECT_EQ(worker_->Lease(ctx().get(), req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::RegisterRequest rreq;  // nameless
  v1::RegisterResponse rresp;
  EXPECT_EQ(worker_->Register(ctx().get(), rreq, &rresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ReportRequest rep;
  rep.set_worker_id(req.worker_id());
  rep.set_worker_secret(secrets_[req.worker_id()]);
  rep.add_results()->set_job_id(1);  // no lease id: refused alone, saying why (issue 12), not the batch
  v1::ReportResponse reps;
  ASSERT_TRUE(worker_->Report(ctx().get(), rep, &reps).ok());
  ASSERT_EQ(reps.refused_size(), 1);
  ASSERT_EQ(reps.problems_size(), 1);
  EXPECT_FALSE(reps.problems(0).stored_as_failure());
  EXPECT_NE(reps.problems(0).reason().find("no lease_id"), std::string::npos) << reps.problems(0).reason();
}

TEST_F(ServerTest, AJobRunsThroughTheApi) {
  const auto w = register_worker();
  const int64_t exp = submit_selftest(2);
  for (int round = 0; round < 2; ++round) {
    auto l = lease(w);
    ASSERT_GT(l.jobs_size(), 0);
    v1::ReportRequest rep;
    rep.set_worker_id(w);
    rep.set_worker_secret(secrets_[w]);
    for (const auto& j : l.jobs()) {
      auto* r = rep.add_results();
      r->set_job_id(j.job_id());
      r->set_lease_id(j.lease_id());
      r->set_ok(true);
      r->set_result_json(R"({"ok":true})");
    }
    v1::ReportResponse resp;
    ASSERT_TRUE(worker_->Report(ctx().get(), rep, &resp).ok());
    EXPECT_EQ(resp.accepted_size(), l.jobs_size());
  }
  v1::ResultsRequest rq;
  rq.mutable_experiment()->set_id(exp);
  v1::ResultsResponse rs;
  ASSERT_TRUE(control_->Results(ctx().get(), rq, &rs).ok());
  EXPECT_EQ(rs.experiment().state(), "done");
  ASSERT_EQ(rs.reduce_results_size(), 1);

  v1::LogsRequest lq;
  lq.mutable_experiment()->set_name("selftest");
  lq.set_job_name("map/1");
  v1::LogsResponse ls;
  ASSERT_TRUE(control_->Logs(ctx().get(), lq, &ls).ok());
  EXPECT_EQ(ls.job().state(), "done");
  EXPECT_GE(ls.events_size(), 3);

  v1::ListWorkersResponse wr;
  ASSERT_TRUE(control_->ListWorkers(ctx().get(), v1::ListWorkersRequest{}, &wr).ok());
  ASSERT_EQ(wr.workers_size(), 1);
  EXPECT_EQ(wr.workers(0).jobs_done(), 3);
}

TEST_F(ServerTest, UnstorableResultsFailTheJobInsteadOfTheBatch) {
  const auto w = register_worker();
  const int64_t exp = submit_selftest(2);
  auto l = lease(w, 2);
  ASSERT_EQ(l.jobs_size(), 2);
  v1::ReportRequest rep;
  rep.set_worker_id(w);
  rep.set_worker_secret(secrets_[w]);
  auto* bad_json = rep.add_results();
  bad_json->set_job_id(l.jobs(0).job_id());
  bad_json->set_lease_id(l.jobs(0).lease_id());
  bad_json->set_ok(true);
  bad_json->set_result_json("{not json");
  auto* no_blob = rep.add_results();
  no_blob->set_job_id(l.jobs(1).job_id());
  no_blob->set_lease_id(l.jobs(1).lease_id());
  no_blob->set_ok(true);
  no_blob->set_result_json("{}");
  auto* a = no_blob->add_artifacts();
  a->set_name("fig.png");
  a->set_sha256(std::string(64, 'e'));
  v1::ReportResponse resp;
  ASSERT_TRUE(worker_->Report(ctx().get(), rep, &resp).ok());
  EXPECT_EQ(resp.accepted_size(), 2);
  v1::LogsRequest lq;
  lq.set_job_id(l.jobs(0).job_id());
  v1::LogsResponse ls;
  ASSERT_TRUE(control_->Logs(ctx().get(), lq, &ls).ok());
  EXPECT_EQ(ls.job().state(), "failed");
  EXPECT_NE(ls.job().error().find("not valid JSON"), std::string::npos);
  lq.set_job_id(l.jobs(1).job_id());
  ASSERT_TRUE(control_->Logs(ctx().get(), lq, &ls).ok());
  EXPECT_EQ(ls.job().state(), "pending");  // retried: the upload may still come
  EXPECT_NE(ls.job().error().find("not uploaded"), std::string::npos);
  (void)exp;
}

TEST_F(ServerTest, OversizedMessagesAreRefusedAndTheServerCarriesOn) {
  const auto w = register_worker();
  v1::ReportRequest rep;
  rep.set_worker_id(w);
  rep.set_worker_secret(secrets_[w]);
  auto* r = rep.add_results();
  r->set_job_id(1);
  r->set_lease_id("x");
  r->set_log(std::string(17 << 20, 'x'));
  v1::ReportResponse resp;
  auto s = worker_->Report(ctx().get(), rep, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  v1::StatusResponse sresp;
  EXPECT_TRUE(control_->Status(ctx().get(), v1::StatusRequest{}, &sresp).ok());
}

TEST_F(ServerTest, BlobsRoundTripInChunksAndByName) {
  std::string data(2'500'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  const std::string sha = sha256_hex(data);
  {
    v1::PutBlobResponse resp;
    auto c = ctx();
    auto up = control_->PutBlob(c.get(), &resp);
    for (size_t off = 0; off < data.size(); off += 1 << 20) {
      v1::BlobChunk ch;
      if (off == 0) {
        ch.set_sha256(sha);
        ch.set_name("models/test/weights.bin");
        ch.set_total_size(static_cast<int64_t>(data.size()));
      }
      ch.set_data(data.substr(off, 1 << 20));
      ASSERT_TRUE(up->Write(ch));
    }
    up->WritesDone();
    auto s = up->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.artifact().sha256(), sha);
    EXPECT_EQ(resp.artifact().size(), static_cast<int64_t>(data.size()));
  }
  EXPECT_TRUE(fs::exists(dir_ + "/blobs/" + sha.substr(0, 2) + "/" + sha.substr(2)));

  v1::ListArtifactsRequest lreq;
  lreq.set_prefix("models/");
  v1::ListArtifactsResponse lresp;
  ASSERT_TRUE(control_->ListArtifacts(ctx().get(), lreq, &lresp).ok());
  ASSERT_EQ(lresp.artifacts_size(), 1);
  EXPECT_EQ(lresp.artifacts(0).sha256(), sha);

  v1::FetchBlobRequest freq;
  freq.set_name("models/test/weights.bin");
  auto c = ctx();
  auto down = worker_->FetchBlob(c.get(), freq);
  v1::BlobChunk ch;
  std::string got;
  int chunks = 0;
  while (down->Read(&ch)) {
    if (chunks == 0) EXPECT_EQ(ch.total_size(), static_cast<int64_t>(data.size()));
    got += ch.data();
    ++chunks;
  }
  ASSERT_TRUE(down->Finish().ok());
  EXPECT_EQ(chunks, 3);
  EXPECT_EQ(got, data);

  // A corrupted upload is refused and nothing is stored.
  v1::PutBlobResponse resp;
  auto c2 = ctx();
  auto up = worker_->PutBlob(c2.get(), &resp);
  v1::BlobChunk bad;
  bad.set_sha256(std::string(64, '0'));
  bad.set_data("hello");
  ASSERT_TRUE(up->Write(bad));
  up->WritesDone();
  EXPECT_EQ(up->Finish().error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));

  v1::FetchBlobRequest missing;
  missing.set_sha256(std::string(64, '1'));
  auto c3 = ctx();
  auto none = worker_->FetchBlob(c3.get(), missing);
  while (none->Read(&ch)) {
  }
  EXPECT_EQ(none->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerTest, GeneratedTokenIsPrivateAndStable) {
  std::string source;
  unsetenv("SPT_TOKEN");
  const std::string t1 = resolve_token("", dir_ + "/tok", &source);
  EXPECT_EQ(t1.size(), 64u);
  EXPECT_NE(source.find("generated"), std::string::npos);
  EXPECT_EQ(fs::status(dir_ + "/tok/token").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(resolve_token("", dir_ + "/tok", &source), t1);  // reused on restart
}

}  // namespace
}  // namespace spt::server
