#pragma once
// The contract between the worker daemon and the science: an Executor runs
// leased jobs of the kinds it declares and reports one Outcome per job.
//
// Torch-free on purpose: the worker daemon, the selftest executor and the
// tests include this without pulling in LibTorch.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spt {

// One upstream result handed to a job that depends on it.
struct JobInput {
  std::string name;  // upstream job's name within the experiment
  std::string kind;
  nlohmann::json result;
};

// One leased job, as an executor sees it.
struct JobSpec {
  int64_t id = 0;
  std::string experiment;  // e.g. "exp10"
  std::string name;        // e.g. "a/head/L0H8"
  std::string kind;        // e.g. "exp10.ppl"
  nlohmann::json params;
  std::vector<JobInput> inputs;
  std::string model;       // affinity key
  int attempt = 1;

  // The input named `name`; throws std::runtime_error if absent.
  const JobInput& input(const std::string& name) const;
  // Inputs whose name starts with `prefix`, in the order given.
  std::vector<const JobInput*> inputs_with_prefix(const std::string& prefix) const;
};

// A file a job produced; the worker uploads it to the blob store and the
// server attaches it to the experiment's results under `name`.
struct OutputFile {
  std::string name;        // e.g. "exp10b_heatmap_gpt2.png"
  std::string path;        // local path on the worker
  std::string media_type;  // e.g. "image/png"
};

struct Outcome {
  bool ok = false;
  nlohmann::json result;   // small: scalars and short vectors
  std::string error;       // when !ok
  bool retryable = true;   // when !ok: false means "fail now, don't retry"
  std::vector<OutputFile> files;

  static Outcome success(nlohmann::json r, std::vector<OutputFile> f = {}) {
    Outcome o;
    o.ok = true;
    o.result = std::move(r);
    o.files = std::move(f);
    return o;
  }
  static Outcome failure(std::string e, bool retryable = true) {
    Outcome o;
    o.error = std::move(e);
    o.retryable = retryable;
    return o;
  }
};

// What the worker provides to executors.
struct ExecContext {
  std::string device = "cpu";      // cpu | cuda | cuda:N | mps
  std::string precision_default = "fp32";
  int threads = 1;
  std::string scratch_dir;         // per-worker temporary space
  std::string cache_dir;           // models/datasets fetched from the server
  std::string worker_name;
  // Fetches a blob from the coordinator's artifact store by sha256 or by
  // registered name into cache_dir; returns the local path. Throws on error.
  std::function<std::string(const std::string& sha_or_name)> fetch_blob;
  // True once the job should stop (lease lost, drain deadline, timeout).
  std::function<bool()> should_stop = [] { return false; };
};

class Executor {
 public:
  virtual ~Executor() = default;
  // Job kinds this executor runs, e.g. {"exp10.ppl", "exp10.reduce_b"}.
  virtual std::vector<std::string> kinds() const = 0;
  // Runs a batch of jobs, all of this executor's kinds. May fuse compatible
  // jobs; must call done(i, outcome) exactly once for each jobs[i], as soon
  // as that job's outcome is known. Exceptions escaping run() fail every job
  // not yet reported.
  virtual void run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
                   const std::function<void(size_t, Outcome)>& done) = 0;
  // Models currently resident (for lease affinity).
  virtual std::vector<std::string> loaded_models() const { return {}; }
  // Capability hints for registration.
  virtual std::vector<std::string> precisions() const { return {"fp32"}; }
};

// Device services the science provides to the daemon; empty in builds
// without LibTorch (the daemon then runs no canary).
struct DeviceHooks {
  struct CanaryRun {
    double value = 0;    // the unit's value (spt/canary.h)
    std::string device;  // description of the device it ran on
  };
  // Runs the numerics canary unit (spt/canary.h's kUnit) on `device` at
  // `precision`, writing its model under work_dir. Throws when it cannot run.
  std::function<CanaryRun(const std::string& device, const std::string& precision, const std::string& work_dir,
                          int threads)>
      canary;
  // Throws std::runtime_error saying why `device` cannot be used by this
  // build on this machine (no CUDA in the build or no such GPU, MPS off
  // Apple silicon); returns its description otherwise.
  std::function<std::string(const std::string& device)> check_device;
};

// Registry of executors linked into this binary.
class ExecutorRegistry {
 public:
  DeviceHooks hooks;

  void add(std::unique_ptr<Executor> e);
  Executor* find(const std::string& kind) const;
  std::vector<std::string> kinds() const;
  std::vector<std::string> loaded_models() const;
  std::vector<std::string> precisions() const;
  const std::vector<std::unique_ptr<Executor>>& all() const { return executors_; }

 private:
  std::vector<std::unique_ptr<Executor>> executors_;
};

// Adds every executor this build has (selftest always; the GPT-2 science
// when built with LibTorch). Defined in experiments/executors.cc.
void register_all_executors(ExecutorRegistry& reg);

}  // namespace spt
