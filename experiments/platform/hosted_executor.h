#pragma once
// An executor whose jobs run on the shared model host (model_host.h): it
// offers every precision the engine has, reports the host's loaded models for
// lease affinity, and works through a leased batch group by group
// (run_grouped, grouped_run.h) holding the host's compute mutex for the whole
// batch — one batch at a time across families: LibTorch already uses every
// core. A family supplies its kinds, how jobs group, and what a group does.
//
// Errors and reporting as run_grouped. Thread-safety: as any Executor (one
// run() at a time per worker slot; the compute mutex serialises slots).
#include <string>
#include <vector>

#include "platform/grouped_run.h"
#include "spt/job.h"

namespace spt::platform {

class HostedExecutor : public Executor {
 public:
  std::vector<std::string> precisions() const override;
  std::vector<std::string> loaded_models() const override;
  void run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
           const std::function<void(size_t, Outcome)>& done) final;

 protected:
  // Jobs with equal keys run as one group; default model_data_key (the model,
  // its precision and the data its chunks come from).
  virtual std::string group_key(const JobSpec& job) const;
  // Runs jobs[idx] (one group), calling report(i, outcome) for each.
  virtual void run_group(const std::vector<JobSpec>& jobs, const std::vector<size_t>& idx, ExecContext& ctx,
                         const ReportFn& report) = 0;
};

}  // namespace spt::platform
