// spt-client's renderings, in process.
#include <gtest/gtest.h>

#include "format.h"
#include "json_out.h"

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

}  // namespace
}  // namespace spt::client
