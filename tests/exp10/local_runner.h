#pragma once
// Runs a plan in process, the way the coordinator would: in waves of jobs
// whose dependencies are done, each wave's jobs batched per kind and handed
// to the registered executor (so the model executor fuses them), upstream
// results passed as inputs. For tests of executors without the runner.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "spt/job.h"
#include "spt/plan.h"

namespace spt::test {

struct LocalRun {
  std::map<std::string, nlohmann::json> results;        // by job name
  std::map<std::string, std::vector<OutputFile>> files;  // by job name
  std::map<std::string, int> reports;                    // done() calls per job
};

inline LocalRun run_plan_locally(const plan::Plan& p, ExecutorRegistry& reg, ExecContext& ctx) {
  LocalRun run;
  std::set<std::string> done;
  std::map<std::string, const plan::JobSpec*> by_name;
  for (const auto& j : p.jobs) by_name[j.name] = &j;
  while (done.size() < p.jobs.size()) {
    std::map<std::string, std::vector<const plan::JobSpec*>> wave;  // by kind
    for (const auto& j : p.jobs) {
      if (done.count(j.name)) continue;
      bool ready = true;
      for (const auto& d : j.deps) ready = ready && done.count(d);
      if (ready) wave[j.kind].push_back(&j);
    }
    if (wave.empty()) throw std::logic_error("plan has a cycle or a missing dependency");
    for (const auto& [kind, js] : wave) {
      Executor* ex = reg.find(kind);
      if (!ex) throw std::runtime_error("no executor for kind " + kind);
      std::vector<JobSpec> batch;
      for (const auto* j : js) {
        JobSpec s;
        s.id = static_cast<int64_t>(run.results.size() + batch.size() + 1);
        s.experiment = p.experiment;
        s.name = j->name;
        s.kind = j->kind;
        s.params = j->params;
        s.model = j->model;
        for (const auto& d : j->deps) s.inputs.push_back({d, by_name.at(d)->kind, run.results.at(d)});
        batch.push_back(std::move(s));
      }
      std::vector<Outcome> outs(batch.size());
      ex->run(batch, ctx, [&](size_t i, Outcome o) {
        ++run.reports[batch.at(i).name];
        outs.at(i) = std::move(o);
      });
      for (size_t i = 0; i < batch.size(); ++i) {
        if (run.reports[batch[i].name] != 1)
          throw std::runtime_error(batch[i].name + " reported " + std::to_string(run.reports[batch[i].name]) + " times");
        if (!outs[i].ok) throw std::runtime_error(batch[i].name + " failed: " + outs[i].error);
        run.results[batch[i].name] = outs[i].result;
        run.files[batch[i].name] = outs[i].files;
        done.insert(batch[i].name);
      }
    }
  }
  return run;
}

}  // namespace spt::test
