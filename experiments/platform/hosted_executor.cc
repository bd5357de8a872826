#include "platform/hosted_executor.h"

#include <mutex>

#include "platform/model_host.h"

namespace spt::platform {

std::vector<std::string> HostedExecutor::precisions() const { return {"fp32", "tf32", "bf16"}; }

std::vector<std::string> HostedExecutor::loaded_models() const { return shared_model_host().loaded_models(); }

std::string HostedExecutor::group_key(const JobSpec& job) const { return model_data_key(job.params); }

void HostedExecutor::run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
                         const std::function<void(size_t, Outcome)>& done) {
  std::lock_guard<std::mutex> g(shared_model_host().compute_mutex());
  run_grouped(
      jobs, ctx, done, [this](const JobSpec& j) { return group_key(j); },
      [&](const std::vector<size_t>& idx, const ReportFn& report) { run_group(jobs, idx, ctx, report); });
}

}  // namespace spt::platform
