#include "spt/plan.h"

#include <algorithm>
#include <set>

#include "plans.h"
#include "platform/plan_builder.h"

namespace spt::plan {

namespace {

struct Entry {
  const char* name;
  Plan (*make)(const Request&);
};

const Entry kExperiments[] = {
    {"selftest", plan_selftest},
    {"exp1", plan_exp1},
    {"exp2", plan_exp2},
    {"exp3", plan_exp3},
    {"exp3ef", plan_exp3ef},
    {"exp8", plan_exp8},
    {"exp9", plan_exp9},
    {"exp10", plan_exp10},
    {"exp6", plan_exp6},
    {"exp7", plan_exp7},
};

// The budget of the plan being built on this thread (see plans.h).
struct Budget {
  int64_t max = 0, used = 0;
  std::string experiment;
};
thread_local Budget t_budget;

[[noreturn]] void too_large(int64_t at_least) {
  throw PlanTooLarge(t_budget.experiment + ": this submission plans at least " + std::to_string(at_least) +
                         " jobs; the limit is " + std::to_string(t_budget.max) + " jobs per submission",
                     at_least, t_budget.max);
}

}  // namespace

void plan_room(int64_t n) {
  if (t_budget.max > 0 && n > t_budget.max - t_budget.used) too_large(t_budget.used + n);
}

void count_job() {
  if (t_budget.max > 0 && ++t_budget.used > t_budget.max) too_large(t_budget.used);
}

nlohmann::json job_params(const Plan& plan, const JobSpec& job) {
  if (plan.shared.empty()) return job.params;
  return with(plan.shared, job.params);
}

Plan make_plan(const Request& req) {
  if (req.max_jobs < 0) throw std::invalid_argument("make_plan: max_jobs must not be negative");
  // Installed for this call only (plans may nest make_plan-free helpers,
  // never make_plan itself); restored however the call ends.
  struct Guard {
    Budget saved = t_budget;
    ~Guard() { t_budget = saved; }
  } guard;
  t_budget = Budget{req.max_jobs, 0, req.experiment};
  for (const auto& e : kExperiments)
    if (req.experiment == e.name) {
      Plan p = e.make(req);
      p.experiment = req.experiment;
      // Plans that build jobs without Builder::add are held to it here.
      if (req.max_jobs > 0 && static_cast<int64_t>(p.jobs.size()) > req.max_jobs)
        too_large(static_cast<int64_t>(p.jobs.size()));
      std::set<std::string> seen;
      for (const auto& j : p.jobs) {
        for (const auto& d : j.deps)
          if (!seen.count(d)) throw std::logic_error("plan bug: " + j.name + " depends on later/unknown " + d);
        if (!seen.insert(j.name).second) throw std::logic_error("plan bug: duplicate job " + j.name);
      }
      return p;
    }
  std::string known;
  for (const auto& e : kExperiments) known += std::string(known.empty() ? "" : ", ") + e.name;
  throw PlanError("unknown experiment '" + req.experiment + "' (known: " + known + ")");
}

std::vector<std::string> experiment_names() {
  std::vector<std::string> out;
  for (const auto& e : kExperiments) out.push_back(e.name);
  return out;
}

// ---- parameter parsing shared by the plans

ParamReader::ParamReader(const Request& req) : params_(req.params) {}

std::string ParamReader::str(const std::string& key, const std::string& def) {
  used_.insert(key);
  auto it = params_.find(key);
  return it == params_.end() ? def : it->second;
}

int64_t ParamReader::integer(const std::string& key, int64_t def, int64_t lo, int64_t hi) {
  used_.insert(key);
  auto it = params_.find(key);
  if (it == params_.end()) return def;
  size_t pos = 0;
  int64_t v = 0;
  try {
    v = std::stoll(it->second, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != it->second.size())
    throw PlanError("param " + key + "=" + it->second + " is not an integer");
  if (v < lo || v > hi)
    throw PlanError("param " + key + "=" + it->second + " is out of range [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
  return v;
}

std::optional<std::vector<int64_t>> parse_int_list(const std::string& s, int64_t lo, int64_t hi) {
  std::vector<int64_t> out;
  for (size_t i = 0; i <= s.size();) {
    const size_t j = std::min(s.find(',', i), s.size());
    const std::string t = s.substr(i, j - i);
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(t, &used);
    } catch (const std::exception&) {
      return std::nullopt;
    }
    if (used != t.size() || v < lo || v > hi) return std::nullopt;
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    i = j + 1;
  }
  return out;
}

double ParamReader::real(const std::string& key, double def, double lo, double hi) {
  used_.insert(key);
  auto it = params_.find(key);
  if (it == params_.end()) return def;
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(it->second, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != it->second.size())
    throw PlanError("param " + key + "=" + it->second + " is not a number");
  if (!(v >= lo && v <= hi))
    throw PlanError("param " + key + "=" + it->second + " is out of range [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
  return v;
}

void ParamReader::finish() const {
  for (const auto& [k, v] : params_)
    if (!used_.count(k)) {
      std::string known;
      for (const auto& u : used_) known += std::string(known.empty() ? "" : ", ") + u;
      throw PlanError("unknown param '" + k + "' (known: " + known + ")");
    }
}

// ---- selftest: N map jobs of deterministic CPU work and one checking reduce

Plan plan_selftest(const Request& req) {
  if (!req.parts.empty()) throw PlanError("selftest has no parts (got '" + req.parts + "')");
  ParamReader p(req);
  nlohmann::json params = {
      {"n", p.integer("n", 100, 1, 1000000)},
      {"work", p.integer("work", 1000, 0, 1000000000)},
      {"fail", p.real("fail", 0.0, 0.0, 1.0)},
      {"stall", p.real("stall", 0.0, 0.0, 1.0)},
      {"stall_s", p.real("stall_s", 30.0, 0.0, 3600.0)},
      {"seed", p.integer("seed", 1, 0, INT64_MAX)},
      {"tag", p.str("tag", "")},
  };
  const int64_t timeout = p.integer("timeout_s", 0, 0, 86400);
  const int64_t attempts = p.integer("max_attempts", 0, 0, 100);
  // exclusive_every=K (tests of exclusive leasing): map jobs K-1, 2K-1, ...
  // (every K-th) are exclusive, and every map result records where and when
  // it ran (worker, t0, t1). Absent from params when 0, so the content keys
  // of ordinary selftests stay what they were.
  const int64_t exclusive_every = p.integer("exclusive_every", 0, 0, 1000000);
  if (exclusive_every > 0) params["exclusive_every"] = exclusive_every;
  // footprint_model=NAME (tests of memory-aware leasing): map jobs carry the
  // planned memory of a job on that known model, as if they ran on it.
  // Absent from params when empty, like exclusive_every.
  const std::string footprint_model = p.str("footprint_model", "");
  int64_t mem_bytes = 0;
  if (!footprint_model.empty()) {
    const auto* k = platform::known_model(footprint_model);
    if (!k) throw PlanError("selftest: footprint_model must be a known model name (gpt2, gpt2-medium, ...), got '" +
                            footprint_model + "'");
    params["footprint_model"] = footprint_model;
    mem_bytes = model_footprint(footprint_model, k->n_layer, k->n_head, "fp32", 0).total();
  }
  p.finish();

  Plan plan;
  plan.parts = "";
  plan.params = params;
  const int64_t n = params["n"];
  plan_room(n + 1);
  // Every job carries all of the params (the tag included): stored once, as
  // the plan's shared params; a map job's own are just its index. The merged
  // params are what each job always had, so content keys are unchanged.
  plan.shared = params;
  plan.jobs.reserve(static_cast<size_t>(n) + 1);
  JobSpec reduce{"reduce", "selftest.reduce", nlohmann::json::object(), {}, "", true, 0, static_cast<int>(attempts)};
  for (int64_t i = 0; i < n; ++i) {
    nlohmann::json jp = {{"i", i}};
    plan.jobs.push_back({"map/" + std::to_string(i), "selftest.map", std::move(jp), {}, "", false,
                         static_cast<int>(timeout), static_cast<int>(attempts)});
    plan.jobs.back().exclusive = exclusive_every > 0 && (i + 1) % exclusive_every == 0;
    plan.jobs.back().mem_bytes = mem_bytes;
    reduce.deps.push_back(plan.jobs.back().name);
  }
  plan.jobs.push_back(std::move(reduce));
  return plan;
}

}  // namespace spt::plan
