#include "platform/local_run.h"

#include <set>
#include <stdexcept>

#include "spt/util.h"

namespace spt::platform {

LocalRun run_plan_in_process(const plan::Plan& p, ExecutorRegistry& reg, ExecContext& ctx,
                             const std::function<void(const std::string&, double)>& on_done) {
  LocalRun run;
  const double t0 = monotonic_s();
  std::set<std::string> done;
  std::map<std::string, const plan::JobSpec*> by_name;
  for (const auto& j : p.jobs) by_name[j.name] = &j;
  int64_t next_id = 1;
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
      if (!ex) throw std::runtime_error("no executor registered for kind " + kind);
      std::vector<JobSpec> batch;
      for (const auto* j : js) {
        JobSpec s;
        s.id = next_id++;
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
        if (on_done) on_done(batch.at(i).name, monotonic_s() - t0);
      });
      for (size_t i = 0; i < batch.size(); ++i) {
        const int n = run.reports[batch[i].name];
        if (n != 1) throw std::runtime_error(batch[i].name + " reported " + std::to_string(n) + " times");
        if (!outs[i].ok) throw std::runtime_error(batch[i].name + " failed: " + outs[i].error);
        run.results[batch[i].name] = std::move(outs[i].result);
        run.files[batch[i].name] = std::move(outs[i].files);
        done.insert(batch[i].name);
      }
    }
  }
  run.seconds = monotonic_s() - t0;
  return run;
}

}  // namespace spt::platform
