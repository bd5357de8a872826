// exp7_bench: the exp7 family in process on a GPT-2-small-shaped model,
// each unit timed. Prints figures; asserts nothing.
//
//   exp7_bench [--model DIR] [--quick] [--dataset PATH] [--chunks N] [--threads N]
//
// Model: without --model a random GPT-2-small-shaped checkpoint (12 × 12,
// d_model 768, n_ctx 1024, vocab 50,257; testmodel.h, seed 1) written once
// to /tmp/spt-exp7-bench-gpt2small; --quick: a tiny one (2 × 4, d_model 64,
// chunks of 64) to check the bench itself. Data: --dataset, else a
// synthetic test split (tests/data/tiny_wiki.raw repeated; tokens do not
// matter for timing). --chunks N (default 13 = one default 7D sub-unit, 1/15
// of T200K) sets max_tokens = (N + 1)·len. The plan: all parts, max_samples
// 1000, ks=64 (baseline, individual/64, shared/64: three 7D units of N chunks).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "exp7/executors.h"
#include "model/testmodel.h"
#include "platform/local_run.h"
#include "spt/gpt2.h"
#include "spt/job.h"
#include "spt/plan.h"
#include "spt/util.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::string model, dataset;
  bool quick = false;
  int chunks = 13, threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--model")
      model = next();
    else if (a == "--dataset")
      dataset = next();
    else if (a == "--quick")
      quick = true;
    else if (a == "--chunks")
      chunks = std::stoi(next());
    else if (a == "--threads")
      threads = std::stoi(next());
    else {
      std::fprintf(stderr, "usage: exp7_bench [--model DIR] [--quick] [--dataset PATH] [--chunks N] [--threads N]\n");
      return 2;
    }
  }
  const int len = quick ? 64 : 1024;
  spt::gpt2::TestModelSpec spec;
  if (quick) {
    spec.n_layer = 2, spec.n_head = 4, spec.d_model = 64, spec.n_ctx = 128;
  } else {
    spec.n_layer = 12, spec.n_head = 12, spec.d_model = 768, spec.n_ctx = 1024;
  }
  spec.seed = 1;
  if (model.empty()) {
    model = quick ? "/tmp/spt-exp7-bench-quick" : "/tmp/spt-exp7-bench-gpt2small";
    if (!fs::exists(fs::path(model) / "model.safetensors")) spt::gpt2::write_test_model(model, spec);
  }
  if (dataset.empty()) {
    dataset = "/tmp/spt-exp7-bench-data/wiki.test.raw";
    const std::string piece = spt::read_file(std::string(SPT_SOURCE_DIR) + "/tests/data/tiny_wiki.raw");
    fs::create_directories(fs::path(dataset).parent_path());
    std::string text;
    while (text.size() < static_cast<size_t>((chunks + 2) * len * 6)) text += piece;  // ≥ ~4 bytes per token
    spt::write_file_atomic(dataset, text);
  }
  spt::gpt2::set_threads(threads);
  const int max_samples = std::min(1000, 4 * len);
  const std::map<std::string, std::string> params = {{"model", model},
                                                     {"n_layer", std::to_string(spec.n_layer)},
                                                     {"n_head", std::to_string(spec.n_head)},
                                                     {"dataset", dataset},
                                                     {"max_tokens", std::to_string((chunks + 1) * len)},
                                                     {"chunk_len", std::to_string(len)},
                                                     {"max_samples", std::to_string(max_samples)},
                                                     {"ks", "64"},
                                                     {"recon_ks", "8,64"},
                                                     {"chunks_per_unit", std::to_string(chunks)}};
  const auto plan = spt::plan::make_plan({"exp7", "abcde", params});
  spt::ExecutorRegistry reg;
  spt::exp7::register_executors(reg);
  spt::ExecContext ctx;
  ctx.threads = threads;
  ctx.scratch_dir = "/tmp/spt-exp7-bench-scratch";
  double last = 0;
  std::map<std::string, double> secs;
  const auto run = spt::platform::run_plan_in_process(plan, reg, ctx, [&](const std::string& name, double t) {
    secs[name] = t - last;  // jobs of one wave report one after another
    last = t;
  });
  std::printf("exp7_bench: model %s (%d × %d, d_model %d), %d threads, %d samples, 7D units of %d chunks × %d tokens\n",
              model.c_str(), spec.n_layer, spec.n_head, spec.d_model, threads, max_samples, chunks, len);
  for (const auto& [name, s] : secs) {
    const auto& r = run.results.at(name);
    std::string extra;
    if (r.contains("n_tokens") && r.contains("nll_sum"))
      extra =
          "  " + std::to_string(static_cast<long long>(r.at("n_tokens").get<int64_t>() / s)) + " predicted tokens/s";
    std::printf("  %-36s %8.2f s%s\n", name.c_str(), s, extra.c_str());
  }
  std::printf("  total %.1f s; 7D: baseline %.3f, individual/64 %.3f, shared/64 %.3f (random weights)\n", run.seconds,
              run.results.at("report").at("exp7d").at("baseline").get<double>(),
              run.results.at("report").at("exp7d").at("individual").at("64").at("perplexity").get<double>(),
              run.results.at("report").at("exp7d").at("shared").at("64").at("perplexity").get<double>());
  return 0;
}
