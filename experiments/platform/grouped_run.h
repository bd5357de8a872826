#pragma once
// How a model executor works through a leased batch (torch-free): jobs are
// grouped by a key (model, precision, data, ...), each group runs once, and
// every job is reported exactly once whatever happens inside a group.
//
// Errors: a PermanentError escaping a group fails its unreported jobs
// without retry (bad params or inputs: retrying elsewhere cannot help);
// any other exception fails them with retry. Jobs still unreported when
// the batch ends (ctx.should_stop()) fail with retry.
// Thread-safety: runs on the caller's thread; `report` is not thread-safe.
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "spt/job.h"

namespace spt::platform {

// A failure that retrying elsewhere cannot fix.
struct PermanentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using ReportFn = std::function<void(size_t, Outcome)>;
using GroupFn = std::function<void(const std::vector<size_t>& idx, const ReportFn& report)>;

// Groups are run in key order; `report` forwards only a job's first outcome.
void run_grouped(const std::vector<JobSpec>& jobs, ExecContext& ctx, const ReportFn& done,
                 const std::function<std::string(const JobSpec&)>& key, const GroupFn& fn);

}  // namespace spt::platform
