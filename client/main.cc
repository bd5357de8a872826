// spt-client: the command-line interface to an spt-server.
//
// Every command talks to ControlService; read commands take --json, which
// prints the response message (see json_out.h). Exit status: 0 on success,
// 1 on any error (the gRPC status message is printed), 2 on a usage error
// (unknown command or flag, bad value), and for `watch` and `submit --wait`
// 1 also when the experiment ends failed or cancelled. Defaults come from
// the config file (config.h), then the environment, then flags.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "completion.h"
#include "config.h"
#include "connection.h"
#include "format.h"
#include "json_out.h"
#include "submission.h"
#include "spt/cli_conventions.h"
#include "spt/utf8.h"
#include "spt/util.h"
#include "spt/version.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = spt::v1;
using spt::client::dump;
using spt::client::make_printable;
using spt::client::printable;
using spt::client::to_json;

struct Global {
  std::string server = "127.0.0.1:7070";
  std::string token, token_file;
  spt::rpc::TlsOptions tls;  // issue 12
  bool json = false;
  double timeout_s = 30;
};

// A usage or input problem found before any RPC.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Client {
 public:
  explicit Client(const Global& g) : g_(g) {
    token_ = spt::rpc::load_token(g.token, g.token_file);
    stub_ = v1::ControlService::NewStub(spt::rpc::make_channel(g.server, g.tls));
  }

  // Calls one unary RPC; throws RpcError naming `what` on failure.
  template <typename Req, typename Resp, typename Fn>
  Resp call(const char* what, Fn fn, const Req& req) {
    grpc::ClientContext ctx;
    spt::rpc::prepare(ctx, token_, g_.timeout_s);
    Resp resp;
    const grpc::Status s = ((*stub_).*fn)(&ctx, req, &resp);
    if (!s.ok()) throw spt::rpc::RpcError(what, s);
    return resp;
  }

  v1::StatusResponse status(const v1::ExperimentRef* ref, bool all) {
    v1::StatusRequest req;
    if (ref) *req.mutable_experiment() = *ref;
    req.set_all(all);
    return call<v1::StatusRequest, v1::StatusResponse>("status", &v1::ControlService::Stub::Status, req);
  }

  v1::ControlService::Stub* stub() { return stub_.get(); }
  const std::string& token() const { return token_; }
  const Global& global() const { return g_; }

 private:
  const Global& g_;
  std::string token_;
  std::unique_ptr<v1::ControlService::Stub> stub_;
};

// "12" -> by id; anything else -> by name (the latest submission of it).
v1::ExperimentRef parse_ref(const std::string& s) {
  if (s.empty()) throw UsageError("empty experiment reference");
  v1::ExperimentRef r;
  if (s.find_first_not_of("0123456789") == std::string::npos) {
    try {
      r.set_id(std::stoll(s));
    } catch (const std::exception&) {
      throw UsageError("experiment id " + s + " is out of range");
    }
    if (r.id() <= 0) throw UsageError("experiment ids start at 1 (got " + s + ")");
  } else {
    r.set_name(s);
  }
  return r;
}

void print_json(const nlohmann::json& j) { std::cout << dump(j) << std::endl; }

bool finished(const std::string& state) { return state == "done" || state == "failed" || state == "cancelled"; }

// Terminal width for renderings: $COLUMNS, else the TTY's, else unlimited.
spt::client::RenderOptions render_options() {
  spt::client::RenderOptions o;
  if (const char* c = std::getenv("COLUMNS"); c && std::atoi(c) > 0) o.width = std::atoi(c);
  struct winsize ws {};
  if (o.width == 0 && isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    o.width = ws.ws_col;
  const char* no_color = std::getenv("NO_COLOR");  // https://no-color.org: set and non-empty disables
  o.color = isatty(STDOUT_FILENO) && !(no_color && *no_color) && std::getenv("TERM") &&
            std::string(std::getenv("TERM")) != "dumb";
  return o;
}

// Polls Status until the experiment(s) stop running. Returns the exit status.
// A coordinator that restarts (UNAVAILABLE, or CANCELLED for calls cut off
// by its shutdown) is waited for up to 10 minutes. With --json each poll
// prints one JSON line (NDJSON).
int watch(Client& c, const std::string& exp, double interval_s, bool quiet_until_end,
          const spt::client::RenderOptions& ro) {
  const bool tty = isatty(STDOUT_FILENO) && !c.global().json;
  v1::ExperimentRef ref;
  if (!exp.empty()) ref = parse_ref(exp);
  double down_s = 0;
  for (;;) {
    v1::StatusResponse s;
    try {
      s = c.status(exp.empty() ? nullptr : &ref, false);
      if (down_s > 0) std::cerr << "server is back" << std::endl;
      down_s = 0;
    } catch (const spt::rpc::RpcError& e) {
      const auto code = e.status().error_code();
      const bool restart = code == grpc::UNAVAILABLE || code == grpc::CANCELLED;
      if (!restart || down_s > 600) throw;
      if (down_s == 0) std::cerr << "server unavailable, waiting for it: " << printable(e.what()) << std::endl;
      const double pause = std::max(interval_s, 0.5);
      std::this_thread::sleep_for(std::chrono::duration<double>(pause));
      down_s += pause;
      continue;
    }
    bool all_finished = true, all_done = true;
    for (const auto& e : s.experiments()) {
      all_finished = all_finished && finished(e.state());
      all_done = all_done && e.state() == "done";
    }
    if (c.global().json) {
      if (!quiet_until_end || all_finished) std::cout << to_json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    } else if (!quiet_until_end || all_finished) {
      if (tty) std::cout << "\033[H\033[2J";
      make_printable(&s);
      std::cout << spt::client::dashboard(s, ro) << std::flush;
    }
    if (all_finished) return all_done ? 0 : 1;
    std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
  }
}

std::string safe_file_name(const std::string& name, const std::string& sha) {
  std::string n = name;
  for (auto& ch : n)
    if (ch == '/' || ch == '\\') ch = '_';
  if (n.empty() || n == "." || n == "..") n = sha.substr(0, 16);
  return n;
}

void fail_usage(const std::string& msg) { throw UsageError(msg); }

// Params travel as UTF-8 text (the server refuses anything else): say which
// one is not, and where, before sending. `flag` is how the user gave it.
void check_param_utf8(const std::string& key, const std::string& value, const std::string& flag) {
  if (const size_t at = spt::utf8::invalid_at(key); at != spt::utf8::Validator::npos)
    fail_usage(flag + " " + printable(key) + ": name is not valid UTF-8 (byte offset " + std::to_string(at) + ")");
  if (const size_t at = spt::utf8::invalid_at(value); at != spt::utf8::Validator::npos)
    fail_usage(flag + " " + key + ": value is not valid UTF-8 (byte offset " + std::to_string(at) + ")");
}

// Defaults from the config file, then the environment (flags come last).
void load_defaults(Global& g) {
  const auto cfg = spt::client::read_config(spt::client::config_path());
  const auto& v = cfg.values;
  if (v.count("server")) g.server = v.at("server");
  if (v.count("token_file")) g.token_file = v.at("token_file");
  if (v.count("timeout_s")) {
    try {
      g.timeout_s = std::stod(v.at("timeout_s"));
    } catch (const std::exception&) {
      throw std::runtime_error(cfg.path + ": timeout_s must be a number (got '" + v.at("timeout_s") + "')");
    }
  }
  if (const char* s = std::getenv("SPT_SERVER"); s && *s) g.server = s;
  // An explicit token in the environment beats the file's token_file.
  if (const char* t = std::getenv("SPT_TOKEN"); t && *t) g.token_file.clear();
  if (const char* t = std::getenv("SPT_TOKEN_FILE"); t && *t) g.token_file = t;
  // TLS: config keys, then SPT_TLS_* (flags come last).
  spt::rpc::TlsOptions env;
  spt::rpc::tls_from_env(env);
  auto pick = [&v](const char* key, const std::string& from_env, std::string& field) {
    if (v.count(key)) field = v.at(key);
    if (!from_env.empty()) field = from_env;
  };
  pick("tls_ca", env.ca_file, g.tls.ca_file);
  pick("tls_cert", env.cert_file, g.tls.cert_file);
  pick("tls_key", env.key_file, g.tls.key_file);
  pick("tls_server_name", env.server_name, g.tls.server_name);
}

}  // namespace

int main(int argc, char** argv) {
  Global g;
  try {
    load_defaults(g);
  } catch (const std::exception& e) {
    std::cerr << "spt-client: " << e.what() << "\n";
    return spt::cli::kUsageExit;
  }

  CLI::App app{"spt-client: submit and follow spt experiments", "spt-client"};
  app.set_version_flag("--version", std::string("spt-client ") + SPT_CODE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  app.footer(spt::cli::footer(
      {{"spt-client submit exp10 --parts abcd --wait", "run exp10 A-D and follow it"},
       {"spt-client ls", "one line per experiment"},
       {"spt-client status exp10", "dashboard of the latest exp10"},
       {"spt-client logs exp10:a/baseline", "one job's events, error and log"},
       {"spt-client results exp10 --out results/", "fetch reports and figures"},
       {"source <(spt-client completion bash)", "tab completion"}},
      {{"SPT_SERVER", "coordinator host[:port] (default 127.0.0.1:7070; port defaults to 7070)"},
       {"SPT_TOKEN", "bearer token"},
       {"SPT_TOKEN_FILE", "file holding the bearer token"},
       {"SPT_TLS_CA, SPT_TLS_CERT, SPT_TLS_KEY", "as --tls-ca, --tls-cert, --tls-key (SPT_TLS_SERVER_NAME too)"},
       {"SPT_CONFIG", "config file (default $XDG_CONFIG_HOME/spt/config or ~/.config/spt/config):"},
       {"", "lines 'server = ...', 'token_file = ...', 'timeout_s = ...', 'tls_ca = ...',"},
       {"", "'tls_cert = ...', 'tls_key = ...', 'tls_server_name = ...';"},
       {"", "precedence: flags > environment > config file"},
       {"NO_COLOR", "set to disable colour; COLUMNS overrides the terminal width"}}));
  app.add_option("--server", g.server, "spt-server address host[:port] (env SPT_SERVER)")->capture_default_str();
  app.add_option("--token", g.token, "bearer token (env SPT_TOKEN)");
  app.add_option("--token-file", g.token_file, "file holding the bearer token (env SPT_TOKEN_FILE)");
  app.add_option("--tls-ca", g.tls.ca_file, "PEM CA that signed the server's certificate; enables TLS (env SPT_TLS_CA)");
  app.add_option("--tls-cert", g.tls.cert_file, "PEM client certificate, for servers that require one (env SPT_TLS_CERT)");
  app.add_option("--tls-key", g.tls.key_file, "PEM key of --tls-cert (env SPT_TLS_KEY)");
  app.add_option("--tls-server-name", g.tls.server_name,
                 "name to check in the server's certificate instead of --server's host (env SPT_TLS_SERVER_NAME)");
  app.add_flag("--json", g.json, "machine-readable output");
  app.add_option("--timeout-s", g.timeout_s, "per-request deadline")->capture_default_str()->check(CLI::Range(0.1, 1e6));

  std::string exp, parts, out_dir, job_ref, file, blob_name, prefix;
  std::vector<std::string> params;
  int priority = 0;
  bool force = false, wait = false, all = false;
  double interval = 1.0;

  auto* submit = app.add_subcommand("submit", "submit an experiment");
  submit->add_option("experiment", exp, "experiment name, e.g. selftest, exp10")->required();
  submit->add_option("--parts", parts, "parts to run, e.g. abcd (default: the experiment's)");
  submit->add_option("--param", params, "experiment parameter k=v (repeatable)")->allow_extra_args(false);
  spt::client::SubmitFlags sf;
  submit->add_option("--model", sf.model,
                     "HF name (gpt2, ...), a local model folder, or sha256:<artifact>; a,b,... for several");
  submit->add_option("--dataset", sf.dataset, "text file (wiki.valid.raw), a folder holding it, or a name");
  submit->add_option("--precision", sf.precision, "fp32 | tf32 | bf16 (default fp32)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  submit->add_option("--max-tokens", sf.max_tokens, "token budget (default: the spec's)")->check(CLI::PositiveNumber);
  submit->add_option("--chunk-len", sf.chunk_len, "tokens per chunk (default: the spec's)")->check(CLI::PositiveNumber);
  submit->add_flag("--upload", sf.upload, "put a local model folder / dataset file into the coordinator's store "
                                          "so workers elsewhere can fetch it");
  submit->add_option("--priority", priority, "higher runs first")->capture_default_str();
  submit->add_flag("--force", force, "recompute even if results are stored");
  submit->add_flag("--wait", wait, "follow progress until the experiment ends");
  submit->add_option("--interval", interval, "refresh interval with --wait (s)")->check(CLI::Range(0.05, 3600.0));

  auto* status = app.add_subcommand("status", "progress of experiments and the worker pool");
  status->add_option("experiment", exp, "id or name (default: the server's current view)");
  status->add_flag("--all", all, "include finished experiments");

  auto* watchc = app.add_subcommand("watch", "live status until the experiment(s) end");
  watchc->add_option("experiment", exp, "id or name");
  watchc->add_option("--interval", interval, "refresh interval (s)")->capture_default_str()->check(CLI::Range(0.05, 3600.0));

  auto* results = app.add_subcommand("results", "reduce results and artifacts of an experiment");
  results->add_option("experiment", exp, "id or name")->required();
  results->add_option("--out", out_dir, "write results.json and every artifact into this directory");

  auto* cancel = app.add_subcommand("cancel", "cancel an experiment's unfinished jobs");
  cancel->add_option("experiment", exp, "id or name")->required();
  auto* retry = app.add_subcommand("retry", "requeue an experiment's failed jobs");
  retry->add_option("experiment", exp, "id or name")->required();
  auto* workers = app.add_subcommand("workers", "list workers");
  bool prune = false;
  workers->add_flag("--prune", prune, "first forget workers not heard from that hold no lease");
  std::string worker_name;
  auto* drain = app.add_subcommand("drain", "ask a worker to finish its jobs, hand the rest back and exit");
  drain->add_option("worker", worker_name, "the worker's name (all live workers of that name) or id")->required();
  auto* logs = app.add_subcommand("logs", "a job's state, parameters, events and log");
  logs->add_option("job", job_ref, "job id, or experiment:jobname (e.g. selftest:map/7)")->required();
  auto* put = app.add_subcommand("put", "upload a file (model, dataset) to the artifact store");
  put->add_option("file", file, "local file")->required();
  put->add_option("--name", blob_name, "name to register (default: the file's base name)");
  auto* artifacts = app.add_subcommand("artifacts", "list stored artifacts");
  artifacts->add_option("--prefix", prefix, "only names starting with this");
  auto* ls = app.add_subcommand("ls", "one line per experiment (running and finished)");
  std::string shell;
  auto* completion = app.add_subcommand("completion", "print a shell completion script (bash or zsh)");
  completion->add_option("shell", shell, "bash | zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  completion->footer(spt::cli::footer({{"source <(spt-client completion bash)", "in ~/.bashrc"},
                                       {"spt-client completion zsh > \"${fpath[1]}/_spt-client\"", "for zsh"}},
                                      {}));
  submit->footer(spt::cli::footer(
      {{"spt-client submit selftest --param n=2000 --wait", "check the worker pool"},
       {"spt-client submit exp10 --parts abcd --model ./my-gpt2 --upload", "a local model, for offline workers"},
       {"spt-client submit exp10 --parts c --model gpt2-medium --chunk-len 512", ""}},
      {{"SPT_SERVER, SPT_TOKEN, SPT_TOKEN_FILE, SPT_CONFIG", "see spt-client --help"},
       {"HF_HUB_CACHE, HF_HOME", "where hub model names are looked up"}}));
  for (auto* sub : {status, watchc, results, cancel, retry, workers, logs, put, artifacts, ls, drain})
    if (sub->get_footer().empty())
      sub->footer(spt::cli::footer({{"spt-client " + sub->get_name() + " --help", "this help"}},
                                   {{"SPT_SERVER, SPT_TOKEN, SPT_TOKEN_FILE, SPT_CONFIG", "see spt-client --help"}}));

  if (const int rc = spt::cli::parse(app, argc, argv); rc >= 0) return rc;
  g.server = spt::cli::with_default_port(g.server, spt::cli::kDefaultPort);
  if (completion->parsed()) {
    std::cout << spt::client::completion_script(app, shell);
    return 0;
  }
  const auto ro = render_options();

  try {
    Client c(g);
    if (ls->parsed()) {
      auto s = c.status(nullptr, true);
      if (g.json)
        print_json(to_json(s));
      else
        make_printable(&s), std::cout << spt::client::experiments_table(s, ro);
      return 0;
    }
    if (submit->parsed()) {
      v1::SubmitRequest req;
      req.set_experiment(exp);
      req.set_parts(parts);
      const auto implied = spt::client::submission_params(sf, [&](const std::string& path, const std::string& name) {
        auto a = spt::rpc::put_blob(spt::rpc::blob_writer(c.stub()), c.token(), path, name);
        if (!g.json)
          std::cout << "uploaded " << printable(path) << " as " << printable(a.name()) << " (sha256 " << a.sha256()
                    << ")\n";
        return a.sha256();
      }, [&](const std::string& name) -> std::string {
        v1::ListArtifactsRequest lr;
        lr.set_prefix(name);
        auto found = c.call<v1::ListArtifactsRequest, v1::ListArtifactsResponse>(
            "artifacts", &v1::ControlService::Stub::ListArtifacts, lr);
        for (const auto& a : found.artifacts())
          if (a.name() == name) {
            if (!g.json) std::cout << "reusing " << printable(name) << " (sha256 " << a.sha256() << "), already stored\n";
            return a.sha256();
          }
        return "";
      });
      for (const auto& [k, v] : implied) check_param_utf8(k, v, "param"), (*req.mutable_params())[k] = v;
      for (const auto& kv : params) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) fail_usage("--param expects key=value (got '" + printable(kv) + "')");
        check_param_utf8(kv.substr(0, eq), kv.substr(eq + 1), "--param");
        (*req.mutable_params())[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      req.set_priority(priority);
      req.set_force(force);
      // issue 12: the server stores a large plan in chunks (10^6 jobs: about a
      // minute) and drops it if the client gives up first, so submit waits
      // at least 10 minutes whatever --timeout-s says for other calls.
      const double timeout_s = g.timeout_s;
      g.timeout_s = std::max(g.timeout_s, 600.0);
      auto r = c.call<v1::SubmitRequest, v1::SubmitResponse>("submit", &v1::ControlService::Stub::Submit, req);
      g.timeout_s = timeout_s;
      if (!wait) {
        if (g.json)
          print_json(to_json(r));
        else
          std::cout << "submitted " << exp << " as experiment #" << r.experiment_id() << ": " << r.n_jobs() << " jobs ("
                    << r.n_reused() << " answered from stored results)\n";
        return 0;
      }
      if (!g.json)
        std::cout << "submitted " << exp << " as experiment #" << r.experiment_id() << ": " << r.n_jobs() << " jobs\n";
      return watch(c, std::to_string(r.experiment_id()), interval, g.json, ro);
    }
    if (status->parsed()) {
      v1::ExperimentRef ref;
      if (!exp.empty()) ref = parse_ref(exp);
      auto s = c.status(exp.empty() ? nullptr : &ref, all);
      if (g.json)
        print_json(to_json(s));
      else
        make_printable(&s), std::cout << spt::client::dashboard(s, ro);
      return 0;
    }
    if (watchc->parsed()) return watch(c, exp, interval, false, ro);
    if (results->parsed()) {
      v1::ResultsRequest req;
      *req.mutable_experiment() = parse_ref(exp);
      auto r = c.call<v1::ResultsRequest, v1::ResultsResponse>("results", &v1::ControlService::Stub::Results, req);
      nlohmann::json j = to_json(r);
      if (!out_dir.empty()) {
        fs::create_directories(out_dir);
        // results.json: the response, with each result_json also parsed.
        nlohmann::json doc = j;
        for (auto& rr : doc["reduce_results"]) {
          const std::string txt = rr.value("result_json", "");
          rr["result"] = txt.empty() ? nlohmann::json() : nlohmann::json::parse(txt, nullptr, false);
        }
        spt::write_file_atomic((fs::path(out_dir) / "results.json").string(), dump(doc) + "\n");
        int n = 0;
        for (const auto& a : r.artifacts()) {
          const std::string dest = (fs::path(out_dir) / safe_file_name(a.name(), a.sha256())).string();
          v1::FetchBlobRequest fr;
          fr.set_sha256(a.sha256());
          std::string got;
          spt::rpc::fetch_blob(spt::rpc::blob_reader(c.stub()), c.token(), fr,
                               [&](const v1::BlobChunk&) { return dest; }, &got);
          ++n;
        }
        if (!g.json)
          std::cerr << "wrote " << (fs::path(out_dir) / "results.json").string() << " and " << n << " artifacts\n";
      }
      if (g.json) {
        print_json(j);
        return 0;
      }
      make_printable(&r);
      const auto& e = r.experiment();
      std::cout << "#" << e.id() << " " << e.name() << "  " << e.state() << "  " << e.counts().done() << "/"
                << e.counts().total() << " done, " << e.counts().failed() << " failed\n"
                << spt::client::failure_summary(e, ro);
      // With --out everything is in the folder: print where, not the JSON.
      if (!out_dir.empty()) {
        for (const auto& rr : r.reduce_results())
          if (rr.state() != "done")
            std::cout << rr.name() << ": " << rr.state() << (rr.error().empty() ? "" : ": " + rr.error()) << "\n";
        std::cout << "results in " << out_dir << "/ (results.json and " << r.artifacts_size() << " artifacts)\n";
        return 0;
      }
      for (const auto& rr : r.reduce_results()) {
        std::cout << "\n" << rr.name() << " (" << rr.kind() << ", job " << rr.job_id() << "): " << rr.state() << "\n";
        if (!rr.result_json().empty()) {
          auto parsed = nlohmann::json::parse(rr.result_json(), nullptr, false);
          std::cout << (parsed.is_discarded() ? rr.result_json() : dump(parsed)) << "\n";
        }
        if (!rr.error().empty()) std::cout << "error: " << rr.error() << "\n";
      }
      if (r.artifacts_size()) {
        std::vector<std::vector<std::string>> rows = {{"ARTIFACT", "SIZE", "TYPE", "SHA256"}};
        for (const auto& a : r.artifacts())
          rows.push_back({a.name(), spt::client::human_bytes(a.size()), a.media_type(), a.sha256().substr(0, 16)});
        std::cout << "\n" << spt::client::table(rows);
      }
      return 0;
    }
    if (cancel->parsed() || retry->parsed()) {
      if (cancel->parsed()) {
        v1::CancelRequest req;
        *req.mutable_experiment() = parse_ref(exp);
        auto r = c.call<v1::CancelRequest, v1::CancelResponse>("cancel", &v1::ControlService::Stub::Cancel, req);
        if (g.json)
          print_json(to_json(r));
        else
          std::cout << "cancelled " << r.cancelled_jobs() << " jobs of " << exp << "\n";
      } else {
        v1::RetryRequest req;
        *req.mutable_experiment() = parse_ref(exp);
        auto r = c.call<v1::RetryRequest, v1::RetryResponse>("retry", &v1::ControlService::Stub::Retry, req);
        if (g.json)
          print_json(to_json(r));
        else
          std::cout << "requeued " << r.retried_jobs() << " jobs of " << exp << "\n";
      }
      return 0;
    }
    if (drain->parsed()) {
      v1::DrainWorkerRequest req;
      req.set_name(worker_name);
      auto r = c.call<v1::DrainWorkerRequest, v1::DrainWorkerResponse>("drain", &v1::ControlService::Stub::DrainWorker,
                                                                       req);
      if (g.json)
        print_json(to_json(r));
      else
        std::cout << "asked " << r.workers() << " worker(s) named " << worker_name << " to drain\n";
      return 0;
    }
    if (workers->parsed()) {
      if (prune) {
        auto p = c.call<v1::PruneWorkersRequest, v1::PruneWorkersResponse>(
            "workers --prune", &v1::ControlService::Stub::PruneWorkers, v1::PruneWorkersRequest());
        if (!g.json) std::cout << "pruned " << p.pruned() << " gone workers\n";
      }
      auto r = c.call<v1::ListWorkersRequest, v1::ListWorkersResponse>(
          "workers", &v1::ControlService::Stub::ListWorkers, v1::ListWorkersRequest());
      if (!g.json) make_printable(&r);
      if (g.json)
        print_json(to_json(r));
      else if (r.workers().empty())
        std::cout << "no workers registered\n";
      else
        std::cout << spt::client::workers_table(r.workers(), spt::now_unix_ms(), ro, /*details=*/true);
      return 0;
    }
    if (logs->parsed()) {
      v1::LogsRequest req;
      if (job_ref.find_first_not_of("0123456789") == std::string::npos) {
        req.set_job_id(std::stoll(job_ref));
      } else {
        const auto colon = job_ref.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == job_ref.size())
          fail_usage("job must be a numeric id or experiment:jobname (got '" + job_ref + "')");
        *req.mutable_experiment() = parse_ref(job_ref.substr(0, colon));
        req.set_job_name(job_ref.substr(colon + 1));
      }
      auto r = c.call<v1::LogsRequest, v1::LogsResponse>("logs", &v1::ControlService::Stub::Logs, req);
      if (g.json) {
        print_json(to_json(r));
        return 0;
      }
      make_printable(&r);
      const auto& j = r.job();
      std::cout << "job " << j.job_id() << " " << j.name() << " (" << j.kind() << "): " << j.state() << ", attempt "
                << j.attempt() << "\n";
      auto params_doc = nlohmann::json::parse(r.params_json(), nullptr, false);
      std::cout << "params: " << (params_doc.is_discarded() ? r.params_json() : params_doc.dump()) << "\n";
      if (!j.result_json().empty()) std::cout << "result: " << j.result_json() << "\n";
      if (!j.error().empty()) std::cout << "error: " << j.error() << "\n";
      if (r.events_size()) {
        std::vector<std::vector<std::string>> rows = {{"TIME", "EVENT", "DETAIL"}};
        for (const auto& e : r.events()) {
          char buf[64];
          const time_t t = static_cast<time_t>(e.unix_ms() / 1000);
          struct tm tmv;
          localtime_r(&t, &tmv);
          std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tmv);
          char ms[8];
          std::snprintf(ms, sizeof ms, ".%03d", static_cast<int>(e.unix_ms() % 1000));
          rows.push_back({std::string(buf) + ms, e.event(), e.detail()});
        }
        std::cout << "\n" << spt::client::table(rows);
      }
      if (!r.log().empty()) std::cout << "\nlog:\n" << r.log() << (r.log().back() == '\n' ? "" : "\n");
      return 0;
    }
    if (put->parsed()) {
      auto a = spt::rpc::put_blob(spt::rpc::blob_writer(c.stub()), c.token(), file, blob_name);
      if (g.json)
        print_json(to_json(a));
      else
        make_printable(&a), std::cout << "stored " << a.name() << ": sha256 " << a.sha256() << ", " << spt::client::human_bytes(a.size())
                  << "\n";
      return 0;
    }
    if (artifacts->parsed()) {
      v1::ListArtifactsRequest req;
      req.set_prefix(prefix);
      auto r = c.call<v1::ListArtifactsRequest, v1::ListArtifactsResponse>(
          "artifacts", &v1::ControlService::Stub::ListArtifacts, req);
      if (!g.json) make_printable(&r);
      if (g.json) {
        print_json(to_json(r));
      } else if (r.artifacts().empty()) {
        std::cout << "no artifacts\n";
      } else {
        std::vector<std::vector<std::string>> rows = {{"NAME", "SIZE", "TYPE", "SHA256"}};
        for (const auto& a : r.artifacts())
          rows.push_back({a.name(), spt::client::human_bytes(a.size()), a.media_type(), a.sha256()});
        std::cout << spt::client::table(rows);
      }
      return 0;
    }
  } catch (const spt::rpc::RpcError& e) {
    std::cerr << "error: " << printable(e.what(), true) << "\n";
    switch (e.status().error_code()) {
      case grpc::UNAUTHENTICATED:
      case grpc::PERMISSION_DENIED:
        std::cerr << "hint: the server wants its bearer token; pass --token or --token-file, or set SPT_TOKEN or "
                     "SPT_TOKEN_FILE, to the token the server was started with\n";
        break;
      case grpc::UNAVAILABLE:
        if (const std::string why = spt::rpc::diagnose_tls(g.server, g.tls); !why.empty())
          std::cerr << "TLS: " << why << "\n";
        else
          std::cerr << "hint: is spt-server running and reachable at " << g.server << "? (--server or SPT_SERVER)\n";
        break;
      case grpc::DEADLINE_EXCEEDED:
        std::cerr << "hint: the server did not answer within " << g.timeout_s << " s (--timeout-s)\n";
        break;
      case grpc::RESOURCE_EXHAUSTED:
        // issue 12: the coordinator's per-submission limits (the message names the flag).
        std::cerr << "hint: the request is over a limit of the coordinator: submit less (fewer parts, a smaller "
                     "model or n, a shorter tag) or ask its operator to raise the spt-server flag named above\n";
        break;
      default:
        break;
    }
    return 1;
  } catch (const UsageError& e) {
    std::cerr << "error: " << printable(e.what(), true) << "\n";
    return spt::cli::kUsageExit;
  } catch (const std::exception& e) {
    std::cerr << "error: " << printable(e.what(), true) << "\n";
    return 1;
  }
  return 0;
}
