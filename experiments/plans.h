#pragma once
// Internal to experiments/: one plan function per experiment, and the
// parameter reader they share. Only plan.cc's table calls these.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "spt/plan.h"

namespace spt::plan {

// Reads --param values with types and ranges; finish() rejects any key that
// was never asked for, so a typo is an error rather than a silent default.
class ParamReader {
 public:
  explicit ParamReader(const Request& req);
  std::string str(const std::string& key, const std::string& def);
  int64_t integer(const std::string& key, int64_t def, int64_t lo, int64_t hi);
  double real(const std::string& key, double def, double lo, double hi);
  void finish() const;

 private:
  const std::map<std::string, std::string>& params_;
  std::set<std::string> used_;
};

// The integers of a comma list, each in [lo, hi], repeats dropped, order
// kept; nullopt when any field (an empty one included) is not such an
// integer. Callers word the PlanError (they know the param's meaning).
std::optional<std::vector<int64_t>> parse_int_list(const std::string& s, int64_t lo, int64_t hi);

// The job budget (Request::max_jobs) of the plan make_plan is building on
// this thread; nothing happens without one. plan_room(n) is the cheap check
// before building n more jobs; count_job() counts one built job (Builder::add
// calls it). Both throw PlanTooLarge once the plan's jobs would exceed the
// budget.
void plan_room(int64_t n);
void count_job();

Plan plan_selftest(const Request& req);
Plan plan_exp10(const Request& req);  // experiments/exp10/plan.cc
Plan plan_exp1(const Request& req);   // experiments/sigma/plan.cc
Plan plan_exp2(const Request& req);
Plan plan_exp3(const Request& req);
Plan plan_exp3ef(const Request& req);
Plan plan_exp8(const Request& req);   // experiments/pi/plan.cc
Plan plan_exp9(const Request& req);
Plan plan_exp6(const Request& req);   // experiments/exp6/plan.cc
Plan plan_exp7(const Request& req);   // experiments/exp7/plan.cc

}  // namespace spt::plan
