#include "harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/connection.h"

extern char** environ;

namespace spt::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/spt-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("SPT_KEEP_TEST_DIRS")) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  close(fd);
  return ntohs(a.sin_port);
}

namespace {

// argv/envp as C arrays, built before fork so the child only execs.
struct CArgs {
  std::vector<std::string> store;
  std::vector<char*> ptrs;
  explicit CArgs(std::vector<std::string> v) : store(std::move(v)) {
    for (auto& s : store) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
};

std::vector<std::string> child_env(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "SPT_", 4) != 0) env.emplace_back(*e);
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& out_path, const std::string& err_path) {
  CArgs a(argv), e(child_env(env));
  const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int err = err_path == out_path ? out : open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || err < 0 || in < 0) throw std::runtime_error("cannot open " + out_path);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphans if the test dies
    if (getppid() != parent) _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(a.ptrs[0], a.ptrs.data(), e.ptrs.data());
    _exit(127);
  }
  close(in);
  close(out);
  if (err != out) close(err);
  if (pid < 0) throw std::runtime_error("fork failed");
  return pid;
}

int decode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status); }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Process::Process(std::vector<std::string> argv, const std::string& log_path,
                 const std::map<std::string, std::string>& env)
    : log_path_(log_path) {
  pid_ = spawn(argv, env, log_path, log_path);
}

Process::~Process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(10);
  }
}

void Process::signal(int sig) {
  if (!status_) ::kill(pid_, sig);
}

std::optional<int> Process::wait(double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!status_) {
    int st = 0;
    const pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = decode(st);
      break;
    }
    if (std::chrono::steady_clock::now() >= end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

bool Process::running() { return !wait(0).has_value(); }

std::string Process::log() const { return slurp(log_path_); }

RunResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
              double timeout_s) {
  TempDir d;
  const std::string out = d.file("out"), err = d.file("err");
  RunResult r;
  const pid_t pid = spawn(argv, env, out, err);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      r.code = decode(st);
      break;
    }
    if (std::chrono::steady_clock::now() >= end) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      r.code = -1000;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

bool wait_until(const std::function<bool()>& pred, double timeout_s, double poll_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= end) return pred();
    std::this_thread::sleep_for(std::chrono::duration<double>(poll_s));
  }
}

std::string server_bin() { return SPT_SERVER_BIN; }
std::string worker_bin() { return SPT_WORKER_BIN; }
std::string client_bin() { return SPT_CLIENT_BIN; }

// ---------------------------------------------------------------- Server

Server::Server(const TempDir& dir, ServerOptions opt, int port)
    : dir_(dir), opt_(std::move(opt)), port_(port ? port : free_port()) {
  db_ = dir.file("spt.db");
  data_ = dir.file("data");
  log_ = dir.file("server.log");
  token_file_ = dir.file("token");
  if (!opt_.token.empty()) std::ofstream(token_file_) << opt_.token << "\n";
  if (!opt_.worker_token.empty()) std::ofstream(dir.file("worker-token")) << opt_.worker_token << "\n";
  if (!opt_.submitter_token.empty()) std::ofstream(dir.file("submitter-token")) << opt_.submitter_token << "\n";
  channel_ = rpc::make_channel(address(), opt_.client_tls);
  control_ = v1::ControlService::NewStub(channel_);
  workers_ = v1::WorkerService::NewStub(channel_);
}

Server::~Server() { proc_.reset(); }

std::vector<std::string> Server::argv() const {
  std::vector<std::string> a = {server_bin(),
                                "--listen", address(),
                                "--db", db_,
                                "--data-dir", data_,
                                "--lease-ttl-ms", std::to_string(opt_.lease_ttl_ms),
                                "--heartbeat-ms", std::to_string(opt_.heartbeat_ms),
                                "--max-attempts", std::to_string(opt_.max_attempts),
                                "--backoff-ms", std::to_string(opt_.backoff_ms)};
  if (!opt_.token.empty()) {
    a.push_back("--token-file");
    a.push_back(token_file_);
  }
  if (!opt_.worker_token.empty()) {
    a.push_back("--worker-token-file");
    a.push_back(dir_.file("worker-token"));
  }
  if (!opt_.submitter_token.empty()) {
    a.push_back("--submitter-token-file");
    a.push_back(dir_.file("submitter-token"));
  }
  for (const auto& [flag, file] : {std::pair{"--tls-cert", opt_.tls_cert}, {"--tls-key", opt_.tls_key},
                                    {"--tls-client-ca", opt_.tls_client_ca}})
    if (!file.empty()) a.insert(a.end(), {flag, file});
  for (const auto& x : opt_.extra) a.push_back(x);
  return a;
}

bool Server::start(double timeout_s) {
  proc_.reset();
  proc_ = std::make_unique<Process>(argv(), log_);
  ++starts_;
  return wait_until(
      [&] {
        if (!proc_->running()) return true;
        grpc::ClientContext ctx;
        prepare(ctx, 1);
        v1::StatusRequest req;
        v1::StatusResponse resp;
        return control_->Status(&ctx, req, &resp).ok();
      },
      timeout_s, 0.05) && proc_->running();
}

void Server::kill9() {
  if (!proc_) return;
  proc_->signal(SIGKILL);
  proc_->wait(10);
}

v1::ControlService::Stub& Server::control() { return *control_; }
v1::WorkerService::Stub& Server::workers() { return *workers_; }

void Server::prepare(grpc::ClientContext& ctx, double timeout_s) const { rpc::prepare(ctx, opt_.token, timeout_s, true); }
void Server::prepare_as(grpc::ClientContext& ctx, const std::string& token, double timeout_s) const {
  rpc::prepare(ctx, token, timeout_s, true);
}

LabCerts make_lab_certs(const std::string& out) {
  const RunResult r = run({"/bin/bash", SPT_CERTS_SCRIPT, out}, {}, 60);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  return {out + "/ca.pem",     out + "/ca.key",     out + "/server.pem",
          out + "/server.key", out + "/client.pem", out + "/client.key"};
}

void LabCerts::apply(ServerOptions& o, bool mtls) const {
  o.tls_cert = server_cert;
  o.tls_key = server_key;
  o.tls_client_ca = mtls ? ca : "";
  o.client_tls = client(mtls);
}

rpc::TlsOptions LabCerts::client(bool client_cert) const {
  rpc::TlsOptions t;
  t.ca_file = ca;
  if (client_cert) t.cert_file = this->client_cert, t.key_file = client_key;
  return t;
}

std::vector<std::string> tls_flags(const rpc::TlsOptions& tls) {
  std::vector<std::string> f;
  for (const auto& [flag, v] : {std::pair{"--tls-ca", tls.ca_file}, {"--tls-cert", tls.cert_file},
                                {"--tls-key", tls.key_file}, {"--tls-server-name", tls.server_name}})
    if (!v.empty()) f.insert(f.end(), {flag, v});
  return f;
}

std::unique_ptr<Process> start_worker(const TempDir& dir, const std::string& server_address, const std::string& token,
                                      const WorkerOptions& opt) {
  std::vector<std::string> a = {worker_bin(),
                                "--server", server_address,
                                "--device", "cpu",
                                "--slots", std::to_string(opt.slots),
                                "--threads", "1",
                                "--batch", std::to_string(opt.batch),
                                "--name", opt.name,
                                "--cache-dir", dir.file("cache-" + opt.name),
                                "--job-timeout-s", std::to_string(opt.job_timeout_s),
                                "--drain-timeout-s", std::to_string(opt.drain_timeout_s)};
  for (const auto& x : opt.extra) a.push_back(x);
  std::map<std::string, std::string> env = opt.env;
  if (!token.empty()) env["SPT_TOKEN"] = token;
  return std::make_unique<Process>(a, dir.file("worker-" + opt.name + ".log"), env);
}

std::optional<v1::WorkerInfo> worker_named(Server& s, const std::string& name) {
  grpc::ClientContext ctx;
  s.prepare(ctx, 5);
  v1::ListWorkersResponse lw;
  if (!s.control().ListWorkers(&ctx, v1::ListWorkersRequest(), &lw).ok()) return std::nullopt;
  for (const auto& w : lw.workers())
    if (w.name() == name) return w;
  return std::nullopt;
}

v1::ExperimentStatus experiment_status(Server& s, int64_t id) {
  grpc::ClientContext ctx;
  s.prepare(ctx);
  v1::StatusRequest req;
  req.mutable_experiment()->set_id(id);
  v1::StatusResponse resp;
  const grpc::Status st = s.control().Status(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << rpc::status_text(st);
  for (const auto& e : resp.experiments())
    if (e.id() == id) return e;
  ADD_FAILURE() << "experiment " << id << " missing from Status";
  return {};
}

int64_t submit(Server& s, const std::string& experiment, const std::map<std::string, std::string>& params,
               int32_t priority) {
  return submit_parts(s, experiment, "", params, priority).experiment_id();
}

v1::SubmitResponse submit_parts(Server& s, const std::string& experiment, const std::string& parts,
                                const std::map<std::string, std::string>& params, int32_t priority) {
  grpc::ClientContext ctx;
  s.prepare(ctx, 60);
  v1::SubmitRequest req;
  req.set_experiment(experiment);
  req.set_parts(parts);
  for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
  req.set_priority(priority);
  v1::SubmitResponse resp;
  const grpc::Status st = s.control().Submit(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << rpc::status_text(st);
  return resp;
}

v1::ExperimentStatus wait_finished(Server& s, int64_t id, double timeout_s) {
  v1::ExperimentStatus st;
  wait_until(
      [&] {
        grpc::ClientContext ctx;
        s.prepare(ctx, 2);
        v1::StatusRequest req;
        req.mutable_experiment()->set_id(id);
        v1::StatusResponse resp;
        if (!s.control().Status(&ctx, req, &resp).ok()) return false;  // e.g. restarting
        for (const auto& e : resp.experiments())
          if (e.id() == id) st = e;
        return st.state() != "running" && !st.state().empty();
      },
      timeout_s, 0.1);
  return st;
}

v1::ResultsResponse results(Server& s, int64_t id) {
  grpc::ClientContext ctx;
  s.prepare(ctx, 30);
  v1::ResultsRequest req;
  req.mutable_experiment()->set_id(id);
  v1::ResultsResponse resp;
  const grpc::Status st = s.control().Results(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << rpc::status_text(st);
  return resp;
}

std::map<std::string, nlohmann::json> reduce_results(Server& s, int64_t id) {
  std::map<std::string, nlohmann::json> out;
  const v1::ResultsResponse res = results(s, id);
  for (const auto& j : res.reduce_results()) {
    EXPECT_EQ(j.state(), "done") << j.name() << ": " << j.error();
    out[j.name()] = nlohmann::json::parse(j.result_json());
  }
  return out;
}

namespace {
v1::LogsResponse logs(Server& s, const v1::LogsRequest& req) {
  grpc::ClientContext ctx;
  s.prepare(ctx);
  v1::LogsResponse resp;
  const grpc::Status st = s.control().Logs(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << rpc::status_text(st);
  return resp;
}
}  // namespace

v1::LogsResponse job_logs(Server& s, int64_t job_id) {
  v1::LogsRequest req;
  req.set_job_id(job_id);
  return logs(s, req);
}

v1::LogsResponse job_logs(Server& s, int64_t experiment_id, const std::string& job_name) {
  v1::LogsRequest req;
  req.mutable_experiment()->set_id(experiment_id);
  req.set_job_name(job_name);
  return logs(s, req);
}

void expect_redone(Server& s, const std::set<int64_t>& job_ids) {
  for (int64_t id : job_ids) {
    const v1::LogsResponse resp = job_logs(s, id);
    EXPECT_EQ(resp.job().state(), "done") << id;
    EXPECT_GE(resp.job().attempt(), 2) << resp.job().name();
  }
}

// Asserts that the experiment finished with every job done exactly once
// and a reduce that saw each i in 0..n-1 exactly once.
void expect_complete(Server& s, int64_t id, int64_t n, double timeout_s) {
  const auto st = wait_finished(s, id, timeout_s);
  ASSERT_EQ(st.state(), "done") << st.DebugString() << "\nserver log:\n" << s.process()->log();
  EXPECT_EQ(st.counts().total(), n + 1);
  EXPECT_EQ(st.counts().done(), n + 1);
  EXPECT_EQ(st.counts().failed(), 0);
  EXPECT_EQ(st.counts().pending() + st.counts().leased() + st.counts().blocked(), 0);
  const auto r = results(s, id);
  ASSERT_EQ(r.reduce_results_size(), 1) << r.DebugString();
  const auto& red = r.reduce_results(0);
  EXPECT_EQ(red.state(), "done");
  const auto j = nlohmann::json::parse(red.result_json());
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["n"], n);
  EXPECT_EQ(j["sum"], n * (n - 1) / 2);
  EXPECT_EQ(j["expected"], n * (n - 1) / 2);
}

}  // namespace spt::test
