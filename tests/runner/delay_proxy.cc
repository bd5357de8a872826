#include "delay_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <stdexcept>

namespace spt::test {

using Clock = std::chrono::steady_clock;

// Bytes read from `from` wait in `queue` until their due time, then go to
// `to`. An empty chunk marks EOF.
struct DelayProxy::Pipe {
  int from, to;
  std::chrono::milliseconds delay;
  const std::atomic<bool>* stop;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<Clock::time_point, std::string>> queue;
  bool broken = false;  // a write failed: stop reading too
  std::thread reader, writer;

  void push(std::string data) {
    std::lock_guard<std::mutex> l(mu);
    queue.emplace_back(Clock::now() + delay, std::move(data));
    cv.notify_one();
  }

  void read_loop() {
    std::string buf(1 << 16, '\0');
    for (;;) {
      const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      push(buf.substr(0, static_cast<size_t>(n)));
    }
    push("");  // EOF (or a reset: the writer half-closes either way)
  }

  void write_loop() {
    std::unique_lock<std::mutex> l(mu);
    for (;;) {
      cv.wait(l, [&] { return !queue.empty() || *stop; });
      if (*stop) return;
      const auto due = queue.front().first;
      if (cv.wait_until(l, due, [&] { return stop->load(); })) return;
      std::string data = std::move(queue.front().second);
      queue.pop_front();
      if (data.empty()) {
        ::shutdown(to, SHUT_WR);
        return;
      }
      l.unlock();
      bool ok = true;
      for (size_t off = 0; off < data.size() && ok;) {
        const ssize_t w = ::send(to, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        ok = w > 0;
        if (ok) off += static_cast<size_t>(w);
      }
      l.lock();
      if (!ok) {  // the receiver is gone: drop the connection both ways
        broken = true;
        ::shutdown(from, SHUT_RDWR);
        ::shutdown(to, SHUT_RDWR);
        return;
      }
    }
  }
};

namespace {

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

DelayProxy::DelayProxy(int upstream_port, int delay_ms) : upstream_port_(upstream_port), delay_ms_(delay_ms) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(std::string("proxy socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(listen_fd_);
    throw std::runtime_error("proxy listen: " + why);
  }
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

void DelayProxy::accept_loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int down = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (down < 0) continue;
    const int one = 1;
    ::setsockopt(down, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const int up = connect_loopback(upstream_port_);
    if (up < 0) {  // upstream refused: so does the proxy, at once
      ::close(down);
      continue;
    }
    ++accepted_;
    std::lock_guard<std::mutex> l(mu_);
    fds_.push_back(down);
    fds_.push_back(up);
    for (auto [from, to] : {std::pair{down, up}, std::pair{up, down}}) {
      auto pipe = std::make_unique<Pipe>();
      pipe->from = from, pipe->to = to, pipe->delay = std::chrono::milliseconds(delay_ms_), pipe->stop = &stop_;
      Pipe* raw = pipe.get();
      pipe->reader = std::thread([raw] { raw->read_loop(); });
      pipe->writer = std::thread([raw] { raw->write_loop(); });
      pipes_.push_back(std::move(pipe));
    }
  }
}

void DelayProxy::drop_all() {
  std::lock_guard<std::mutex> l(mu_);
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
}

DelayProxy::~DelayProxy() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::lock_guard<std::mutex> l(mu_);
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);  // wakes the readers
  for (auto& p : pipes_) {
    {
      std::lock_guard<std::mutex> pl(p->mu);
      p->cv.notify_all();
    }
    p->reader.join();
    p->writer.join();
  }
  for (int fd : fds_) ::close(fd);
  ::close(listen_fd_);
}

}  // namespace spt::test
