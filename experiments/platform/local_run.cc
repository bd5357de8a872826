#include "platform/local_run.h"

#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include "spt/hash.h"
#include "spt/util.h"

namespace spt::platform {

namespace {

// The files jobs of this run produced, found by sha256 the way a worker's
// fetch_blob finds uploaded artifacts (hashed lazily, on the first miss).
struct LocalBlobs {
  std::vector<std::string> unhashed;
  std::map<std::string, std::string> by_sha;
  std::string find(const std::string& sha) {
    for (const auto& path : unhashed) by_sha.emplace(sha256_file(path), path);
    unhashed.clear();
    auto it = by_sha.find(sha);
    return it == by_sha.end() ? "" : it->second;
  }
};

}  // namespace

LocalRun run_plan_in_process(const plan::Plan& p, ExecutorRegistry& reg, ExecContext& outer,
                             const std::function<void(const std::string&, double)>& on_done) {
  auto blobs = std::make_shared<LocalBlobs>();
  ExecContext ctx = outer;
  ctx.fetch_blob = [blobs, next = outer.fetch_blob](const std::string& sha_or_name) {
    if (std::string path = blobs->find(sha_or_name); !path.empty()) return path;
    if (next) return next(sha_or_name);
    throw std::runtime_error("fetch_blob " + sha_or_name + ": no job of this run produced it, and no store to ask");
  };
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
        s.params = plan::job_params(p, *j);  // shared + own
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
        for (const auto& f : outs[i].files) blobs->unhashed.push_back(f.path);
        run.files[batch[i].name] = std::move(outs[i].files);
        done.insert(batch[i].name);
      }
    }
  }
  run.seconds = monotonic_s() - t0;
  return run;
}

}  // namespace spt::platform
