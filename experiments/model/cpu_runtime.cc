// CPU compute settings (cpu_runtime.h): thread counts for LibTorch and
// OpenBLAS, malloc thresholds. OpenBLAS is reached through dlsym so the
// engine links and runs with any BLAS behind libblas.so.3.
#include "cpu_runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "spt/gpt2.h"

namespace spt::gpt2 {
namespace {

template <class F>
F openblas_fn(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

// openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP; -1 when no
// OpenBLAS is loaded.
int openblas_parallel() {
  static const int p = [] {
    auto f = openblas_fn<int (*)()>("openblas_get_parallel");
    return f ? f() : -1;
  }();
  return p;
}

void set_openblas_threads(int n) {
  if (auto f = openblas_fn<void (*)(int)>("openblas_set_num_threads")) f(n);
}

bool env_set(const char* k) {
  const char* v = std::getenv(k);
  return v && *v;
}

// at::set_num_threads also resizes LibTorch's pthreadpool; serialise the
// rare calls that change a thread's count.
std::mutex& set_mu() {
  static std::mutex mu;
  return mu;
}

}  // namespace

// The [rows, vocab] logits slices are large enough for glibc to mmap and
// unmap them on every call, page-faulting them in again each time; higher
// mmap/trim thresholds keep that memory in the heap for reuse (system time
// 11 s → 0.2 s on a 12 × 12 d 192 forward bench, together with the BLAS
// pinning). glibc still maps blocks over 32 MiB, so the CPU binaries link
// tcmalloc where it exists; then these calls do nothing.
void tune_cpu_process() {
  static const bool done = [] {
    if (!env_set("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 32 << 20);
    if (!env_set("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 1 << 30);
    if (!env_set("MALLOC_TOP_PAD_")) mallopt(M_TOP_PAD, 256 << 20);
    if (openblas_parallel() == 1 && !env_set("OPENBLAS_NUM_THREADS") && !env_set("GOTO_NUM_THREADS")) {
      set_openblas_threads(1);  // also when no thread count is ever chosen (LoadOptions::threads 0)
      std::fprintf(stderr,
                   "spt: the pthread build of OpenBLAS is loaded; its GEMMs run on one thread "
                   "(scripts/setup.sh selects libopenblas0-openmp)\n");
    }
    return true;
  }();
  (void)done;
}

void use_cpu_threads(int n) {
  if (n < 1) throw std::invalid_argument("thread count must be >= 1");
  tune_cpu_process();
  thread_local int applied = 0;
  if (applied == n) return;
  std::lock_guard<std::mutex> g(set_mu());
  at::set_num_threads(n);  // LibTorch's count and this thread's OpenMP count
  const int p = openblas_parallel();
  if (p == 2) set_openblas_threads(n);  // same pool; keeps OpenBLAS's cached count in step
  else if (p == 1 && !env_set("OPENBLAS_NUM_THREADS") && !env_set("GOTO_NUM_THREADS")) set_openblas_threads(1);
  applied = n;
}

void use_model_threads(const LoadOptions& o) {
  if (o.threads > 0) use_cpu_threads(o.threads);
}

void set_pthread_blas_threads(int n) {
  if (n < 1) throw std::invalid_argument("thread count must be >= 1");
  std::lock_guard<std::mutex> g(set_mu());
  if (openblas_parallel() == 1) set_openblas_threads(n);
}

BlasRuntime blas_runtime() {
  BlasRuntime r;
  const int p = openblas_parallel();
  if (p < 0) {
    r.vendor = "unknown";
    r.parallel = "unknown";
    return r;
  }
  r.vendor = "OpenBLAS";
  r.parallel = p == 2 ? "openmp" : p == 1 ? "pthread" : "sequential";
  if (auto f = openblas_fn<char* (*)()>("openblas_get_config"); f && f()) r.config = f();
  // openblas_get_config() starts "OpenBLAS 0.3.21 ...".
  if (r.config.rfind("OpenBLAS ", 0) == 0) r.version = r.config.substr(9, r.config.find(' ', 9) - 9);
  if (p == 2) r.threads = at::get_num_threads();  // OpenBLAS follows this thread's OpenMP count
  else if (auto f = openblas_fn<int (*)()>("openblas_get_num_threads")) r.threads = f();
  return r;
}

std::string blas_description() {
  const BlasRuntime r = blas_runtime();
  if (r.vendor == "unknown") return "BLAS unknown (not OpenBLAS)";
  std::string s = r.vendor + (r.version.empty() ? "" : " " + r.version) + " " + r.parallel;
  if (r.threads > 0) s += ", " + std::to_string(r.threads) + (r.threads == 1 ? " thread" : " threads");
  return s;
}

}  // namespace spt::gpt2
