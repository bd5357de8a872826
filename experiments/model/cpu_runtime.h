#pragma once
// The process's CPU compute settings, decided in one place for every binary
// that runs the engine (spt-worker, spt-engine, exp10_bench, sigma_bench,
// tests): how many threads LibTorch's kernels and the BLAS GEMMs use, and
// glibc malloc's thresholds. The engine calls these itself (load_model and
// every forward), so callers only choose the thread count (LoadOptions).
//
// BLAS: LibTorch calls whatever libblas.so.3 / libopenblas.so.0 the loader
// picked (Debian alternatives; scripts/setup.sh selects the OpenMP build).
//  * OpenBLAS, OpenMP build: GEMMs run on LibTorch's own OpenMP pool with the
//    same thread count (and serially when called inside a parallel region),
//    so every GEMM uses every thread and there is only one pool. libgomp's
//    default wait policy spins a bounded time after each region and then
//    sleeps, so an idle worker does not compete with its gRPC threads.
//  * OpenBLAS, pthread build: its own pool spins for a long time after each
//    call and fights LibTorch's OpenMP pool (measured: 745 → 1,894 tokens/s
//    on a 12 × 12, d 192 model when pinned to one thread), so it is pinned to
//    one thread unless OPENBLAS_NUM_THREADS / GOTO_NUM_THREADS says otherwise.
//  * Any other BLAS: left alone.
//
// Thread-safety: all functions may be called from any thread. The OpenMP
// thread count is a per-thread setting (a std::thread starts with the
// process default, not with what another thread set), which is why
// use_cpu_threads is called on the thread that computes.
#include <string>

namespace spt::gpt2 {

struct LoadOptions;

struct BlasRuntime {
  std::string vendor;    // "OpenBLAS", or "unknown" when no OpenBLAS symbols are loaded
  std::string version;   // "0.3.21", "" when unknown
  std::string parallel;  // "openmp" | "pthread" | "sequential" | "unknown"
  std::string config;    // openblas_get_config(), "" when unknown
  int threads = 0;       // threads a GEMM issued from the calling thread may use; 0 = unknown
};

// Once per process (idempotent): glibc malloc thresholds (MALLOC_* env
// variables win; no effect where tcmalloc is linked) and a one-line notice
// on stderr when the pthread OpenBLAS is loaded.
void tune_cpu_process();

// LibTorch intra-op threads and BLAS threads for the calling thread (n >= 1,
// else std::invalid_argument). Cheap when the thread already uses n.
void use_cpu_threads(int n);

// use_cpu_threads(o.threads) when o.threads > 0; what every forward calls.
void use_model_threads(const LoadOptions& o);

// Benchmarks only: the pthread build's GEMM threads, process-wide,
// regardless of the pinning above (the next use_cpu_threads on a thread
// that changes its count re-pins). No effect on other builds: the OpenMP
// build already follows use_cpu_threads.
void set_pthread_blas_threads(int n);

// What is loaded and how it is set for the calling thread.
BlasRuntime blas_runtime();
// "OpenBLAS 0.3.21 openmp, 2 threads", for provenance and bench output.
std::string blas_description();

}  // namespace spt::gpt2
