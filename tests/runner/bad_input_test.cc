// Bad input gets a clear error, and the server keeps serving afterwards.
#include <signal.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "client/connection.h"
#include "harness.h"
#include "spt/hash.h"
#include "spt/util.h"

namespace spt::test {
namespace {

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    server_ = new Server(*dir_);
    ASSERT_TRUE(server_->start()) << server_->process()->log();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  static grpc::Status submit_raw(const std::string& exp, const std::map<std::string, std::string>& params,
                                 const std::string& token) {
    auto ch = rpc::make_channel(server_->address());
    auto stub = v1::ControlService::NewStub(ch);
    grpc::ClientContext ctx;
    rpc::prepare(ctx, token, 30, true);
    v1::SubmitRequest req;
    req.set_experiment(exp);
    for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
    v1::SubmitResponse resp;
    return stub->Submit(&ctx, req, &resp);
  }
  static grpc::Status submit(const std::string& exp, const std::map<std::string, std::string>& params) {
    return submit_raw(exp, params, server_->token());
  }
  // A valid request right after the bad one must succeed.
  static void expect_still_serving() {
    const grpc::Status s = submit("selftest", {{"n", "1"}});
    EXPECT_TRUE(s.ok()) << rpc::status_text(s) << "\n" << server_->process()->log();
    EXPECT_TRUE(server_->process()->running());
  }

  static TempDir* dir_;
  static Server* server_;
};
TempDir* BadInput::dir_ = nullptr;
Server* BadInput::server_ = nullptr;

TEST_F(BadInput, UnknownExperiment) {
  const grpc::Status s = submit("exp99", {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << rpc::status_text(s);
  EXPECT_NE(s.error_message().find("unknown experiment"), std::string::npos) << s.error_message();
  expect_still_serving();
}

TEST_F(BadInput, MalformedParams) {
  grpc::Status s = submit("selftest", {{"n", "abc"}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << rpc::status_text(s);
  EXPECT_NE(s.error_message().find("n=abc"), std::string::npos) << s.error_message();
  s = submit("selftest", {{"bogus", "1"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error_message().find("unknown param 'bogus'"), std::string::npos) << s.error_message();
  s = submit("selftest", {{"n", "-5"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error_message().find("out of range"), std::string::npos) << s.error_message();
  expect_still_serving();
}

TEST_F(BadInput, WrongAndAbsentToken) {
  for (const std::string token : {"not-the-token", ""}) {
    const grpc::Status s = submit_raw("selftest", {{"n", "1"}}, token);
    ASSERT_FALSE(s.ok()) << "token '" << token << "' accepted";
    EXPECT_EQ(s.error_code(), grpc::UNAUTHENTICATED) << rpc::status_text(s);
    EXPECT_FALSE(s.error_message().empty());
  }
  expect_still_serving();
}

TEST_F(BadInput, WorkerWithWrongTokenExitsWithMessage) {
  auto w = start_worker(*dir_, server_->address(), "not-the-token", {.name = "intruder"});
  const auto code = w->wait(30);
  ASSERT_TRUE(code.has_value()) << w->log();
  EXPECT_EQ(*code, 2);
  EXPECT_NE(w->log().find("UNAUTHENTICATED"), std::string::npos) << w->log();
  expect_still_serving();
}

TEST_F(BadInput, OversizedRequest) {
  const grpc::Status s = submit("selftest", {{"tag", std::string(17 << 20, 'x')}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED) << rpc::status_text(s);
  expect_still_serving();
}

TEST_F(BadInput, ClientReportsErrorsWithHints) {
  auto r = run({client_bin(), "--server", server_->address(), "--token", "wrong", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("UNAUTHENTICATED"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hint"), std::string::npos) << r.err;
  r = run({client_bin(), "--server", server_->address(), "--token", server_->token(), "submit", "selftest", "--param",
           "n=abc"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("n=abc"), std::string::npos) << r.err;
  r = run({client_bin(), "--server", server_->address(), "--token", server_->token(), "submit", "selftest", "--param",
           "novalue"});
  EXPECT_EQ(r.code, 2);  // a usage error (issue 11: exit 2, like git)
  EXPECT_NE(r.err.find("key=value"), std::string::npos) << r.err;
  r = run({client_bin(), "--server", "127.0.0.1:" + std::to_string(free_port()), "--timeout-s", "3", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
  r = run({client_bin(), "--server", server_->address(), "--token", server_->token(), "results", "no-such-exp"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.err;
  expect_still_serving();
}

// A server given a damaged database exits non-zero with a clear message
// and leaves the file as it was.
void expect_refuses_db(const TempDir& dir, const std::string& what) {
  Server s(dir, {}, 0);
  const std::string before = sha256_file(s.db());
  EXPECT_FALSE(s.start(20)) << what << ": server started on a damaged database";
  const auto code = s.process()->wait(20);
  ASSERT_TRUE(code.has_value()) << what;
  EXPECT_NE(*code, 0) << what;
  const std::string log = s.process()->log();
  EXPECT_NE(log.find(s.db()), std::string::npos) << what << ": message should name the file:\n" << log;
  EXPECT_EQ(sha256_file(s.db()), before) << what << ": the file was modified";
}

TEST(BadDatabase, GarbageFile) {
  TempDir dir;
  std::string junk = "SQLite format 3";
  junk.push_back('\0');
  for (int i = 0; i < 5000; ++i) junk.push_back(static_cast<char>((i * 131) ^ (i >> 3)));
  write_file_atomic(dir.file("spt.db"), junk);
  expect_refuses_db(dir, "garbage");
}

TEST(BadDatabase, NotADatabase) {
  TempDir dir;
  write_file_atomic(dir.file("spt.db"), "this is a text file, not a database\n");
  expect_refuses_db(dir, "text");
}

TEST(BadDatabase, TruncatedDatabase) {
  TempDir dir;
  {
    Server s(dir);
    ASSERT_TRUE(s.start()) << s.process()->log();
    submit(s, "selftest", {{"n", "500"}});
    s.process()->signal(SIGTERM);
    ASSERT_TRUE(s.process()->wait(30).has_value());
  }
  std::error_code ec;
  for (const char* suffix : {"-wal", "-shm"}) std::filesystem::remove(dir.file(std::string("spt.db") + suffix), ec);
  const std::string full = read_file(dir.file("spt.db"));
  ASSERT_GT(full.size(), 8192u);
  write_file_atomic(dir.file("spt.db"), full.substr(0, full.size() / 2 + 100));
  expect_refuses_db(dir, "truncated");
}

}  // namespace
}  // namespace spt::test
