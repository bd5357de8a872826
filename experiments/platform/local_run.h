#pragma once
// Runs a plan in process, the way the coordinator would schedule it: in
// waves of jobs whose dependencies are done, each wave batched per kind and
// handed to the registered executor (so the model executor fuses it), with
// upstream results passed as inputs. No retries: the first failure throws.
// Artifacts pass as on a worker: the executors' fetch_blob finds any file a
// job of this run produced by its sha256, else asks ctx.fetch_blob.
// For tests, benchmarks and single-machine dry runs without the runner.
// Torch-free; the executors in `reg` bring whatever they need.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spt/job.h"
#include "spt/plan.h"

namespace spt::platform {

struct LocalRun {
  std::map<std::string, nlohmann::json> results;        // by job name
  std::map<std::string, std::vector<OutputFile>> files;  // by job name
  std::map<std::string, int> reports;                    // done() calls per job
  double seconds = 0;
};

// `on_done(name, seconds_since_start)` is called as each job reports.
// Throws std::runtime_error naming the job on a failure, a missing
// executor, or a job reported other than exactly once.
LocalRun run_plan_in_process(const plan::Plan& p, ExecutorRegistry& reg, ExecContext& ctx,
                             const std::function<void(const std::string&, double)>& on_done = {});

}  // namespace spt::platform
