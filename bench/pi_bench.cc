// pi_bench: the π family's model units on CPU, timed in process. Prints
// figures; asserts nothing.
//
//   pi_bench [--shapes quick,gpt2,gpt2-medium] [--samples N] [--reps N]
//            [--threads N] [--dataset PATH]
//
// Per shape it writes a random checkpoint of that shape (testmodel.h; real
// vocab 50,257 so the real tokenizer works) to /tmp/spt-pi-bench-<shape>
// once and reuses it. Shapes: quick (4 layers x 4 heads, d_model 64,
// n_ctx 128), gpt2 (12 x 12, 768, 1024), gpt2-medium (24 x 16, 1024, 1024).
// Without --dataset the text is tests/data/tiny_wiki.raw repeated until
// chunker T yields a chunk (written to /tmp/spt-pi-bench-data/wiki.test.raw):
// the timing depends on token counts, not on which words they are.
//
// Units timed (each --reps times after a warm-up that loads the model and
// tokenises the data, so neither is in the figures):
//   wikitext  pi.rotation over the first --samples positions of chunk 0 of
//             the test split (default 500, A18): exp8 C (1), and exactly
//             exp9 B's per-model unit (same job)
//   prompts   pi.rotation over the 45 EXPERIMENT_PROMPTS without BOS
//             (exp8 C (2))
//   reduce    exp8's per-model reduce for part C (statistics, figures)
// Reported: median wall seconds per unit and the process's peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "pi/common.h"
#include "pi/executors.h"
#include "platform/local_run.h"
#include "spt/job.h"
#include "spt/plan.h"
#include "spt/util.h"
#include "testmodel.h"
#include "wikitext.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr, "pi_bench: %s\n(see the comment at the top of bench/pi_bench.cc)\n", msg.c_str());
  std::exit(2);
}

struct Shape {
  std::string name;
  int n_layer, n_head, d_model, n_ctx;
};
const std::map<std::string, Shape> kShapes = {{"quick", {"quick", 4, 4, 64, 128}},
                                              {"gpt2", {"gpt2", 12, 12, 768, 1024}},
                                              {"gpt2-medium", {"gpt2-medium", 24, 16, 1024, 1024}}};

std::string model_dir(const Shape& s) {
  const std::string dir = "/tmp/spt-pi-bench-" + s.name;
  if (!fs::exists(fs::path(dir) / "model.safetensors")) {
    spt::gpt2::TestModelSpec spec;
    spec.n_layer = s.n_layer;
    spec.n_head = s.n_head;
    spec.d_model = s.d_model;
    spec.n_ctx = s.n_ctx;
    spec.seed = 1;
    std::printf("writing a random %s-shaped checkpoint to %s\n", s.name.c_str(), dir.c_str());
    spt::gpt2::write_test_model(dir, spec);
  }
  return dir;
}

// tiny_wiki.raw repeated until the test split holds more than 2·chunk tokens.
std::string dataset_for(int64_t chunk, const std::string& model) {
  const fs::path dir = "/tmp/spt-pi-bench-data";
  fs::create_directories(dir);
  const fs::path out = dir / ("wiki.test." + std::to_string(chunk) + ".raw");
  if (fs::exists(out)) return out.string();
  const std::string text = spt::read_file(std::string(SPT_SOURCE_DIR) + "/tests/data/tiny_wiki.raw");
  const spt::Tokenizer tok = spt::Tokenizer::default_gpt2(model);
  const auto n = spt::data::load_wikitext(std::string(SPT_SOURCE_DIR) + "/tests/data/tiny_wiki.raw", "test", tok, false)
                     .tokens.size();
  const size_t reps = static_cast<size_t>(2 * chunk / std::max<size_t>(n, 1)) + 2;
  std::ofstream f(out);
  for (size_t i = 0; i < reps; ++i) f << text;
  return out.string();
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> shapes = {"quick"};
  int64_t samples = 500;
  int reps = 3, threads = 2;
  std::string dataset;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--shapes") {
      shapes.clear();
      std::stringstream in(next());
      for (std::string t; std::getline(in, t, ',');) shapes.push_back(t);
    } else if (a == "--samples") {
      samples = std::stoll(next());
    } else if (a == "--reps") {
      reps = std::stoi(next());
    } else if (a == "--threads") {
      threads = std::stoi(next());
    } else if (a == "--dataset") {
      dataset = next();
    } else {
      usage("unknown argument " + a);
    }
  }
  std::printf("%-12s %8s %10s %12s %12s %12s %10s\n", "shape", "samples", "threads", "wikitext_s", "prompts_s",
              "reduce_s", "peak_MB");
  for (const auto& name : shapes) {
    const auto it = kShapes.find(name);
    if (it == kShapes.end()) usage("unknown shape " + name + " (quick, gpt2, gpt2-medium)");
    const Shape& s = it->second;
    const std::string dir = model_dir(s);
    const int64_t chunk = std::min<int64_t>(s.n_ctx, 1024);
    const int64_t n = std::min(samples, chunk);
    const std::map<std::string, std::string> params = {
        {"model", dir},         {"n_layer", std::to_string(s.n_layer)}, {"n_head", std::to_string(s.n_head)},
        {"chunk_len", std::to_string(chunk)}, {"max_samples", std::to_string(n)},
        {"dataset", dataset.empty() ? dataset_for(chunk, dir) : dataset}};
    const auto plan = spt::plan::make_plan({"exp8", "c", params});
    spt::ExecutorRegistry reg;
    spt::pi::register_executors(reg);
    spt::ExecContext ctx;
    ctx.device = "cpu";
    ctx.threads = threads;
    ctx.scratch_dir = "/tmp/spt-pi-bench-scratch";
    std::map<std::string, std::vector<double>> t;
    for (int r = 0; r <= reps; ++r) {  // r = 0: warm-up (model load, tokenisation)
      std::map<std::string, double> at;
      double last = 0;
      spt::platform::run_plan_in_process(plan, reg, ctx, [&](const std::string& job, double sec) {
        at[job] = sec - last;
        last = sec;
      });
      if (r == 0) continue;
      // The two rotation units run one after the other in one batch (so the
      // gaps between completions are their times), then the reduces.
      for (const auto& [job, sec] : at) {
        if (job.find("/rot/wikitext") != std::string::npos) t["wikitext"].push_back(sec);
        else if (job.find("/rot/prompts") != std::string::npos) t["prompts"].push_back(sec);
        else if (job.rfind("exp8/", 0) == 0 && job != "exp8/report") t["reduce"].push_back(sec);
      }
    }
    std::printf("%-12s %8lld %10d %12.3f %12.3f %12.3f %10.0f\n", s.name.c_str(), static_cast<long long>(n), threads,
                median(t["wikitext"]), median(t["prompts"]), median(t["reduce"]), peak_rss_mb());
  }
  return 0;
}
