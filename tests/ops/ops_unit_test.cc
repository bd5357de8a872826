// issue 12 operations, in process: the exposition writer and histogram
// against an independent reader of the format's rules, the /metrics HTTP
// endpoint's protocol edges, and JSON log lines.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "exposition_check.h"
#include "http_get.h"
#include "spt/json_log.h"
#include "spt/metrics.h"

namespace spt::test {
namespace {

using metrics::Exposition;
using metrics::Histogram;

TEST(Exposition, EscapesLabelValuesAndHelpSoTheReaderGetsThemBack) {
  Exposition e;
  const std::string nasty = "a \"quoted\" \\path\\ with\nnewline and ünïcode {},=";
  e.family("spt_test_gauge", "gauge", "help with \\ and\nnewline");
  e.sample("spt_test_gauge", {{"model", nasty}, {"b", ""}}, 3.5);
  e.sample("spt_test_gauge", {{"model", "plain"}, {"b", "x"}}, -2);
  e.family("spt_test_total", "counter", "a counter");
  e.sample("spt_test_total", 12345678901);
  const auto p = parse_exposition(e.text());
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors) << "\n" << e.text();
  EXPECT_EQ(p.value("spt_test_gauge{b=\"\",model=\"" + nasty + "\"}"), 3.5);
  EXPECT_EQ(p.value("spt_test_gauge{b=\"x\",model=\"plain\"}"), -2);
  EXPECT_EQ(p.value("spt_test_total"), 12345678901.0);
  EXPECT_EQ(p.types.at("spt_test_total"), "counter");
  EXPECT_NE(e.text().find("# HELP spt_test_gauge help with \\\\ and\\nnewline\n"), std::string::npos);
}

TEST(Exposition, RefusesBadNamesAndTypes) {
  Exposition e;
  EXPECT_THROW(e.family("1abc", "gauge", "h"), std::invalid_argument);
  EXPECT_THROW(e.family("a-b", "gauge", "h"), std::invalid_argument);
  EXPECT_THROW(e.family("ok_name", "meter", "h"), std::invalid_argument);
  EXPECT_THROW(e.sample("ok_name", {{"le:x", "1"}}, 1), std::invalid_argument);
  EXPECT_THROW(e.sample("ok_name", {{"__reserved", "1"}}, 1), std::invalid_argument);
  EXPECT_NO_THROW(e.family("ns:sub_name_2", "untyped", "colons are allowed in metric names"));
  EXPECT_TRUE(metrics::valid_metric_name("_x:y9"));
  EXPECT_FALSE(metrics::valid_label_name("x:y"));
}

TEST(Exposition, FormatsValues) {
  EXPECT_EQ(metrics::format_value(1), "1");
  EXPECT_EQ(metrics::format_value(-3), "-3");
  EXPECT_EQ(metrics::format_value(0.25), "0.25");
  EXPECT_EQ(metrics::format_value(0.1), "0.1");
  EXPECT_EQ(metrics::format_value(NAN), "NaN");
  EXPECT_EQ(metrics::format_value(INFINITY), "+Inf");
  EXPECT_EQ(metrics::format_value(-INFINITY), "-Inf");
  EXPECT_EQ(std::strtod(metrics::format_value(1.0 / 3).c_str(), nullptr), 1.0 / 3);
  EXPECT_EQ(std::strtod(metrics::format_value(1e300).c_str(), nullptr), 1e300);
}

TEST(Exposition, TheReaderCatchesEachBrokenRule) {
  const std::string ok = "# HELP m h\n# TYPE m gauge\nm 1\n";
  EXPECT_TRUE(parse_exposition(ok).errors.empty());
  const std::vector<std::string> bad = {
      "m 1\n",                                                    // no TYPE
      "# HELP m h\n# TYPE m gauge\nm{a=\"x\\t\"} 1\n",            // bad escape
      "# HELP m h\n# TYPE m gauge\nm{a=\"x} 1\n",                 // unterminated
      "# HELP m h\n# TYPE m gauge\nm one\n",                      // bad value
      "# HELP m h\n# TYPE m gauge\nm 1\nm 2\n",                   // series twice
      "# HELP m h\n# TYPE m gauge\nm{1a=\"x\"} 1\n",              // bad label name
      "# HELP m h\n# TYPE m meter\nm 1\n",                        // unknown type
      "# TYPE m gauge\nm 1\n",                                    // no HELP
      "# HELP m h\n# TYPE m gauge\nm 1\n# HELP n h\n# TYPE n gauge\nn 1\nm{a=\"b\"} 2\n",  // not contiguous
      "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
      "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  // no +Inf
      "# HELP m h\n# TYPE m gauge\nm 1",                          // no final newline
  };
  for (const auto& t : bad) EXPECT_FALSE(parse_exposition(t).errors.empty()) << t;
}

TEST(Histogram, BucketsAreCumulativeAndInclusive) {
  Histogram h({0.001, 0.01, 1});
  for (double v : {0.0005, 0.001, 0.003, 0.5, 1.0, 7.0}) h.observe(v);
  Exposition e;
  e.family("lat_seconds", "histogram", "test");
  h.render(e, "lat_seconds", {{"method", "Lease"}});
  const auto p = parse_exposition(e.text());
  ASSERT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors) << e.text();
  EXPECT_EQ(p.value("lat_seconds_bucket{le=\"0.001\",method=\"Lease\"}"), 2);  // le is inclusive
  EXPECT_EQ(p.value("lat_seconds_bucket{le=\"0.01\",method=\"Lease\"}"), 3);
  EXPECT_EQ(p.value("lat_seconds_bucket{le=\"1\",method=\"Lease\"}"), 5);
  EXPECT_EQ(p.value("lat_seconds_bucket{le=\"+Inf\",method=\"Lease\"}"), 6);
  EXPECT_EQ(p.value("lat_seconds_count{method=\"Lease\"}"), 6);
  EXPECT_NEAR(p.value("lat_seconds_sum{method=\"Lease\"}"), 8.5045, 1e-12);
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
}

TEST(Histogram, RendersConsistentlyWhileObserved) {
  Histogram h(metrics::latency_buckets());
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) h.observe((i % 97) * 1e-3 * (t + 1));
    });
  int renders = 0;
  while (h.count() < 60000) {
    Exposition e;
    e.family("x_seconds", "histogram", "test");
    h.render(e, "x_seconds", {});
    const auto p = parse_exposition(e.text());
    ASSERT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
    ++renders;
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(h.count(), 60000u);
  EXPECT_GT(renders, 0);
}

// ---------------------------------------------------------------- endpoint

TEST(HttpEndpoint, ServesMetricsHealthAndRefusesTheRest) {
  std::atomic<int> scrapes{0};
  std::atomic<bool> healthy{true};
  auto ep = metrics::HttpEndpoint::start(
      "127.0.0.1:0",
      [&] {
        Exposition e;
        e.family("scrapes_total", "counter", "scrapes so far");
        e.sample("scrapes_total", ++scrapes);
        return e.text();
      },
      [&] { return healthy.load(); });
  ASSERT_GT(ep->port(), 0);
  EXPECT_EQ(ep->address(), "127.0.0.1:" + std::to_string(ep->port()));
  auto r = http_get(ep->port(), "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r.headers;
  EXPECT_EQ(parse_exposition(r.body).value("scrapes_total"), 1);
  EXPECT_EQ(parse_exposition(http_get(ep->port(), "/metrics?x=1").body).value("scrapes_total"), 2);
  EXPECT_EQ(http_get(ep->port(), "/healthz").status, 200);
  healthy = false;
  EXPECT_EQ(http_get(ep->port(), "/healthz").status, 503);
  EXPECT_EQ(http_get(ep->port(), "/").status, 404);
  EXPECT_EQ(http_raw(ep->port(), "POST /metrics HTTP/1.0\r\n\r\n").status, 405);
  EXPECT_EQ(http_raw(ep->port(), "garbage\r\n\r\n").status, 400);
  // Oversized: refused without reading it all.
  EXPECT_EQ(http_raw(ep->port(), "GET /metrics HTTP/1.0\r\nX: " + std::string(64 << 10, 'a') + "\r\n\r\n").status, 431);
  EXPECT_EQ(scrapes.load(), 2);
}

TEST(HttpEndpoint, ASilentClientDelaysTheNextScrapeByAtMostItsDeadline) {
  auto ep = metrics::HttpEndpoint::start("0", [] { return std::string("# HELP a a\n# TYPE a gauge\na 1\n"); });
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(ep->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);  // and never sends a byte
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = http_get(ep->port(), "/metrics");
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(waited, 4.0);
  ::close(fd);
  const auto s0 = std::chrono::steady_clock::now();
  ep->stop();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count(), 1.0);
  EXPECT_EQ(http_get(ep->port(), "/metrics").status, -1);  // closed
}

TEST(HttpEndpoint, ListenAddresses) {
  EXPECT_EQ(metrics::normalize_listen("9464"), "127.0.0.1:9464");
  EXPECT_EQ(metrics::normalize_listen("0.0.0.0:9464"), "0.0.0.0:9464");
  EXPECT_EQ(metrics::normalize_listen("[::1]:9464"), "[::1]:9464");
  for (const char* bad : {"", "abc", "host:", ":", "host:port", "70000", "h:99999"})
    EXPECT_THROW(metrics::normalize_listen(bad), std::invalid_argument) << bad;
  auto a = metrics::HttpEndpoint::start("127.0.0.1:0", [] { return std::string(); });
  EXPECT_THROW(metrics::HttpEndpoint::start("127.0.0.1:" + std::to_string(a->port()), [] { return std::string(); }),
               std::runtime_error);  // in use
}

TEST(Exposition, PromtoolAcceptsWhatWeWrite) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) GTEST_SKIP() << "promtool is not on PATH";
  Exposition e;
  e.family("spt_test_total", "counter", "a \"counter\"");
  e.sample("spt_test_total", {{"m", "x\"y\\z\nw"}}, 3);
  Histogram h(metrics::latency_buckets());
  h.observe(0.02);
  e.family("spt_test_seconds", "histogram", "latency");
  h.render(e, "spt_test_seconds", {{"method", "Lease"}});
  const std::string path = ::testing::TempDir() + "/promtool_in.txt";
  std::ofstream(path) << e.text();
  EXPECT_EQ(std::system(("promtool check metrics < " + path).c_str()), 0) << e.text();
}

// ---------------------------------------------------------------- JSON logs

TEST(JsonLog, EveryLineIsOneJsonObjectWhateverTheMessage) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger lg("", sink);
  lg.set_formatter(log::json_formatter("spt-test", {{"worker", "w\"1"}}));
  lg.set_level(spdlog::level::trace);
  const std::vector<std::string> msgs = {
      "plain",
      "with \"quotes\" and \\backslash\\",
      "two\nlines\r\nand a tab\t",
      std::string("control \x01\x02\x1b[2J bytes and NUL ") + '\0' + " inside",
      "not utf-8: \xff\xfe end",
      "{\"looks\": \"like json\"}",
  };
  for (const auto& m : msgs) lg.info("{}", m);
  lg.warn("formatted {} {}", 42, "args");
  lg.error("");
  lg.flush();
  std::istringstream in(out.str());
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) {
    ASSERT_TRUE(nlohmann::json::accept(line)) << line;
    lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), msgs.size() + 2);
  const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& j = lines[i];
    ASSERT_TRUE(j.is_object());
    EXPECT_TRUE(std::regex_match(j.at("time").get<std::string>(), iso)) << j.dump();
    EXPECT_EQ(j.at("logger"), "spt-test");
    EXPECT_EQ(j.at("worker"), "w\"1");
    if (i < msgs.size() && i != 4) EXPECT_EQ(j.at("message").get<std::string>(), msgs[i]);
  }
  EXPECT_EQ(lines[4].at("message").get<std::string>().rfind("not utf-8: ", 0), 0u);  // bad bytes replaced
  EXPECT_EQ(lines[0].at("level"), "info");
  EXPECT_EQ(lines[msgs.size()].at("level"), "warning");
  EXPECT_EQ(lines[msgs.size()].at("message"), "formatted 42 args");
  EXPECT_EQ(lines[msgs.size() + 1].at("level"), "error");
  // One object per line: the newline in a message is escaped, not written.
  const std::string all = out.str();
  EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), static_cast<long>(msgs.size() + 2));
}

}  // namespace
}  // namespace spt::test
