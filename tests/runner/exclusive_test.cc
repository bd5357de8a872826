// Exclusive jobs through real processes: two spt-worker processes with two
// slots each run selftests in which every k-th map job is exclusive; each
// map result says which worker ran it and when (steady clock, shared by the
// processes of one machine). No job may overlap an exclusive one on its
// worker, and every job must complete exactly once.
#include <signal.h>

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/connection.h"
#include "harness.h"

namespace spt::test {
namespace {

struct Ran {
  std::string name;  // "<experiment id>:map/<i>"
  std::string worker;
  double t0 = 0, t1 = 0;
  bool exclusive = false;
};

// Reads every map job of a selftest experiment of n jobs, with exclusive_every
// = k, and checks each completed exactly once.
void collect(Server& server, int64_t id, int n, int k, std::vector<Ran>* out) {
  for (int i = 0; i < n; ++i) {
    const std::string job = "map/" + std::to_string(i);
    const v1::LogsResponse resp = job_logs(server, id, job);
    ASSERT_EQ(resp.job().state(), "done") << resp.DebugString();
    int done = 0, leased_exclusive = 0;
    for (const auto& e : resp.events()) {
      done += e.event() == "done";
      leased_exclusive += e.event() == "leased" && e.detail().find("exclusive") != std::string::npos;
    }
    EXPECT_EQ(done, 1) << resp.DebugString();
    const bool want_exclusive = (i + 1) % k == 0;
    EXPECT_EQ(leased_exclusive > 0, want_exclusive) << resp.DebugString();
    const auto r = nlohmann::json::parse(resp.job().result_json());
    ASSERT_TRUE(r.contains("worker") && r.contains("t0") && r.contains("t1")) << r.dump();
    EXPECT_EQ(r["i"], i);
    EXPECT_EQ(r["exclusive"], want_exclusive);
    Ran x;
    x.name = std::to_string(id) + ":" + job;
    x.worker = r["worker"].get<std::string>();
    x.t0 = r["t0"].get<double>();
    x.t1 = r["t1"].get<double>();
    x.exclusive = want_exclusive;
    EXPECT_LE(x.t0, x.t1);
    out->push_back(std::move(x));
  }
}

TEST(Exclusive, NoJobSharesAWorkerWithAnExclusiveOne) {
  TempDir dir;
  Server server(dir);
  ASSERT_TRUE(server.start()) << server.process()->log();
  std::vector<std::unique_ptr<Process>> workers;
  for (const char* name : {"wa", "wb"})
    workers.push_back(start_worker(dir, server.address(), server.token(), {.name = name, .slots = 2, .batch = 4}));
  // Every job sleeps 20 ms first (stall on attempt 1), so the two slots of a
  // worker run jobs side by side and any job beside an exclusive one would
  // show as an overlap.
  const int n = 200, k = 20;
  const int64_t id = submit(server, "selftest",
                            {{"n", std::to_string(n)}, {"work", "1000"}, {"stall", "1"}, {"stall_s", "0.02"},
                             {"exclusive_every", std::to_string(k)}, {"seed", "11"}});
  ASSERT_GT(id, 0);
  // Exclusive jobs of a higher priority arriving while both workers are busy
  // with shared ones: the workers must empty before one takes each of them.
  ASSERT_TRUE(wait_until([&] { return experiment_status(server, id).counts().done() >= 40; }, 60));
  const int n2 = 24, k2 = 4;
  const int64_t id2 = submit(server, "selftest",
                             {{"n", std::to_string(n2)}, {"work", "1000"}, {"stall", "1"}, {"stall_s", "0.02"},
                              {"exclusive_every", std::to_string(k2)}, {"seed", "12"}},
                             5);
  ASSERT_GT(id2, 0);
  expect_complete(server, id, n, 180);
  expect_complete(server, id2, n2, 180);

  std::vector<Ran> ran;
  collect(server, id, n, k, &ran);
  collect(server, id2, n2, k2, &ran);
  ASSERT_EQ(ran.size(), static_cast<size_t>(n + n2));

  std::map<std::string, int> per_worker;
  int exclusive = 0, side_by_side = 0;
  for (const auto& e : ran) {
    ++per_worker[e.worker];
    if (!e.exclusive) continue;
    ++exclusive;
    for (const auto& o : ran) {
      if (&o == &e || o.worker != e.worker) continue;
      EXPECT_TRUE(o.t1 <= e.t0 || o.t0 >= e.t1)
          << o.name << " [" << o.t0 << ", " << o.t1 << "] overlapped exclusive " << e.name << " [" << e.t0 << ", "
          << e.t1 << "] on " << e.worker;
    }
  }
  // Shared jobs did run side by side on a worker: the check above could see it.
  for (size_t a = 0; a < ran.size(); ++a)
    for (size_t b = a + 1; b < ran.size(); ++b)
      side_by_side += !ran[a].exclusive && !ran[b].exclusive && ran[a].worker == ran[b].worker &&
                      ran[a].t0 < ran[b].t1 && ran[b].t0 < ran[a].t1;
  EXPECT_EQ(exclusive, n / k + n2 / k2);
  EXPECT_GT(side_by_side, 0);
  EXPECT_EQ(per_worker.size(), 2u);
  for (auto& w : workers) {
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait(30).value_or(-999), 0) << w->log();
  }
}

}  // namespace
}  // namespace spt::test
