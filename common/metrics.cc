#include "spt/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace spt::metrics {

// ---------------------------------------------------------------- format

std::string escape_label_value(std::string_view v) {
  std::string o;
  o.reserve(v.size());
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string escape_help(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
    // Shortest form that reads back exactly.
    for (int p = 6; p < 17; ++p) {
      char s[64];
      std::snprintf(s, sizeof s, "%.*g", p, v);
      if (std::strtod(s, nullptr) == v) {
        std::memcpy(buf, s, sizeof s);
        break;
      }
    }
  }
  return buf;
}

namespace {
bool name_ok(std::string_view n, bool colon) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}
}  // namespace

bool valid_metric_name(std::string_view n) { return name_ok(n, true); }
bool valid_label_name(std::string_view n) { return name_ok(n, false) && n.substr(0, 2) != "__"; }

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  if (!valid_metric_name(name)) throw std::invalid_argument("bad metric name '" + std::string(name) + "'");
  static const char* kTypes[] = {"counter", "gauge", "histogram", "summary", "untyped"};
  if (std::none_of(std::begin(kTypes), std::end(kTypes), [&](const char* t) { return type == t; }))
    throw std::invalid_argument("bad metric type '" + std::string(type) + "'");
  out_.append("# HELP ").append(name).append(" ").append(escape_help(help)).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Exposition::sample(std::string_view name, const Labels& labels, double value) {
  if (!valid_metric_name(name)) throw std::invalid_argument("bad metric name '" + std::string(name) + "'");
  out_.append(name);
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (!valid_label_name(labels[i].first))
        throw std::invalid_argument("bad label name '" + labels[i].first + "'");
      if (i) out_ += ',';
      out_.append(labels[i].first).append("=\"").append(escape_label_value(labels[i].second)).append("\"");
    }
    out_ += '}';
  }
  out_.append(" ").append(format_value(value)).append("\n");
}

// ---------------------------------------------------------------- histogram

Histogram::Histogram(std::vector<double> b) : bounds_(std::move(b)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end())
    throw std::invalid_argument("histogram bounds must be strictly ascending");
  counts_.reset(new std::atomic<uint64_t>[bounds_.size() + 1]);
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();  // first bound >= v
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double s = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(s, s + v, std::memory_order_relaxed)) {
  }
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += counts_[i].load(std::memory_order_relaxed);
  return n;
}

void Histogram::render(Exposition& e, std::string_view name, const Labels& labels) const {
  std::vector<uint64_t> c(bounds_.size() + 1);
  for (size_t i = 0; i < c.size(); ++i) c[i] = counts_[i].load(std::memory_order_relaxed);
  const std::string n(name);
  uint64_t cum = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i];
    Labels l = labels;
    l.emplace_back("le", i < bounds_.size() ? format_value(bounds_[i]) : "+Inf");
    e.sample(n + "_bucket", l, static_cast<double>(cum));
  }
  e.sample(n + "_sum", labels, sum_.load(std::memory_order_relaxed));
  e.sample(n + "_count", labels, static_cast<double>(cum));
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

int64_t process_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

// ---------------------------------------------------------------- HTTP

std::string normalize_listen(const std::string& listen) {
  if (listen.empty()) throw std::invalid_argument("empty metrics address");
  const bool digits = listen.find_first_not_of("0123456789") == std::string::npos;
  std::string out = digits ? "127.0.0.1:" + listen : listen;
  const auto colon = out.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == out.size() ||
      out.find_first_not_of("0123456789", colon + 1) != std::string::npos)
    throw std::invalid_argument("metrics address '" + listen + "' is not HOST:PORT or PORT");
  if (std::stol(out.substr(colon + 1)) > 65535) throw std::invalid_argument("port out of range in '" + listen + "'");
  return out;
}

namespace {

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the scraper went away
    off += static_cast<size_t>(n);
  }
}

std::string response(int code, const char* reason, const std::string& type, const std::string& body) {
  return "HTTP/1.0 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace

std::unique_ptr<HttpEndpoint> HttpEndpoint::start(const std::string& listen, Render render, Health health) {
  const std::string addr = normalize_listen(listen);
  const auto colon = addr.rfind(':');
  std::string host = addr.substr(0, colon);
  const std::string port = addr.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    throw std::runtime_error("metrics address " + addr + ": " + gai_strerror(rc));
  std::unique_ptr<HttpEndpoint> ep(new HttpEndpoint());
  ep->render_ = std::move(render);
  ep->health_ = std::move(health);
  std::string err = "no usable address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      ep->listen_fd_ = fd;
      break;
    }
    err = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (ep->listen_fd_ < 0) throw std::runtime_error("cannot listen for metrics on " + addr + ": " + err);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(ep->listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  ep->port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  ep->address_ = addr.substr(0, colon) + ":" + std::to_string(ep->port_);
  if (::pipe2(ep->wake_, O_CLOEXEC) != 0) {
    ::close(ep->listen_fd_);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  ep->thread_ = std::thread([p = ep.get()] { p->serve(); });
  return ep;
}

void HttpEndpoint::serve() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    handle(fd);
    ::close(fd);
  }
}

void HttpEndpoint::handle(int fd) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  std::string req;
  char buf[1024];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos) {
    if (req.size() > kMaxRequest) {
      write_all(fd, response(431, "Request Header Fields Too Large", "text/plain", "request too large\n"));
      return;
    }
    const int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    pollfd p[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (left <= 0 || ::poll(p, 2, left) <= 0 || p[1].revents) return;  // too slow, or stopping
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  const auto sp1 = req.find(' ');
  const auto sp2 = sp1 == std::string::npos ? sp1 : req.find_first_of(" \r\n", sp1 + 1);
  if (sp2 == std::string::npos) {
    write_all(fd, response(400, "Bad Request", "text/plain", "bad request line\n"));
    return;
  }
  const std::string method = req.substr(0, sp1), target = req.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string path = target.substr(0, target.find('?'));
  if (method != "GET") {
    write_all(fd, response(405, "Method Not Allowed", "text/plain", "only GET\n"));
  } else if (path == "/metrics") {
    std::string body;
    try {
      body = render_();
    } catch (const std::exception& e) {
      write_all(fd, response(500, "Internal Server Error", "text/plain", std::string(e.what()) + "\n"));
      return;
    }
    write_all(fd, response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body));
  } else if (path == "/healthz") {
    const bool ok = !health_ || health_();
    write_all(fd, ok ? response(200, "OK", "text/plain", "ok\n")
                     : response(503, "Service Unavailable", "text/plain", "not serving\n"));
  } else {
    write_all(fd, response(404, "Not Found", "text/plain", "try /metrics or /healthz\n"));
  }
}

void HttpEndpoint::stop() {
  if (stopped_.exchange(true)) return;
  const char b = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_[1], &b, 1);
  if (thread_.joinable()) thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]})
    if (fd >= 0) ::close(fd);
}

HttpEndpoint::~HttpEndpoint() { stop(); }

}  // namespace spt::metrics
