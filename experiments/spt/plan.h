#pragma once
// Experiment plans: how a submission expands into a job graph. The
// coordinator links this (torch-free) and knows experiments only through it;
// it never runs science.
//
// Invariants of a Plan: job names are unique; every dep names an earlier job
// in `jobs` (so the list is a topological order); kinds are executor kinds.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spt::plan {

struct JobSpec {
  std::string name;                // unique within the plan, e.g. "a/head/L0H8"
  std::string kind;                // executor kind, e.g. "exp10.ppl"
  nlohmann::json params;           // what the executor needs, besides inputs
  std::vector<std::string> deps;   // names of jobs whose results are inputs
  std::string model;               // affinity key ("" = none)
  bool reduce = false;             // its result is one of the experiment's results
  int timeout_s = 0;               // 0 = worker default
  int max_attempts = 0;            // 0 = server default
  // Runs alone on its worker (timing units): leased by itself, only to a
  // worker holding no other job, which gets no other job until it reports.
  bool exclusive = false;
  // Planned memory (bytes) the job needs on its device: the coordinator
  // leases it only to a worker that registered at least this much. 0 =
  // unknown/none (any worker). Not part of the content key: where a result
  // may be computed does not change what it is.
  int64_t mem_bytes = 0;
};

struct Request {
  std::string experiment;          // "selftest", "exp10", ...
  std::string parts;               // "" = the experiment's default parts
  std::map<std::string, std::string> params;  // --param k=v, already split
  // Job budget (the coordinator's --max-jobs-per-submission); 0 = none.
  // make_plan throws PlanTooLarge as soon as the plan is known to exceed
  // it, before the excess is built, so an oversized request costs little.
  int64_t max_jobs = 0;
};

struct Plan {
  std::string experiment;
  std::string parts;               // normalised (e.g. sorted, deps added)
  nlohmann::json params;           // normalised, with defaults filled in
  std::vector<JobSpec> jobs;
  // Params every job carries (a JSON object; selftest: all of its params,
  // the tag included), kept once rather than copied into each job. A job's
  // params are `shared` plus its own `params` (job_params()); the two never
  // share a key. The coordinator stores them once per experiment.
  nlohmann::json shared = nlohmann::json::object();
};

// The params an executor sees: the plan's shared params and the job's own.
nlohmann::json job_params(const Plan& plan, const JobSpec& job);

// A submission the user must fix; the message says what and how.
class PlanError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The plan would have more jobs than Request::max_jobs allows.
class PlanTooLarge : public PlanError {
 public:
  PlanTooLarge(const std::string& what, int64_t at_least, int64_t limit)
      : PlanError(what), at_least(at_least), limit(limit) {}
  int64_t at_least;  // jobs the plan was found to need (a lower bound)
  int64_t limit;     // Request::max_jobs
};

// Expands a request; throws PlanError for unknown experiments, parts or
// params, and for values of the wrong type or range; PlanTooLarge past
// Request::max_jobs.
Plan make_plan(const Request& req);

// Names of the experiments this build can plan, for help texts.
std::vector<std::string> experiment_names();

}  // namespace spt::plan
