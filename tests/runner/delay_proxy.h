#pragma once
// A TCP proxy on loopback that adds a fixed one-way delay, to test and
// bench clients over a slow link (issue 12: "remote clients must connect").
//
// It listens on 127.0.0.1:<port()>, and for each accepted connection opens
// one to 127.0.0.1:<upstream_port> and forwards both directions: every byte
// read is written `delay_ms` later, in order (a reader and a writer thread
// per direction, with a timed queue between them). EOF is forwarded as a
// half-close after the same delay; a failed write or a reset drops both
// sides. Bandwidth is not limited.
//
// Threads: one accept thread plus four per connection, all joined and all
// sockets closed by the destructor. Methods are thread-safe. Throws
// std::runtime_error if it cannot listen.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spt::test {

class DelayProxy {
 public:
  DelayProxy(int upstream_port, int delay_ms);
  ~DelayProxy();
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return accepted_.load(); }
  // Closes every open connection (both sides), as a network cut would;
  // new connections are still accepted.
  void drop_all();

  struct Pipe;  // one direction of one connection (delay_proxy.cc)

 private:
  void accept_loop();

  const int upstream_port_, delay_ms_;
  int listen_fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<std::unique_ptr<Pipe>> pipes_;
  std::vector<int> fds_;
  std::thread acceptor_;
};

}  // namespace spt::test
