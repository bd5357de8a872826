// The CPU runtime settings (model/cpu_runtime.h): which BLAS build is
// detected, that thread counts apply to the thread that computes (OpenMP's
// count is per thread), that every forward binds its model's count, and that
// the count does not change the numbers. ctest runs this file twice: with
// whatever BLAS the system selects, and with the OpenMP OpenBLAS first on
// LD_LIBRARY_PATH (tests/model/CMakeLists.txt), so both builds are covered.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "model/cpu_runtime.h"
#include "model/testmodel.h"
#include "spt/gpt2.h"

namespace spt::gpt2 {
namespace {

namespace fs = std::filesystem;

// The OpenBLAS folder the loader actually mapped, read independently of
// OpenBLAS's own report: "openmp", "pthread" or "" (none of Debian's).
std::string mapped_openblas_build() {
  std::ifstream f("/proc/self/maps");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string maps = ss.str();
  if (maps.find("/openblas-openmp/") != std::string::npos) return "openmp";
  if (maps.find("/openblas-pthread/") != std::string::npos) return "pthread";
  return "";
}

bool blas_env_override() { return std::getenv("OPENBLAS_NUM_THREADS") || std::getenv("GOTO_NUM_THREADS"); }

TEST(CpuRuntime, DetectsTheLoadedBlasBuild) {
  const std::string mapped = mapped_openblas_build();
  if (const char* want = std::getenv("SPT_TEST_EXPECT_BLAS")) EXPECT_EQ(mapped, want);  // set by ctest
  if (mapped.empty()) GTEST_SKIP() << "no Debian OpenBLAS mapped";
  const BlasRuntime r = blas_runtime();
  EXPECT_EQ(r.vendor, "OpenBLAS");
  EXPECT_EQ(r.parallel, mapped);
  EXPECT_FALSE(r.version.empty()) << r.config;
  EXPECT_NE(blas_description().find(mapped), std::string::npos) << blas_description();
  EXPECT_NE(device_description("cpu").find(blas_description().substr(0, 8)), std::string::npos);
}

// Each count is set on a fresh std::thread, which starts with the process
// default (OMP_NUM_THREADS=1 under ctest), not with another thread's count.
TEST(CpuRuntime, ThreadsApplyToTheCallingThreadForLibTorchAndBlas) {
  const std::string build = blas_runtime().parallel;
  for (int n : {2, 1}) {
    int torch_n = -1, blas_n = -1;
    std::thread t([&] {
      use_cpu_threads(n);
      torch_n = at::get_num_threads();
      blas_n = blas_runtime().threads;
    });
    t.join();
    EXPECT_EQ(torch_n, n);
    if (build == "openmp") EXPECT_EQ(blas_n, n);  // one pool, same count
    if (build == "pthread" && !blas_env_override()) EXPECT_EQ(blas_n, 1);  // pinned: its pool would fight
  }
  EXPECT_THROW(use_cpu_threads(0), std::invalid_argument);
  EXPECT_THROW(set_pthread_blas_threads(0), std::invalid_argument);
}

struct TempDir {
  fs::path p = fs::temp_directory_path() / ("spt_cpu_runtime_test_" + std::to_string(::getpid()));
  ~TempDir() { fs::remove_all(p); }
};

Chunks chunks(int n, int len, int vocab) {
  Chunks c(static_cast<size_t>(n));
  uint64_t x = 7;
  for (auto& ch : c)
    for (int i = 0; i < len; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      ch.push_back(static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(vocab)));
    }
  return c;
}

// A model loaded on one thread and run on another (as the worker's slots
// do) computes with its own thread count there, and 1 or 2 threads give the
// same NLL to fp32 reduction-order tolerance.
TEST(CpuRuntime, EveryForwardUsesItsModelsThreadsOnAnyThread) {
  TempDir tmp;
  TestModelSpec s;
  s.n_layer = 2, s.n_head = 4, s.d_model = 64, s.d_mlp = 256, s.n_ctx = 64, s.vocab = 300, s.seed = 5;
  write_test_model(tmp.p.string(), s);
  const Chunks c = chunks(3, 64, s.vocab);
  const std::vector<Variant> vs = {{}, {{HeadIntervention{1, 2, HeadOp::zero}}}};
  // Both loaded first: the last load leaves LibTorch's process-wide count
  // at 2, which a new thread would pick up without the per-forward binding.
  std::unique_ptr<Model> models[2];
  for (int n : {1, 2}) {
    LoadOptions o;
    o.threads = n;
    models[n - 1] = load_model(tmp.p.string(), o);
  }
  std::vector<NllSum> by_threads[2];
  for (int n : {1, 2}) {
    int seen = -1;
    std::thread t([&] {
      by_threads[n - 1] = models[n - 1]->nll_many(c, vs);
      seen = at::get_num_threads();
    });
    t.join();
    EXPECT_EQ(seen, n);
  }
  for (size_t i = 0; i < vs.size(); ++i) {
    EXPECT_EQ(by_threads[0][i].count, by_threads[1][i].count);
    EXPECT_NEAR(by_threads[0][i].nll, by_threads[1][i].nll, 1e-6 * std::abs(by_threads[0][i].nll));
  }
  EXPECT_GT(std::abs(by_threads[0][1].nll - by_threads[0][0].nll), 1e-3);  // the ablation matters
}

}  // namespace
}  // namespace spt::gpt2
