// Issue 12, through the real spt-server: remote clients over a slow link
// (a 200 ms each-way DelayProxy), terminal-safe output, PutBlob that a
// client cancels, params that are not UTF-8, and binary --dataset files.
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/connection.h"
#include "delay_proxy.h"
#include "harness.h"
#include "spt/hash.h"
#include "spt/util.h"

namespace spt::test {
namespace {

constexpr int kDelayMs = 200;  // one way, as from Colab or across an ocean

class Remote : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    server_ = new Server(*dir_);
    ASSERT_TRUE(server_->start()) << server_->process()->log();
    proxy_ = new DelayProxy(server_->port(), kDelayMs);
  }
  static void TearDownTestSuite() {
    delete proxy_;
    delete server_;
    delete dir_;
  }

  // spt-client against `address` with the admin token.
  static RunResult client(std::vector<std::string> args, const std::string& address, double timeout_s = 60) {
    args.insert(args.begin(), client_bin());
    return run(args, {{"SPT_SERVER", address}, {"SPT_TOKEN_FILE", server_->token_file()}}, timeout_s);
  }

  static TempDir* dir_;
  static Server* server_;
  static DelayProxy* proxy_;
};
TempDir* Remote::dir_ = nullptr;
Server* Remote::server_ = nullptr;
DelayProxy* Remote::proxy_ = nullptr;

// The proxy really is a slow link: one call on a connected channel takes at
// least the round trip (a lower bound, so no flakiness from a slow box).
TEST_F(Remote, ProxyDelaysEachWay) {
  auto stub = v1::ControlService::NewStub(rpc::make_channel(proxy_->address()));
  auto call = [&] {
    grpc::ClientContext ctx;
    rpc::prepare(ctx, server_->token(), 30, true);
    v1::StatusResponse r;
    return stub->Status(&ctx, v1::StatusRequest(), &r);
  };
  ASSERT_TRUE(call().ok());  // connects
  const double t0 = monotonic_s();
  const grpc::Status s = call();
  const double rtt = monotonic_s() - t0;
  ASSERT_TRUE(s.ok()) << rpc::status_text(s);
  EXPECT_GE(rtt, 2 * kDelayMs / 1000.0 * 0.95);
  EXPECT_GE(proxy_->connections(), 1);
}

// With MIN_RECONNECT_BACKOFF_MS=100 gRPC gave up on the handshake after
// 100 ms: every command failed "connection attempt timed out before
// receiving SETTINGS frame".
TEST_F(Remote, ClientCommandsOverSlowLink) {
  const int before = proxy_->connections();
  const auto st = client({"status"}, proxy_->address());
  ASSERT_EQ(st.code, 0) << st.err;
  const auto sub = client({"submit", "selftest", "--param", "n=5", "--param", "work=10", "--json"}, proxy_->address());
  ASSERT_EQ(sub.code, 0) << sub.err;
  const int64_t id = nlohmann::json::parse(sub.out)["experiment_id"];
  auto worker = start_worker(*dir_, server_->address(), server_->token(), {.name = "near-w"});
  expect_complete(*server_, id, 5, 60);
  const auto res = client({"results", std::to_string(id), "--json"}, proxy_->address());
  ASSERT_EQ(res.code, 0) << res.err;
  EXPECT_EQ(nlohmann::json::parse(res.out)["experiment"]["state"], "done");
  const auto ws = client({"workers"}, proxy_->address());
  ASSERT_EQ(ws.code, 0) << ws.err;
  EXPECT_NE(ws.out.find("near-w"), std::string::npos) << ws.out;
  EXPECT_GE(proxy_->connections() - before, 4);  // each command went through the proxy
}

// A worker far from its coordinator registers, leases, reports, heartbeats.
TEST_F(Remote, WorkerOverSlowLinkCompletesJobs) {
  auto worker = start_worker(*dir_, proxy_->address(), server_->token(), {.name = "far-w", .slots = 2, .batch = 8});
  ASSERT_TRUE(wait_until([&] { return worker_named(*server_, "far-w").has_value(); }, 30)) << worker->log();
  const int64_t id = submit(*server_, "selftest", {{"n", "30"}, {"work", "10"}});
  expect_complete(*server_, id, 30, 120);
  const auto w = worker_named(*server_, "far-w");
  ASSERT_TRUE(w.has_value());
  EXPECT_GT(w->jobs_done(), 0) << worker->log();
}

// A worker named with "clear screen" (and a device name with a C1 CSI)
// registered through the real server: `spt-client workers` shows the
// escapes, never the raw bytes; --json keeps the exact name, escaped.
TEST_F(Remote, WorkerNamesReachTheTerminalEscaped) {
  const std::string evil = "evil\x1b[2J\x1b]0;pwned\x07";
  v1::RegisterRequest req;
  req.set_name(evil);
  req.mutable_capabilities()->set_device_kind("cpu");
  req.mutable_capabilities()->set_device_name("dev\xc2\x9b" "31m");
  req.mutable_capabilities()->set_slots(1);
  grpc::ClientContext ctx;
  server_->prepare(ctx);
  v1::RegisterResponse resp;
  const grpc::Status s = server_->workers().Register(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << rpc::status_text(s);

  const auto text = client({"workers"}, server_->address());
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out.find('\x1b'), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find('\x07'), std::string::npos);
  EXPECT_EQ(text.out.find("\xc2\x9b"), std::string::npos);
  EXPECT_NE(text.out.find("evil\\x1b[2J"), std::string::npos) << text.out;

  const auto dash = client({"status"}, server_->address());
  ASSERT_EQ(dash.code, 0) << dash.err;
  EXPECT_EQ(dash.out.find('\x1b'), std::string::npos) << dash.out;

  const auto json = client({"workers", "--json"}, server_->address());
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_EQ(json.out.find('\x1b'), std::string::npos);  // JSON escapes it as \u001b
  const auto doc = nlohmann::json::parse(json.out);
  bool found = false;
  for (const auto& w : doc["workers"]) found |= w["name"] == evil;
  EXPECT_TRUE(found) << json.out;

  // Error texts too: the server echoes the name in NOT_FOUND.
  const auto drain = client({"drain", "no\x1b[2Jone"}, server_->address());
  EXPECT_EQ(drain.code, 1);
  EXPECT_EQ(drain.err.find('\x1b'), std::string::npos) << drain.err;
  EXPECT_NE(drain.err.find("no\\x1b[2Jone"), std::string::npos) << drain.err;
}

// A client that cancels mid-upload, having sent no total_size, must leave
// nothing behind: no blob, no name.
TEST_F(Remote, CancelledUploadIsDiscarded) {
  const std::string data = "half of an upload that was never finished";
  const std::string sha = sha256_hex(data);
  auto upload = [&](const std::string& name, bool finish) {
    grpc::ClientContext ctx;
    server_->prepare(ctx);
    v1::PutBlobResponse resp;
    auto w = server_->control().PutBlob(&ctx, &resp);
    v1::BlobChunk c;
    c.set_name(name);
    c.set_data(data);
    EXPECT_TRUE(w->Write(c));
    if (finish) {
      w->WritesDone();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server has read the chunk
      ctx.TryCancel();
    }
    return w->Finish();
  };
  auto listed = [&](const std::string& prefix) {
    grpc::ClientContext ctx;
    server_->prepare(ctx);
    v1::ListArtifactsRequest req;
    req.set_prefix(prefix);
    v1::ListArtifactsResponse resp;
    EXPECT_TRUE(server_->control().ListArtifacts(&ctx, req, &resp).ok());
    return resp.artifacts_size();
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(upload("cancelled.bin", false).error_code(), grpc::CANCELLED);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the handlers finish
  EXPECT_EQ(listed("cancelled"), 0) << "a cancelled upload was named";
  {
    grpc::ClientContext ctx;
    server_->prepare(ctx);
    v1::FetchBlobRequest req;
    req.set_sha256(sha);
    auto r = server_->control().FetchBlob(&ctx, req);
    v1::BlobChunk c;
    while (r->Read(&c)) {
    }
    EXPECT_EQ(r->Finish().error_code(), grpc::NOT_FOUND) << "a cancelled upload was stored";
  }
  // The same upload, finished, is stored (so the test can see a blob).
  const grpc::Status ok = upload("finished.bin", true);
  ASSERT_TRUE(ok.ok()) << rpc::status_text(ok);
  EXPECT_EQ(listed("finished"), 1);
}

// Params are UTF-8 text. Any client sending other bytes gets a clear
// INVALID_ARGUMENT naming the param (it was a bare INTERNAL), and
// spt-client refuses before sending.
TEST_F(Remote, NonUtf8ParamsAreRefusedClearly) {
  v1::SubmitRequest req;
  req.set_experiment("selftest");
  (*req.mutable_params())["tag"] = "ok\xff\xfe";
  grpc::ClientContext ctx;
  server_->prepare(ctx);
  v1::SubmitResponse resp;
  const grpc::Status s = server_->control().Submit(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << rpc::status_text(s);
  EXPECT_NE(s.error_message().find("'tag'"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("not valid UTF-8"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("byte offset 2"), std::string::npos) << s.error_message();

  const auto r = client({"submit", "selftest", "--param", "tag=ab\xc3(x"}, server_->address());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--param tag: value is not valid UTF-8 (byte offset 2)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\xc3'), std::string::npos);
}

// A binary file given as --dataset is refused at the door, naming the
// file and the offending byte.
TEST_F(Remote, BinaryDatasetIsRefused) {
  const std::string nul = dir_->file("model.bin"), latin1 = dir_->file("latin1.txt"), text = dir_->file("ok.raw");
  std::ofstream(nul, std::ios::binary) << std::string("PK\x03\x04", 4) << std::string(3, '\0') << "rest";
  std::ofstream(latin1, std::ios::binary) << "caf\xe9 au lait\n";
  {
    // Valid text whose multi-byte characters straddle the reader's 64 KiB chunks.
    std::ofstream out(text, std::ios::binary);
    for (int i = 0; i < 50000; ++i) out << "\xc3\xa9\xe2\x82\xac ";
  }
  const auto a = client({"submit", "selftest", "--dataset", nul}, server_->address());
  EXPECT_EQ(a.code, 1);
  EXPECT_NE(a.err.find("--dataset " + nul + " is not a text file: NUL byte at byte offset 4"), std::string::npos)
      << a.err;
  const auto b = client({"submit", "selftest", "--dataset", latin1}, server_->address());
  EXPECT_EQ(b.code, 1);
  EXPECT_NE(b.err.find("--dataset " + latin1 + " is not UTF-8 text: invalid byte at byte offset 3"), std::string::npos)
      << b.err;
  // A good text file passes the door check (selftest then refuses the param).
  const auto c = client({"submit", "selftest", "--dataset", text}, server_->address());
  EXPECT_EQ(c.err.find("text file"), std::string::npos) << c.err;
  EXPECT_EQ(c.err.find("UTF-8"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("dataset"), std::string::npos) << c.err;  // the plan names the param it does not take
}

}  // namespace
}  // namespace spt::test
