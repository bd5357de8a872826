#pragma once
// Prometheus metrics for spt-server and spt-worker: the text exposition
// format (version 0.0.4), a lock-free histogram, and a tiny HTTP/1.0
// endpoint serving GET /metrics and GET /healthz.
//
// Hand-written because Debian ships no Prometheus C++ client library and the
// format is a few lines of text; torch-free and gRPC-free so both binaries
// share it.
//
// Thread-safety: Exposition is a plain value (one thread). Histogram is safe
// to observe() from any thread while another renders it. HttpEndpoint runs
// its own thread; the render/health callbacks are called on it, one request
// at a time, so they must be thread-safe against the rest of the program.
// Errors: HttpEndpoint::start throws std::runtime_error naming the address.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace spt::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Label values escape backslash, double quote and newline; HELP text
// escapes backslash and newline (the format's rules).
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
// Integers without an exponent, NaN, +Inf, -Inf; otherwise shortest round trip.
std::string format_value(double v);
// [a-zA-Z_:][a-zA-Z0-9_:]* (metric names); labels additionally exclude ':'.
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

// Builds an exposition. Each family is introduced once by family(), then its
// samples follow. Names and label names are the caller's constants and are
// checked (std::invalid_argument): a bad one is a programming error.
class Exposition {
 public:
  // type: counter | gauge | histogram | summary | untyped.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

// Cumulative histogram with fixed upper bounds (ascending; +Inf is implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  // Writes <name>_bucket{...,le=...}, <name>_sum and <name>_count; the
  // family line is the caller's. Concurrent observe()s may land between the
  // reads, so counts are read once and buckets are made cumulative from them
  // (+Inf always equals _count).
  void render(Exposition& e, std::string_view name, const Labels& labels) const;
  uint64_t count() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, last one = above every bound
  std::atomic<double> sum_{0};
};

// Seconds: 0.5 ms .. 30 s, for RPC latencies.
std::vector<double> latency_buckets();

// Resident set size of this process (bytes, /proc/self/statm); 0 if unknown.
int64_t process_rss_bytes();

// "9090" -> "127.0.0.1:9090" (loopback unless a host is named);
// "host:port" and "[v6]:port" unchanged. Throws std::invalid_argument.
std::string normalize_listen(const std::string& listen);

// GET /metrics -> 200 with render(); GET /healthz -> 200 "ok" or 503 when
// health() is false (absent: always ok); other paths 404, other methods
// 405. Requests are read with a 2 s deadline and at most kMaxRequest bytes
// (longer: 431, then close). HTTP/1.0, Connection: close, one request at a
// time: a scrape is tiny and a slow client delays only the next scrape.
class HttpEndpoint {
 public:
  static constexpr size_t kMaxRequest = 8192;
  using Render = std::function<std::string()>;
  using Health = std::function<bool()>;

  static std::unique_ptr<HttpEndpoint> start(const std::string& listen, Render render, Health health = {});
  ~HttpEndpoint();  // stop()
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  int port() const { return port_; }
  std::string address() const { return address_; }  // host:port actually bound
  void stop();  // idempotent; returns once the thread has exited

 private:
  HttpEndpoint() = default;
  void serve();
  void handle(int fd);

  Render render_;
  Health health_;
  int listen_fd_ = -1, wake_[2] = {-1, -1};
  int port_ = 0;
  std::string address_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
};

}  // namespace spt::metrics
