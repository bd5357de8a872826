// exp10_bench: the exp10 family's executors in process, fused vs unfused.
//
//   exp10_bench [--model DIR|NAME] [--dataset FILE] [--parts a] [--max-tokens N]
//               [--chunk-len N] [--device cpu|cuda] [--threads N] [--modes fused,unfused]
//               [--layers L --heads H --d-model D]   (generated model only)
//
// Without --model it writes a random GPT-2 (default 4 layers x 8 heads,
// d_model 256, real vocabulary) to a temporary folder; without --dataset it
// uses the shipped tests/data/tiny_wiki.raw. It runs the plan twice — with
// the model executor fusing each wave (nll_many, shared clean prefixes) and
// with fusion off (one nll per job) — and prints wall time, jobs per second,
// the speed-up, and the largest per-job |ΔPPL| difference between the runs.
// Plans carry exp3ef=none: 10D's σ sub-graph (exp3 + exp3ef) is not timed.
// Torch-only (no gRPC), so it builds on the GPU box.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "exp10/common.h"
#include "exp10/executors.h"
#include "exp10/local_run.h"
#include "spt/gpt2.h"
#include "spt/job.h"
#include "spt/plan.h"
#include "spt/util.h"
#include "cpu_runtime.h"
#include "testmodel.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr, "exp10_bench: %s\n(see the comment at the top of bench/exp10_bench.cc)\n", msg);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a = {{"parts", "a"},    {"max-tokens", "512"}, {"chunk-len", "128"},
                                          {"device", "cpu"}, {"threads", "0"},      {"layers", "4"},
                                          {"heads", "8"},    {"d-model", "256"}, {"modes", "fused,unfused"}};
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) usage(("bad argument " + k).c_str());
    a[k.substr(2)] = argv[++i];
  }
  try {
    std::string model = a.count("model") ? a["model"] : "";
    int layers = std::stoi(a["layers"]), heads = std::stoi(a["heads"]);
    const fs::path tmp = fs::temp_directory_path() / ("spt_exp10_bench_" + std::to_string(::getpid()));
    if (model.empty()) {
      spt::gpt2::TestModelSpec spec;
      spec.n_layer = layers;
      spec.n_head = heads;
      spec.d_model = std::stoi(a["d-model"]);
      spec.n_ctx = std::max(128, std::stoi(a["chunk-len"]));
      model = (tmp / "bench-gpt2").string();
      spt::gpt2::write_test_model(model, spec);
    } else if (const auto* k = spt::exp10::known_model(model)) {
      layers = k->n_layer;
      heads = k->n_head;
    } else {
      const json cfg = json::parse(spt::read_file(model + "/config.json"));
      layers = cfg.at("n_layer").get<int>();
      heads = cfg.at("n_head").get<int>();
    }
    const std::string dataset = a.count("dataset") ? a["dataset"] : std::string(SPT_SOURCE_DIR) + "/tests/data/tiny_wiki.raw";
    std::map<std::string, std::string> params = {{"model", model},
                                                 {"n_layer", std::to_string(layers)},
                                                 {"n_head", std::to_string(heads)},
                                                 {"dataset", dataset},
                                                 {"max_tokens", a["max-tokens"]},
                                                 {"chunk_len", a["chunk-len"]},
                                                 // exp10's executors only: no exp3 + exp3ef sub-graph for 10D
                                                 {"exp3ef", "none"}};
    spt::ExecutorRegistry reg;
    spt::exp10::register_executors(reg);
    spt::ExecContext ctx;
    ctx.device = a["device"];
    // 0 = every core, as spt-worker and spt-engine default to; the engine
    // applies it to LibTorch and the BLAS alike (model/cpu_runtime.h).
    ctx.threads = std::stoi(a["threads"]);
    if (ctx.threads <= 0) ctx.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    ctx.scratch_dir = (tmp / "scratch").string();
    ctx.cache_dir = (tmp / "cache").string();
    ctx.worker_name = "exp10_bench";

    // Warm-up: load the model and tokenize once, outside the timings.
    {
      auto warm = params;
      auto p = spt::plan::make_plan({"exp10", "a", warm});
      p.jobs.resize(1);  // a/baseline only
      spt::exp10::run_plan_in_process(p, reg, ctx);
    }
    json report = {{"model", model}, {"layers", layers}, {"heads", heads}, {"parts", a["parts"]},
                   {"device", ctx.device}, {"threads", ctx.threads}, {"blas", spt::gpt2::blas_description()},
                   {"max_tokens", a["max-tokens"]}, {"chunk_len", a["chunk-len"]}};
    std::printf("%s, %d threads; %s\n", ctx.device.c_str(), ctx.threads, spt::gpt2::blas_description().c_str());
    std::map<std::string, json> by_mode;
    for (const char* mode : {"fused", "unfused"}) {
      if (a["modes"].find(mode) == std::string::npos || (std::string(mode) == "fused" && a["modes"] == "unfused"))
        continue;
      auto pp = params;
      if (std::string(mode) == "unfused") pp["fuse"] = "0";
      const auto plan = spt::plan::make_plan({"exp10", a["parts"], pp});
      int ppl_jobs = 0;
      for (const auto& j : plan.jobs) ppl_jobs += j.kind == std::string(spt::exp10::kKindPpl);
      const auto run = spt::exp10::run_plan_in_process(plan, reg, ctx);
      report[mode] = {{"seconds", run.seconds}, {"jobs", plan.jobs.size()}, {"ppl_jobs", ppl_jobs},
                      {"ppl_jobs_per_s", ppl_jobs / run.seconds}};
      by_mode[mode] = run.results;
      std::printf("%-8s %4zu jobs (%d PPL) in %8.2f s  %7.2f PPL jobs/s\n", mode, plan.jobs.size(), ppl_jobs,
                  run.seconds, ppl_jobs / run.seconds);
    }
    if (by_mode.size() < 2) {
      std::printf("%s\n", report.dump().c_str());
      fs::remove_all(tmp);
      return 0;
    }
    double max_diff = 0;
    for (const auto& [name, r] : by_mode["fused"].items()) {
      if (!r.contains("nll_sum")) continue;
      const json& u = by_mode["unfused"].at(name);
      const double pf = std::exp(r.at("nll_sum").get<double>() / r.at("n_tokens").get<double>());
      const double pu = std::exp(u.at("nll_sum").get<double>() / u.at("n_tokens").get<double>());
      max_diff = std::max(max_diff, std::fabs(pf - pu) / pu);
    }
    report["speedup"] = report["unfused"]["seconds"].get<double>() / report["fused"]["seconds"].get<double>();
    report["max_rel_ppl_diff"] = max_diff;
    std::printf("speed-up %.2fx; largest relative PPL difference fused vs unfused %.3g\n",
                report["speedup"].get<double>(), max_diff);
    std::printf("%s\n", report.dump().c_str());
    std::error_code ec;
    fs::remove_all(tmp, ec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exp10_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
