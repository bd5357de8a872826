#pragma once
// Process-level test harness for the runner: temp dirs, free ports, child
// processes (spt-server, spt-worker, spt-client) with their output captured
// to files, and polling helpers. Test binaries get the binaries' paths from
// compile definitions (see CMakeLists.txt).
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/connection.h"
#include "spt/v1/spt.grpc.pb.h"

namespace spt::test {

// A fresh directory under $TMPDIR, removed (recursively) on destruction
// unless the environment has SPT_KEEP_TEST_DIRS set.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

// A child process. stdout and stderr go to `log_path`. The environment is
// the parent's minus SPT_* variables, plus `env`. Killed (SIGKILL) on
// destruction if still running.
class Process {
 public:
  Process(std::vector<std::string> argv, const std::string& log_path,
          const std::map<std::string, std::string>& env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Exit code (>= 0) or -signal; nullopt if still running after timeout_s.
  std::optional<int> wait(double timeout_s);
  bool running();
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

struct RunResult {
  int code = -1;  // exit code, or -signal, or -1000 on timeout
  std::string out, err;
};
// Runs a command to completion (killing it after timeout_s).
RunResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
              double timeout_s = 60);

// Polls `pred` every poll_s until true or timeout_s; returns the last value.
bool wait_until(const std::function<bool()>& pred, double timeout_s, double poll_s = 0.05);

std::string server_bin();
std::string worker_bin();
std::string client_bin();

// An spt-server child on a loopback port with its db in `dir`.
struct ServerOptions {
  std::string token = "test-token";  // "" = start without auth
  // Role tokens (issue 12): the worker role runs jobs only, the submitter
  // role submits and inspects. Tests keep using the admin `token` unless
  // they opt in. "" = the server generates them into its data dir.
  std::string worker_token = "test-worker-token";
  std::string submitter_token = "test-submitter-token";
  int lease_ttl_ms = 3000;
  int heartbeat_ms = 500;
  int max_attempts = 5;
  int backoff_ms = 50;
  std::vector<std::string> extra;
  // TLS (issue 12): the server's --tls-cert/--tls-key/--tls-client-ca, and
  // how the harness's own channel connects (its CA, client certificate).
  std::string tls_cert, tls_key, tls_client_ca;
  rpc::TlsOptions client_tls;
};

// A lab's certificates, made by scripts/spt-certs.sh in `out` (CA, server
// certificate for localhost/127.0.0.1, client certificate). Asserts success.
struct LabCerts {
  std::string ca, ca_key, server_cert, server_key, client_cert, client_key;
  // Server options for TLS with these files; `mtls` also requires client certificates.
  void apply(ServerOptions& o, bool mtls = false) const;
  // Client-side options: the CA, and with `client_cert` the client certificate.
  rpc::TlsOptions client(bool client_cert = false) const;
};
LabCerts make_lab_certs(const std::string& out);

// "--tls-ca X [--tls-cert Y --tls-key Z] [--tls-server-name N]" for worker and client command lines.
std::vector<std::string> tls_flags(const rpc::TlsOptions& tls);

class Server {
 public:
  Server(const TempDir& dir, ServerOptions opt = {}, int port = 0);
  ~Server();
  // Starts the process and waits until it answers Status. Returns false
  // (with the log available) if it exited or did not answer in time.
  bool start(double timeout_s = 20);
  void kill9();
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  std::string db() const { return db_; }
  std::string token_file() const { return token_file_; }
  const std::string& token() const { return opt_.token; }
  const std::string& worker_token() const { return opt_.worker_token; }
  const std::string& submitter_token() const { return opt_.submitter_token; }
  std::string data_dir() const { return data_; }
  Process* process() { return proc_.get(); }
  std::vector<std::string> argv() const;
  std::string log_path() const { return log_; }

  // Stubs on a fresh channel; `Call` adds the token and a deadline.
  v1::ControlService::Stub& control();
  v1::WorkerService::Stub& workers();
  void prepare(grpc::ClientContext& ctx, double timeout_s = 10) const;
  // As prepare(), with another token (e.g. worker_token()).
  void prepare_as(grpc::ClientContext& ctx, const std::string& token, double timeout_s = 10) const;

 private:
  const TempDir& dir_;
  ServerOptions opt_;
  int port_;
  std::string db_, data_, log_, token_file_;
  int starts_ = 0;
  std::unique_ptr<Process> proc_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

struct WorkerOptions {
  std::string name;
  int slots = 1;
  int batch = 16;
  double job_timeout_s = 600;
  double drain_timeout_s = 30;
  std::vector<std::string> extra;
  std::map<std::string, std::string> env;  // added to the child's environment
};

// An spt-worker child pointed at `server_address`, token via SPT_TOKEN.
std::unique_ptr<Process> start_worker(const TempDir& dir, const std::string& server_address, const std::string& token,
                                      const WorkerOptions& opt);

// Status of one experiment via the server's ControlService (asserting OK).
v1::ExperimentStatus experiment_status(Server& s, int64_t id);
// Submits and returns the experiment id (asserting OK).
int64_t submit(Server& s, const std::string& experiment, const std::map<std::string, std::string>& params,
               int32_t priority = 0);
// Submits with parts and returns the whole response (asserting OK).
v1::SubmitResponse submit_parts(Server& s, const std::string& experiment, const std::string& parts,
                                const std::map<std::string, std::string>& params, int32_t priority = 0);
// Polls until the experiment leaves "running" or timeout_s; returns its status.
v1::ExperimentStatus wait_finished(Server& s, int64_t id, double timeout_s);

// The worker registered under `name`, if the server lists one.
std::optional<v1::WorkerInfo> worker_named(Server& s, const std::string& name);

// Results of an experiment (asserting OK).
v1::ResultsResponse results(Server& s, int64_t id);
// Its reduce jobs' results by job name, parsed (asserting each is done).
std::map<std::string, nlohmann::json> reduce_results(Server& s, int64_t id);
// One job's logs, by id or by experiment and name (asserting OK).
v1::LogsResponse job_logs(Server& s, int64_t job_id);
v1::LogsResponse job_logs(Server& s, int64_t experiment_id, const std::string& job_name);
// Asserts that each job is done and was finished by an attempt after its
// first (the leases of a killed worker).
void expect_redone(Server& s, const std::set<int64_t>& job_ids);
// Waits for the selftest experiment `id` of n map jobs to finish, then
// asserts: state done, every job done once (Status counts), and a reduce
// result that saw each i in 0..n-1 exactly once with the right sum.
void expect_complete(Server& s, int64_t id, int64_t n, double timeout_s);

}  // namespace spt::test
