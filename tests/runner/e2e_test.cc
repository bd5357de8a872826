// End to end: spt-server + several spt-worker processes run a selftest
// sweep to completion, and the reduce's check proves every unit ran once.
#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/connection.h"
#include "harness.h"

namespace spt::test {
namespace {

TEST(EndToEnd, ThreeWorkersRunSelftest2000) {
  TempDir dir;
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < 3; ++i)
    workers.push_back(start_worker(dir, server.address(), server.token(),
                                   {.name = "w" + std::to_string(i), .slots = 2, .batch = 32}));
  // fail=0.1: some attempts fail and are retried (the seed fixes which).
  const int64_t id = submit(server, "selftest", {{"n", "2000"}, {"work", "1000"}, {"fail", "0.1"}, {"seed", "5"}});
  ASSERT_GT(id, 0);
  expect_complete(server, id, 2000, 180);

  // Every worker registered, is alive, and did some of the work.
  grpc::ClientContext ctx;
  server.prepare(ctx);
  v1::ListWorkersResponse lw;
  ASSERT_TRUE(server.control().ListWorkers(&ctx, v1::ListWorkersRequest(), &lw).ok());
  int alive = 0;
  int64_t done = 0;
  for (const auto& w : lw.workers()) {
    alive += w.alive();
    done += w.jobs_done();
    EXPECT_EQ(w.capabilities().device_kind(), "cpu");
  }
  EXPECT_EQ(alive, 3);
  EXPECT_GE(done, 2001);  // failed attempts may count as work done too
  for (auto& w : workers) {
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait(30).value_or(-999), 0) << w->log();
  }
}

}  // namespace
}  // namespace spt::test
