#include "platform/grouped_run.h"

#include <map>

namespace spt::platform {

void run_grouped(const std::vector<JobSpec>& jobs, ExecContext& ctx, const ReportFn& done,
                 const std::function<std::string(const JobSpec&)>& key, const GroupFn& fn) {
  std::vector<bool> reported(jobs.size(), false);
  const ReportFn report = [&](size_t i, Outcome o) {
    if (reported.at(i)) return;
    reported[i] = true;
    done(i, std::move(o));
  };
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < jobs.size(); ++i) groups[key(jobs[i])].push_back(i);
  for (const auto& [k, idx] : groups) {
    if (ctx.should_stop()) break;
    try {
      fn(idx, report);
    } catch (const PermanentError& e) {
      for (size_t i : idx) report(i, Outcome::failure(e.what(), false));
    } catch (const std::exception& e) {
      for (size_t i : idx) report(i, Outcome::failure(e.what(), true));
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i)
    if (!reported[i]) report(i, Outcome::failure("stopped before this job ran", true));
}

}  // namespace spt::platform
