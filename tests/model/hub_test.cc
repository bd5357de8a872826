// Downloading a model from "the Hub" when it is not cached: a loopback HTTP
// server plays huggingface.co (HF_ENDPOINT), serving a generated model at
// /<id>/resolve/main/<file> with an x-repo-commit header, as the real Hub does.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "model/checkpoint.h"
#include "model/hub.h"
#include "model/testmodel.h"
#include "spt/hash.h"
#include "spt/util.h"

namespace spt::gpt2 {
namespace {

namespace fs = std::filesystem;

// Serves files under `root` over HTTP/1.0, one connection at a time.
class FileServer {
 public:
  explicit FileServer(fs::path root) : root_(std::move(root)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 8) != 0) throw std::runtime_error("bind");
    socklen_t n = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &n);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FileServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  void serve() {
    while (!stop_) {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        const ssize_t r = read(c, buf, sizeof buf);
        if (r <= 0) break;
        req.append(buf, static_cast<size_t>(r));
      }
      ++requests_;
      const size_t sp = req.find(' '), sp2 = req.find(' ', sp + 1);
      const std::string path = req.substr(sp + 1, sp2 - sp - 1);
      std::string resp;
      const fs::path f = root_ / path.substr(1);
      if (path.find("..") == std::string::npos && fs::is_regular_file(f)) {
        const std::string body = read_file(f.string());
        resp = "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nX-Repo-Commit: 0123abcd\r\n\r\n" + body;
      } else {
        resp = "HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
      }
      for (size_t off = 0; off < resp.size();) {
        const ssize_t w = write(c, resp.data() + off, resp.size() - off);
        if (w <= 0) break;
        off += static_cast<size_t>(w);
      }
      close(c);
    }
  }
  fs::path root_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

class ScopedEnv {
 public:
  ScopedEnv(const char* k, const std::string& v) : k_(k) {
    if (const char* o = std::getenv(k)) old_ = o, had_ = true;
    setenv(k, v.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(k_, old_.c_str(), 1);
    else unsetenv(k_);
  }

 private:
  const char* k_;
  std::string old_;
  bool had_ = false;
};

TEST(HubDownload, FetchesAMissingModelIntoTheCacheLayoutOnce) {
  const fs::path tmp = fs::temp_directory_path() / ("spt_hub_test_" + std::to_string(getpid()));
  fs::remove_all(tmp);
  TestModelSpec spec;
  spec.vocab = 40;
  write_test_model((tmp / "site" / "gpt2" / "resolve" / "main").string(), spec);
  const std::string want = sha256_file((tmp / "site/gpt2/resolve/main/model.safetensors").string());

  ScopedEnv cache("HF_HUB_CACHE", (tmp / "hub").string());
  ScopedEnv online("HF_HUB_OFFLINE", "0");
  std::string snap;
  {
    FileServer server(tmp / "site");
    ScopedEnv endpoint("HF_ENDPOINT", server.url());
    snap = resolve_model_dir("gpt2");
    EXPECT_GE(server.requests(), 2);
  }
  EXPECT_EQ(fs::path(snap), tmp / "hub" / "models--gpt2" / "snapshots" / "0123abcd");
  EXPECT_EQ(sha256_file(snap + "/model.safetensors"), want);
  EXPECT_EQ(read_file((tmp / "hub/models--gpt2/refs/main").string()), "0123abcd");
  EXPECT_EQ(read_config(snap).vocab, 40);
  for (const auto& e : fs::directory_iterator(tmp / "hub" / "models--gpt2"))
    EXPECT_TRUE(e.path().filename() == "snapshots" || e.path().filename() == "refs") << e.path();  // no leftovers

  // Now cached: found with the server gone.
  EXPECT_EQ(resolve_model_dir("gpt2"), snap);

  // A model the Hub does not have: the error says what the download answered.
  {
    FileServer server(tmp / "site");
    ScopedEnv endpoint("HF_ENDPOINT", server.url());
    try {
      resolve_model_dir("gpt2-medium");
      ADD_FAILURE() << "expected an error";
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("404"), std::string::npos) << m;
      EXPECT_NE(m.find("gpt2-medium/resolve/main/config.json"), std::string::npos) << m;
    }
  }
  EXPECT_FALSE(fs::exists(tmp / "hub" / "models--gpt2-medium" / "snapshots"));
  fs::remove_all(tmp);
}

TEST(HubDownload, OfflineSwitchIsHonoured) {
  ScopedEnv off("HF_HUB_OFFLINE", "1");
  EXPECT_TRUE(hub_offline());
  EXPECT_THROW(download_from_hub("gpt2", fs::temp_directory_path().string()), std::runtime_error);
}

}  // namespace
}  // namespace spt::gpt2
