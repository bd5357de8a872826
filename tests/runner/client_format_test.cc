// spt-client's renderings, in process.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <tuple>

#include <gtest/gtest.h>

#include "config.h"
#include "format.h"
#include "json_out.h"
#include "spt/cli_conventions.h"

namespace spt::client {
namespace {

TEST(JsonOut, AllFieldsWithNumbersForInt64) {
  v1::StatusResponse s;
  s.set_server_time_unix_ms(1700000000123);
  auto* e = s.add_experiments();
  e->set_id(42);
  e->set_name("selftest");
  e->mutable_counts()->set_done(7);
  e->set_eta_s(-1);
  auto* w = s.add_workers();
  w->add_current_job_ids(9007199254740991LL);
  w->add_current_job_names("map/1");
  const auto j = to_json(s);
  EXPECT_TRUE(j["server_time_unix_ms"].is_number_integer());
  EXPECT_EQ(j["server_time_unix_ms"].get<int64_t>(), 1700000000123);
  EXPECT_EQ(j["experiments"][0]["id"], 42);
  EXPECT_EQ(j["experiments"][0]["counts"]["done"], 7);
  EXPECT_EQ(j["experiments"][0]["counts"]["failed"], 0);  // defaults are present
  EXPECT_EQ(j["experiments"][0]["params_json"], "");
  EXPECT_EQ(j["experiments"][0]["eta_s"], -1.0);
  EXPECT_EQ(j["workers"][0]["current_job_ids"][0].get<int64_t>(), 9007199254740991LL);
  EXPECT_TRUE(j["workers"][0]["capabilities"]["job_kinds"].is_array());
  EXPECT_EQ(nlohmann::json::parse(dump(j)), j);
}

TEST(JsonOut, MapsBecomeObjects) {
  v1::SubmitRequest r;
  (*r.mutable_params())["n"] = "5";
  const auto j = to_json(r);
  EXPECT_EQ(j["params"]["n"], "5");
}

TEST(JsonOut, InvalidUtf8DoesNotThrow) {
  v1::JobSummary s;
  s.set_error(std::string("bad \xff byte"));
  EXPECT_NO_THROW(dump(to_json(s)));
}

TEST(Format, Durations) {
  EXPECT_EQ(duration(-1), "-");
  EXPECT_EQ(duration(0.45), "0.5s");
  EXPECT_EQ(duration(42), "42s");
  EXPECT_EQ(duration(75), "1m15s");
  EXPECT_EQ(duration(7300), "2h01m");
}

TEST(Format, ProgressBar) {
  v1::Counts c;
  c.set_total(10);
  c.set_done(5);
  c.set_failed(1);
  EXPECT_EQ(progress_bar(c, 10), "[#####x....]");
  c.set_done(10);
  c.set_failed(0);
  EXPECT_EQ(progress_bar(c, 4), "[####]");
  EXPECT_EQ(progress_bar(v1::Counts(), 3), "[...]");
}

TEST(Format, TableAlignsColumns) {
  EXPECT_EQ(table({{"A", "BB"}, {"ccc", "d"}}), "A    BB\nccc  d\n");
}

TEST(Format, DashboardShowsCountsAndWorkers) {
  v1::StatusResponse s;
  s.set_server_time_unix_ms(10000);
  auto* e = s.add_experiments();
  e->set_id(3);
  e->set_name("selftest");
  e->set_state("running");
  e->mutable_counts()->set_total(4);
  e->mutable_counts()->set_done(2);
  e->mutable_counts()->set_pending(2);
  e->set_eta_s(12);
  auto* w = s.add_workers();
  w->set_name("gpu-1");
  w->mutable_capabilities()->set_device_kind("cuda");
  w->set_last_heartbeat_unix_ms(8000);
  w->set_alive(true);
  const std::string d = dashboard(s);
  EXPECT_NE(d.find("#3 selftest"), std::string::npos) << d;
  EXPECT_NE(d.find("2/4 done"), std::string::npos) << d;
  EXPECT_NE(d.find("pending 2"), std::string::npos) << d;
  EXPECT_NE(d.find("ETA 12s"), std::string::npos) << d;
  EXPECT_NE(d.find("gpu-1"), std::string::npos) << d;
  EXPECT_NE(d.find("2.0s ago"), std::string::npos) << d;
}

// Jobs no live worker can hold say so; with no live worker at all the
// dashboard says it is waiting for one rather than calling them unschedulable.
TEST(Format, UnschedulableJobsAndAPoolWithoutWorkers) {
  v1::StatusResponse s;
  auto* e = s.add_experiments();
  e->set_id(1);
  e->set_name("exp9");
  e->set_state("running");
  auto* u = s.add_unschedulable();
  u->set_experiment_id(1);
  u->set_n_jobs(4);
  u->set_example_job("a/x");
  u->set_reason("needs 7.2 GiB; largest live worker has 1.0 GiB");
  std::string d = dashboard(s);
  EXPECT_NE(d.find("UNSCHEDULABLE 4 pending jobs (e.g. a/x): needs 7.2 GiB; largest live worker has 1.0 GiB"),
            std::string::npos) << d;
  u->set_reason("needs 1.5 GiB; no live worker");
  d = dashboard(s);
  EXPECT_NE(d.find("WAITING FOR A WORKER 4 pending jobs"), std::string::npos) << d;
  EXPECT_EQ(d.find("UNSCHEDULABLE"), std::string::npos) << d;
}

// ---- issue 11: failures explained, width-aware tables, golden dashboards

// A status with a failing experiment (grouped messages, retries, jobs failed
// through dependencies) and workers with long names and job lists.
v1::StatusResponse busy_status() {
  v1::StatusResponse s;
  s.set_server_time_unix_ms(1700000600000);
  auto* e = s.add_experiments();
  e->set_id(12);
  e->set_name("exp10");
  e->set_parts("abcd");
  e->set_state("failed");
  e->set_priority(0);
  e->set_submitted_unix_ms(1700000000000);
  e->set_finished_unix_ms(1700000300000);
  auto* c = e->mutable_counts();
  c->set_total(171);
  c->set_done(2);
  c->set_failed(169);
  e->set_throughput_per_s(0.0066);
  e->set_retries(4);
  e->set_failed_by_dependency(167);
  e->set_failure_kinds(2);
  auto* g = e->add_failures();
  g->set_error(
      "model gpt2 not found: not in the Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub) and "
      "HF_HUB_OFFLINE is set, so nothing was downloaded\nsecond line of detail");
  g->set_count(1);
  g->set_example_job("a/baseline");
  g->set_example_job_id(1001);
  g = e->add_failures();
  g->set_error("dataset 'wikitext-2-raw' not found");
  g->set_count(1);
  g->set_example_job("v/chunks");
  g->set_example_job_id(1002);
  for (const auto& [part, done, failed] : std::vector<std::tuple<std::string, int, int>>{
           {"a", 2, 146}, {"c", 0, 20}, {"exp10", 0, 1}, {"exp3", 0, 2}}) {
    auto* p = e->add_part_progress();
    p->set_part(part);
    p->mutable_counts()->set_done(done);
    p->mutable_counts()->set_failed(failed);
    p->mutable_counts()->set_total(done + failed);
  }
  auto* r = s.add_experiments();
  r->set_id(13);
  r->set_name("selftest");
  r->set_state("running");
  r->set_submitted_unix_ms(1700000500000);
  r->mutable_counts()->set_total(2001);
  r->mutable_counts()->set_done(1500);
  r->mutable_counts()->set_leased(32);
  r->mutable_counts()->set_pending(468);
  r->mutable_counts()->set_blocked(1);
  r->set_throughput_per_s(15.0);
  r->set_eta_s(33.4);
  for (int i = 0; i < 2; ++i) {
    auto* w = s.add_workers();
    w->set_name(i ? "colab-t4" : "gpu-node-017.cluster.example.org");
    w->set_worker_id(i ? "w-4f1c2a9e" : "w-0b8d77aa");
    w->mutable_capabilities()->set_device_kind(i ? "cuda" : "cpu");
    w->mutable_capabilities()->set_device_name(i ? "Tesla T4" : "AMD EPYC 7B13 64-Core Processor");
    w->mutable_capabilities()->set_slots(i ? 1 : 4);
    w->set_last_heartbeat_unix_ms(1700000599000);
    w->set_alive(i == 0);
    w->set_jobs_done(i ? 12 : 1480);
    for (int j = 0; j < (i ? 0 : 5); ++j) {
      w->add_current_job_ids(100 + j);
      w->add_current_job_names("map/" + std::to_string(1500 + j));
    }
  }
  return s;
}

std::string golden(const std::string& name) {
  std::ifstream in(std::string(SPT_RUNNER_GOLDEN) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in) << "missing golden file " << name << " (SPT_WRITE_GOLDEN=1 writes it)";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void check_golden(const std::string& name, const std::string& got) {
  if (std::getenv("SPT_WRITE_GOLDEN")) {
    std::ofstream(std::string(SPT_RUNNER_GOLDEN) + "/" + name, std::ios::binary) << got;
    return;
  }
  EXPECT_EQ(got, golden(name)) << "rendering changed; review, then rerun with SPT_WRITE_GOLDEN=1";
}

size_t widest_line(const std::string& text) {
  size_t w = 0, n = 0;
  for (unsigned char ch : text) {
    if (ch == '\n') {
      w = std::max(w, n);
      n = 0;
    } else if ((ch & 0xC0) != 0x80) {
      ++n;
    }
  }
  return std::max(w, n);
}

TEST(Format, TableNarrowsToWidth) {
  const std::vector<std::vector<std::string>> rows = {{"NAME", "JOBS"},
                                                      {"short", "a very long list of current jobs here"}};
  const std::string t = table(rows, 24);
  EXPECT_LE(widest_line(t), 24u) << t;
  EXPECT_NE(t.find("short"), std::string::npos) << t;  // the short column keeps its text
  EXPECT_NE(t.find("~"), std::string::npos) << t;      // the long one is cut, visibly
  EXPECT_EQ(table(rows, 0), table(rows));              // 0 = unlimited
  EXPECT_EQ(clip("abcdef", 4), "abc~");
  EXPECT_EQ(clip("abc", 4), "abc");
}

TEST(Format, FailureSummaryGroupsAndPointsAtLogs) {
  const auto s = busy_status();
  const std::string f = failure_summary(s.experiments(0));
  EXPECT_NE(f.find("1 x model gpt2 not found"), std::string::npos) << f;
  EXPECT_NE(f.find("see: spt-client logs 12:a/baseline"), std::string::npos) << f;
  EXPECT_NE(f.find("167 x not run: an upstream job failed"), std::string::npos) << f;
  EXPECT_NE(f.find("retries: 4"), std::string::npos) << f;
  EXPECT_EQ(f.find("second line"), std::string::npos) << f;  // first line of each message only
  EXPECT_EQ(failure_summary(s.experiments(1)), "");          // nothing failed or retried
}

TEST(Format, PartProgressOnlyForMultiPartExperiments) {
  auto s = busy_status();
  const std::string p = part_progress(s.experiments(0));
  EXPECT_NE(p.find("a 2/148 !146"), std::string::npos) << p;
  EXPECT_NE(p.find("exp3 0/2 !2"), std::string::npos) << p;
  const std::string narrow = part_progress(s.experiments(0), {.width = 30});
  EXPECT_LE(widest_line(narrow), 30u) << narrow;
  s.mutable_experiments(0)->set_parts("a");
  EXPECT_EQ(part_progress(s.experiments(0)), "");
}

TEST(Format, DashboardGoldenAt70And140Columns) {
  const auto s = busy_status();
  for (int width : {70, 140}) {
    const std::string d = dashboard(s, {.width = width, .color = false});
    EXPECT_LE(widest_line(d), static_cast<size_t>(width)) << d;
    check_golden("dashboard_" + std::to_string(width) + ".txt", d);
    const std::string l = experiments_table(s, {.width = width});
    EXPECT_LE(widest_line(l), static_cast<size_t>(width)) << l;
    check_golden("ls_" + std::to_string(width) + ".txt", l);
  }
}

TEST(Format, ColourOnlyWhenAsked) {
  const auto s = busy_status();
  EXPECT_EQ(dashboard(s).find("\033["), std::string::npos);
  const std::string c = dashboard(s, {.width = 0, .color = true});
  EXPECT_NE(c.find("\033[31mfailed\033[0m"), std::string::npos) << c;
  EXPECT_NE(c.find("\033[32malive\033[0m"), std::string::npos) << c;
}

TEST(CliConventions, DefaultPortAndDidYouMean) {
  using spt::cli::with_default_port;
  EXPECT_EQ(with_default_port("127.0.0.1", 7070), "127.0.0.1:7070");
  EXPECT_EQ(with_default_port("host:9", 7070), "host:9");
  EXPECT_EQ(with_default_port("::1", 7070), "[::1]:7070");
  EXPECT_EQ(with_default_port("[::1]", 7070), "[::1]:7070");
  EXPECT_EQ(with_default_port("[::1]:5", 7070), "[::1]:5");
  EXPECT_EQ(with_default_port("unix:/tmp/s", 7070), "unix:/tmp/s");
  EXPECT_EQ(spt::cli::similar("stauts", {"submit", "status", "watch"}), std::vector<std::string>{"status"});
  EXPECT_EQ(spt::cli::similar("wor", {"workers", "watch"}), std::vector<std::string>{"workers"});
  EXPECT_TRUE(spt::cli::similar("zzzzzz", {"submit", "status"}).empty());
}

TEST(ClientConfig, ReadsKeysAndRejectsUnknownOnes) {
  const std::string path = ::testing::TempDir() + "/spt-client-config-test";
  std::ofstream(path) << "# comment\nserver = coord:7070  # trailing\n\ntoken_file = ~/tok\n";
  setenv("HOME", "/home/x", 1);
  const auto c = read_config(path);
  EXPECT_EQ(c.values.at("server"), "coord:7070");
  EXPECT_EQ(c.values.at("token_file"), "/home/x/tok");
  std::ofstream(path) << "server = a\nbogus = 1\n";
  try {
    read_config(path);
    ADD_FAILURE() << "unknown key accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(":2: unknown key 'bogus'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(read_config(path + ".missing").values.empty());
}

}  // namespace
}  // namespace spt::client
