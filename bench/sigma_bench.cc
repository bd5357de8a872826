// sigma_bench: the σ family (exp1 v1+v2, exp2 abc, exp3 abcd, exp3ef eft)
// on one model, timed in process and through the pool. Prints figures;
// asserts nothing.
//
//   sigma_bench [--model DIR] [--quick] [--modes inproc,unbatched,norender,pool]
//               [--exps exp1,exp2,exp3,exp3ef] [--threads N] [--batch N]
//               [--server-bin PATH] [--worker-bin PATH] [--keep]
//
// Without --model it writes a random GPT-2-small-shaped checkpoint (12
// layers x 12 heads, d_model 768, vocab 50,257, n_ctx 1,024; testmodel.h,
// seed 1) to /tmp/spt-sigma-bench-gpt2small once and reuses it on later
// runs; --quick uses a tiny one (4 x 4, d_model 64, n_ctx 128) in
// /tmp/spt-sigma-bench-quick instead, for a smoke run.
//
// Modes (each runs every experiment of --exps, in that order):
//   inproc     platform::run_plan_in_process with the σ executors: the
//              profiles (and directions) of a leased batch go through one
//              batched probe (as few forwards as the probe budget allows)
//   unbatched  the same with $SPT_SIGMA_BATCH=0 (one forward per prompt)
//   norender   inproc with $SPT_GNUPLOT=/nonexistent: the reduces write
//              .dat/.gp but render no PNG/SVG (how much time is gnuplot)
//   pool       the real spt-server + one spt-worker (--threads, lease
//              --batch) on loopback, submitted over the gRPC API and timed
//              from Submit to the experiment's state leaving "running":
//              (fresh) each experiment on a fresh coordinator and worker;
//              (seq) all of them in sequence on one coordinator, where
//              later experiments reuse earlier units by content key.
// Every in-process mode and every fresh worker is warmed up first (model
// loaded, tokenizer read) outside the timings: in process by one direction
// job, in the pool by a tiny exp10 part A (2 x 4 tokens), which loads the
// same model into the worker's model host and shares no unit with σ.
//
// In process, the σ executors are wrapped to time each kind (probe work
// vs reduces); probe calls, prompts and forwards come from the probe's own
// counters (platform::probe_stats()).
// The pool reports jobs planned/reused/run from the coordinator.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "platform/local_run.h"
#include "platform/probe.h"
#include "sigma/common.h"
#include "sigma/executors.h"
#include "spt/job.h"
#include "spt/plan.h"
#include "spt/util.h"
#include "testmodel.h"
#ifdef SPT_BENCH_POOL
#include "children.h"
#endif

#ifdef SPT_BENCH_POOL
#include <netinet/in.h>
#include <sys/socket.h>

#include "client/connection.h"
#endif


namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr, "sigma_bench: %s\n(see the comment at the top of bench/sigma_bench.cc)\n", msg.c_str());
  std::exit(2);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string t; std::getline(in, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

struct Exp {
  std::string name, parts;
};

const std::map<std::string, std::string> kParts = {
    {"exp1", "v1,v2"}, {"exp2", "abc"}, {"exp3", "abcd"}, {"exp3ef", "eft"}};

struct ModelInfo {
  std::string dir;
  int n_layer = 0, n_head = 0, d_model = 0, d_mlp = 0;
};

// ---- counting ----

struct Counts {
  int64_t probe_calls = 0, forwards = 0, prompts = 0, png = 0;
  std::map<std::string, int64_t> jobs;     // by kind
  std::map<std::string, double> seconds;   // by kind (executor run() time)
};

// Wraps an executor: times run() per kind and counts probe forwards.
class Timed : public spt::Executor {
 public:
  Timed(spt::Executor* inner, Counts** sink) : inner_(inner), sink_(sink) {}
  std::vector<std::string> kinds() const override { return inner_->kinds(); }
  std::vector<std::string> loaded_models() const override { return inner_->loaded_models(); }
  std::vector<std::string> precisions() const override { return inner_->precisions(); }
  void run(const std::vector<spt::JobSpec>& jobs, spt::ExecContext& ctx,
           const std::function<void(size_t, spt::Outcome)>& done) override {
    Counts& c = **sink_;
    for (const auto& j : jobs) ++c.jobs[j.kind];
    const spt::platform::ProbeStats before = spt::platform::probe_stats();
    const double t0 = spt::monotonic_s();
    inner_->run(jobs, ctx, [&](size_t i, spt::Outcome o) {
      for (const auto& f : o.files)
        if (f.name.size() > 4 && f.name.compare(f.name.size() - 4, 4, ".png") == 0) ++c.png;
      done(i, std::move(o));
    });
    c.seconds[jobs.empty() ? "" : jobs.front().kind] += spt::monotonic_s() - t0;
    const spt::platform::ProbeStats after = spt::platform::probe_stats();
    c.probe_calls += after.calls - before.calls;
    c.prompts += after.prompts - before.prompts;
    c.forwards += after.forwards - before.forwards;
  }

 private:
  spt::Executor* inner_;
  Counts** sink_;
};

// ---- pool: the real binaries on loopback ----

#ifdef SPT_BENCH_POOL
namespace v1 = spt::v1;
using spt::bench::Child;
using spt::bench::free_port;
using spt::bench::stop;

// Children keep the bench's environment (SPT_GNUPLOT, …) but not its
// client connection settings.
Child spawn(const std::vector<std::string>& argv, const std::string& log, const std::string& token) {
  return spt::bench::spawn(argv, log, token, [](const std::string& e) {
    return e.rfind("SPT_SERVER=", 0) == 0 || e.rfind("SPT_TOKEN", 0) == 0;
  });
}
// The worker's CPU includes the gnuplot runs it waited for.
double cpu_s(pid_t pid) { return spt::bench::cpu_s(pid, true); }

struct PoolRun {
  double wall_s = 0, server_cpu_s = 0, worker_cpu_s = 0;
  int n_jobs = 0, n_reused = 0;
  int64_t done = 0;
  std::string state;
};

class Pool {
 public:
  Pool(const std::string& server_bin, const std::string& worker_bin, const std::string& dir, int threads, int batch)
      : dir_(dir) {
    fs::create_directories(dir);
    spt::write_file_atomic(dir + "/token", token_ + "\n");
    addr_ = "127.0.0.1:" + std::to_string(free_port());
    server_ = spawn({server_bin, "--listen", addr_, "--db", dir + "/spt.db", "--data-dir", dir + "/data",
                     "--token-file", dir + "/token"},
                    dir + "/server.log", token_);
    stub_ = v1::ControlService::NewStub(spt::rpc::make_channel(addr_));
    bool up = false;
    for (int i = 0; i < 400 && !up; ++i) {
      v1::StatusResponse r;
      up = status(&r, 0).ok();
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!up) throw std::runtime_error("spt-server did not start; see " + dir + "/server.log");
    worker_ = spawn({worker_bin, "--server", addr_, "--name", "sigma-bench", "--device", "cpu", "--threads",
                     std::to_string(threads), "--batch", std::to_string(batch), "--cache-dir", dir + "/cache"},
                    dir + "/worker.log", token_);
    for (int i = 0; i < 400; ++i) {
      v1::StatusResponse r;
      if (status(&r, 0).ok() && r.workers_size() >= 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("spt-worker did not register; see " + dir + "/worker.log");
  }
  ~Pool() {
    stop(worker_, 10000);
    stop(server_, 10000);
  }

  PoolRun submit(const std::string& exp, const std::string& parts, const std::map<std::string, std::string>& params,
                 double timeout_s = 7200) {
    PoolRun run;
    const double c_srv = cpu_s(server_.pid), c_wrk = cpu_s(worker_.pid);
    const double t0 = spt::monotonic_s();
    v1::SubmitResponse sub;
    {
      grpc::ClientContext ctx;
      spt::rpc::prepare(ctx, token_, 120, true);
      v1::SubmitRequest req;
      req.set_experiment(exp);
      req.set_parts(parts);
      for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
      const grpc::Status s = stub_->Submit(&ctx, req, &sub);
      if (!s.ok()) throw std::runtime_error("submit " + exp + ": " + spt::rpc::status_text(s));
    }
    run.n_jobs = sub.n_jobs();
    run.n_reused = sub.n_reused();
    v1::ExperimentStatus last;
    while (spt::monotonic_s() - t0 < timeout_s) {
      v1::StatusResponse r;
      if (status(&r, sub.experiment_id()).ok() && r.experiments_size()) {
        last = r.experiments(0);
        if (last.state() != "running") break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    run.wall_s = spt::monotonic_s() - t0;
    run.server_cpu_s = cpu_s(server_.pid) - c_srv;
    run.worker_cpu_s = cpu_s(worker_.pid) - c_wrk;
    run.state = last.state();
    run.done = last.counts().done();
    if (run.state != "done")
      throw std::runtime_error(exp + " ended '" + run.state + "' (" + std::to_string(last.counts().done()) + "/" +
                               std::to_string(last.counts().total()) + " done); logs in " + dir_);
    return run;
  }

 private:
  grpc::Status status(v1::StatusResponse* resp, int64_t id) {
    grpc::ClientContext ctx;
    spt::rpc::prepare(ctx, token_, 5, true);
    v1::StatusRequest req;
    if (id) req.mutable_experiment()->set_id(id);
    return stub_->Status(&ctx, req, resp);
  }

  std::string dir_, addr_, token_ = "sigma-bench-token";
  Child server_, worker_;
  std::unique_ptr<v1::ControlService::Stub> stub_;
};
#endif  // SPT_BENCH_POOL

ModelInfo prepare_model(const std::map<std::string, std::string>& a, bool quick) {
  ModelInfo m;
  if (a.count("model")) {
    m.dir = a.at("model");
  } else {
    spt::gpt2::TestModelSpec spec;
    spec.seed = 1;
    if (quick) {
      spec.n_layer = 4, spec.n_head = 4, spec.d_model = 64, spec.n_ctx = 128;
      m.dir = "/tmp/spt-sigma-bench-quick";
    } else {
      spec.n_layer = 12, spec.n_head = 12, spec.d_model = 768, spec.n_ctx = 1024;
      m.dir = "/tmp/spt-sigma-bench-gpt2small";
    }
    const std::string want = json({{"n_layer", spec.n_layer}, {"n_head", spec.n_head}, {"d_model", spec.d_model},
                                   {"n_ctx", spec.n_ctx}, {"vocab", spec.vocab}, {"seed", spec.seed}})
                                 .dump();
    const fs::path stamp = fs::path(m.dir) / "sigma_bench.stamp";
    bool ok = false;
    try {
      ok = fs::exists(fs::path(m.dir) / "model.safetensors") && spt::read_file(stamp.string()) == want;
    } catch (const std::exception&) {
    }
    if (!ok) {
      std::printf("writing %s ...\n", m.dir.c_str());
      std::fflush(stdout);
      const std::string tmp = m.dir + ".tmp" + std::to_string(::getpid());
      fs::remove_all(tmp);
      spt::gpt2::write_test_model(tmp, spec);
      spt::write_file_atomic((fs::path(tmp) / "sigma_bench.stamp").string(), want);
      fs::remove_all(m.dir);
      fs::rename(tmp, m.dir);
    }
  }
  const json cfg = json::parse(spt::read_file(m.dir + "/config.json"));
  m.n_layer = cfg.at("n_layer").get<int>();
  m.n_head = cfg.at("n_head").get<int>();
  m.d_model = cfg.at("n_embd").get<int>();
  m.d_mlp = cfg.contains("n_inner") && cfg.at("n_inner").is_number() ? cfg.at("n_inner").get<int>() : 4 * m.d_model;
  return m;
}

// CPU seconds (user + system) of this process and its reaped children
// (the gnuplot processes the reduces run).
double self_cpu_s() {
  double t = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage u{};
    getrusage(who, &u);
    t += u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  }
  return t;
}

std::string fmt_s(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", s);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a = {{"modes", "inproc,unbatched,norender,pool"},
                                          {"exps", "exp1,exp2,exp3,exp3ef"},
                                          {"threads", std::to_string(std::max(1u, std::thread::hardware_concurrency()))},
                                          {"batch", "32"}};
#ifdef SPT_BENCH_POOL
  a["server-bin"] = SPT_BENCH_SERVER_BIN;
  a["worker-bin"] = SPT_BENCH_WORKER_BIN;
#endif
  bool quick = false, keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--quick") {
      quick = true;
      continue;
    }
    if (k == "--keep") {
      keep = true;
      continue;
    }
    if (k == "-h" || k == "--help") usage("usage");
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) usage("bad argument " + k);
    a[k.substr(2)] = argv[++i];
  }
  std::vector<Exp> exps;
  for (const auto& e : split(a["exps"])) {
    if (!kParts.count(e)) usage("unknown experiment " + e + " (exp1, exp2, exp3, exp3ef)");
    exps.push_back({e, kParts.at(e)});
  }
  const auto modes_v = split(a["modes"]);
  const std::set<std::string> modes(modes_v.begin(), modes_v.end());
  for (const auto& m : modes)
    if (m != "inproc" && m != "unbatched" && m != "norender" && m != "pool") usage("unknown mode " + m);
#ifndef SPT_BENCH_POOL
  if (modes.count("pool")) usage("mode pool needs a build with gRPC (SPT_WITH_GRPC)");
#endif
  const int threads = std::stoi(a["threads"]);
  // The modes set these themselves; start from the defaults.
  ::unsetenv("SPT_SIGMA_BATCH");
  const char* gnuplot_env = std::getenv("SPT_GNUPLOT");
  const std::string gnuplot_saved = gnuplot_env ? gnuplot_env : "";
  char tmpl[] = "/tmp/spt-sigma-bench-XXXXXX";
  const std::string root = mkdtemp(tmpl);

  try {
    const ModelInfo m = prepare_model(a, quick);
    const std::map<std::string, std::string> params = {
        {"model", m.dir}, {"n_layer", std::to_string(m.n_layer)}, {"n_head", std::to_string(m.n_head)}};
    std::printf("sigma_bench: model %s (%d layers x %d heads, d_model %d), %d threads, %u cores\n", m.dir.c_str(),
                m.n_layer, m.n_head, m.d_model, threads, std::thread::hardware_concurrency());
    {
      std::ifstream la("/proc/loadavg");
      std::string l;
      std::getline(la, l);
      std::printf("load average at start: %s\n", l.c_str());
    }

    json report = {{"model", m.dir}, {"n_layer", m.n_layer}, {"n_head", m.n_head}, {"d_model", m.d_model},
                   {"threads", threads}};
    std::map<std::string, std::map<std::string, double>> wall;  // mode → exp → s
    std::vector<std::string> mode_order;
    std::map<std::string, double> cpu_total;  // mode → CPU s (in process: bench + gnuplot; pool: server + worker + gnuplot)

    // ---- in process ----
    const std::vector<std::string> inproc_modes = {"inproc", "unbatched", "norender"};
    bool any_inproc = false;
    for (const auto& mode : inproc_modes) any_inproc = any_inproc || modes.count(mode);
    if (any_inproc) {
      spt::ExecutorRegistry inner, reg;
      spt::sigma::register_executors(inner);
      Counts warm_counts;
      Counts* sink = &warm_counts;
      for (const auto& e : inner.all()) reg.add(std::make_unique<Timed>(e.get(), &sink));
      spt::ExecContext ctx;
      ctx.device = "cpu";
      ctx.threads = threads;
      ctx.cache_dir = root + "/cache";
      ctx.worker_name = "sigma_bench";
      {
        ctx.scratch_dir = root + "/scratch-warm";
        auto p = spt::plan::make_plan({"exp1", "v1", params});
        p.jobs.resize(1);  // one direction job: loads the model and the tokenizer
        const double t0 = spt::monotonic_s();
        spt::platform::run_plan_in_process(p, reg, ctx);
        std::printf("warm-up (model load + one direction): %.2f s\n", spt::monotonic_s() - t0);
      }
      std::printf("\n%-10s %-7s %5s %5s %5s %6s %6s %8s %4s | %8s %8s %8s | %8s %8s\n", "mode", "exp", "jobs", "dir",
                  "prof", "reduce", "calls", "forwards", "png", "dir_s", "prof_s", "reduce_s", "wall_s", "cpu_s");
      for (const auto& mode : inproc_modes) {
        if (!modes.count(mode)) continue;
        if (mode == "unbatched") ::setenv("SPT_SIGMA_BATCH", "0", 1);
        if (mode == "norender") ::setenv("SPT_GNUPLOT", "/nonexistent", 1);
        mode_order.push_back(mode);
        Counts total;
        for (const auto& e : exps) {
          Counts c;
          sink = &c;
          ctx.scratch_dir = root + "/scratch-" + mode + "-" + e.name;
          const auto plan = spt::plan::make_plan({e.name, e.parts, params});
          const double cpu0 = self_cpu_s();
          const auto run = spt::platform::run_plan_in_process(plan, reg, ctx);
          const double cpu = self_cpu_s() - cpu0;
          cpu_total[mode] += cpu;
          wall[mode][e.name] = run.seconds;
          const auto g = [&](const char* k) { return c.jobs.count(k) ? c.jobs.at(k) : 0; };
          const auto gs = [&](const char* k) { return c.seconds.count(k) ? c.seconds.at(k) : 0.0; };
          std::printf("%-10s %-7s %5zu %5lld %5lld %6lld %6lld %8lld %4lld | %8.2f %8.2f %8.2f | %8.2f %8.2f\n",
                      mode.c_str(), e.name.c_str(), plan.jobs.size(),
                      static_cast<long long>(g(spt::sigma::kKindDirection)),
                      static_cast<long long>(g(spt::sigma::kKindProfile)),
                      static_cast<long long>(g(spt::sigma::kKindReduce)), static_cast<long long>(c.probe_calls),
                      static_cast<long long>(c.forwards), static_cast<long long>(c.png), gs(spt::sigma::kKindDirection),
                      gs(spt::sigma::kKindProfile), gs(spt::sigma::kKindReduce), run.seconds, cpu);
          std::fflush(stdout);
          report[mode][e.name] = {{"wall_s", run.seconds},
                                  {"cpu_s", cpu},
                                  {"jobs", plan.jobs.size()},
                                  {"jobs_by_kind", c.jobs},
                                  {"seconds_by_kind", c.seconds},
                                  {"probe_calls", c.probe_calls},
                                  {"forwards", c.forwards},
                                  {"prompts", c.prompts},
                                  {"png", c.png}};
          total.probe_calls += c.probe_calls;
          total.forwards += c.forwards;
          total.png += c.png;
          for (const auto& [k, v] : c.jobs) total.jobs[k] += v;
          for (const auto& [k, v] : c.seconds) total.seconds[k] += v;
          wall[mode]["total"] += run.seconds;
        }
        const auto g = [&](const char* k) { return total.jobs.count(k) ? total.jobs.at(k) : 0; };
        const auto gs = [&](const char* k) { return total.seconds.count(k) ? total.seconds.at(k) : 0.0; };
        std::printf("%-10s %-7s %5lld %5lld %5lld %6lld %6lld %8lld %4lld | %8.2f %8.2f %8.2f | %8.2f %8.2f\n",
                    mode.c_str(), "total",
                    static_cast<long long>(g(spt::sigma::kKindDirection) + g(spt::sigma::kKindProfile) +
                                           g(spt::sigma::kKindReduce)),
                    static_cast<long long>(g(spt::sigma::kKindDirection)),
                    static_cast<long long>(g(spt::sigma::kKindProfile)),
                    static_cast<long long>(g(spt::sigma::kKindReduce)), static_cast<long long>(total.probe_calls),
                    static_cast<long long>(total.forwards), static_cast<long long>(total.png),
                    gs(spt::sigma::kKindDirection),
                    gs(spt::sigma::kKindProfile), gs(spt::sigma::kKindReduce), wall[mode]["total"], cpu_total[mode]);
        std::fflush(stdout);
        report[mode]["total"] = {{"wall_s", wall[mode]["total"]},
                                 {"cpu_s", cpu_total[mode]},
                                 {"probe_calls", total.probe_calls},
                                 {"forwards", total.forwards},
                                 {"png", total.png},
                                 {"seconds_by_kind", total.seconds}};
        ::unsetenv("SPT_SIGMA_BATCH");
        if (gnuplot_saved.empty()) ::unsetenv("SPT_GNUPLOT");
        else ::setenv("SPT_GNUPLOT", gnuplot_saved.c_str(), 1);
      }
    }

    // ---- through the pool ----
#ifdef SPT_BENCH_POOL
    if (modes.count("pool")) {
      const int batch = std::stoi(a["batch"]);
      // exp10 part A on 2 x 4 tokens: loads the model into the worker's host
      // and shares no unit with the σ family (exp3ef=none: without it the
      // plan would hold this model's exp3 + exp3ef for 10D's correlation).
      auto warm = [&](Pool& pool) {
        auto wp = params;
        wp["dataset"] = std::string(SPT_SOURCE_DIR) + "/experiments/data/sample_wiki.raw";
        wp["max_tokens"] = "8";
        wp["chunk_len"] = "4";
        wp["exp3ef"] = "none";
        const auto r = pool.submit("exp10", "a", wp);
        std::printf("pool warm-up (exp10 a, 2 x 4 tokens, model load): %.2f s\n", r.wall_s);
      };
      // worker_cpu includes the gnuplot processes it waited for.
      std::printf("\n%-10s %-7s %6s %6s %6s %8s %10s %10s\n", "mode", "exp", "jobs", "reused", "run", "wall_s",
                  "server_cpu", "worker_cpu");
      auto row = [&](const std::string& mode, const std::string& exp, const PoolRun& r) {
        std::printf("%-10s %-7s %6d %6d %6d %8.2f %10.2f %10.2f\n", mode.c_str(), exp.c_str(), r.n_jobs, r.n_reused,
                    r.n_jobs - r.n_reused, r.wall_s, r.server_cpu_s, r.worker_cpu_s);
        std::fflush(stdout);
        report[mode][exp] = {{"wall_s", r.wall_s},         {"jobs", r.n_jobs},
                             {"reused", r.n_reused},       {"server_cpu_s", r.server_cpu_s},
                             {"worker_cpu_s", r.worker_cpu_s}};
        wall[mode][exp] = r.wall_s;
        wall[mode]["total"] += r.wall_s;
        cpu_total[mode] += r.server_cpu_s + r.worker_cpu_s;
      };
      mode_order.push_back("pool-fresh");
      for (const auto& e : exps) {
        Pool pool(a["server-bin"], a["worker-bin"], root + "/pool-fresh-" + e.name, threads, batch);
        warm(pool);
        row("pool-fresh", e.name, pool.submit(e.name, e.parts, params));
      }
      mode_order.push_back("pool-seq");
      {
        Pool pool(a["server-bin"], a["worker-bin"], root + "/pool-seq", threads, batch);
        warm(pool);
        for (const auto& e : exps) row("pool-seq", e.name, pool.submit(e.name, e.parts, params));
      }
      for (const char* md : {"pool-fresh", "pool-seq"}) {
        std::printf("%-10s %-7s %6s %6s %6s %8.2f %21.2f (server + worker CPU)\n", md, "total", "", "", "",
                    wall[md]["total"], cpu_total[md]);
        report[md]["total"] = {{"wall_s", wall[md]["total"]}, {"cpu_s", cpu_total[md]}};
      }
    }
#endif

    // ---- summary: wall seconds per experiment and mode ----
    std::printf("\nwall seconds (model loaded beforehand)\n%-8s", "exp");
    for (const auto& md : mode_order) std::printf(" %11s", md.c_str());
    std::printf("\n");
    std::vector<std::string> rows;
    for (const auto& e : exps) rows.push_back(e.name);
    rows.push_back("total");
    for (const auto& r : rows) {
      std::printf("%-8s", r.c_str());
      for (const auto& md : mode_order) std::printf(" %11s", fmt_s(wall[md][r]).c_str());
      std::printf("\n");
    }
    std::printf("%-8s", "cpu_s");
    for (const auto& md : mode_order) std::printf(" %11s", fmt_s(cpu_total[md]).c_str());
    std::printf("\n");
    if (wall.count("inproc")) {
      const double base = wall["inproc"]["total"];
      for (const auto& md : mode_order)
        if (md != "inproc")
          std::printf("%s / inproc (total): %.2fx\n", md.c_str(), wall[md]["total"] / base);
    }
    std::printf("%s\n", report.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sigma_bench: %s\n", e.what());
    if (!keep) std::fprintf(stderr, "(run with --keep to keep %s)\n", root.c_str());
    if (!keep) fs::remove_all(root);
    return 1;
  }
  if (!keep) fs::remove_all(root);
  else std::printf("kept %s\n", root.c_str());
  return 0;
}
