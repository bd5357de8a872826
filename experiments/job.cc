// JobSpec helpers and the executor registry (contract in spt/job.h).
#include "spt/job.h"

#include <set>
#include <stdexcept>

namespace spt {

const JobInput& JobSpec::input(const std::string& wanted) const {
  for (const auto& in : inputs)
    if (in.name == wanted) return in;
  throw std::runtime_error("job " + name + " has no input named '" + wanted + "'");
}

std::vector<const JobInput*> JobSpec::inputs_with_prefix(const std::string& prefix) const {
  std::vector<const JobInput*> out;
  for (const auto& in : inputs)
    if (in.name.compare(0, prefix.size(), prefix) == 0) out.push_back(&in);
  return out;
}

void ExecutorRegistry::add(std::unique_ptr<Executor> e) {
  if (!e) throw std::logic_error("ExecutorRegistry::add: null executor");
  // One executor per kind, or leases could not be routed unambiguously.
  for (const auto& k : e->kinds())
    if (find(k)) throw std::logic_error("ExecutorRegistry: kind '" + k + "' registered twice");
  executors_.push_back(std::move(e));
}

Executor* ExecutorRegistry::find(const std::string& kind) const {
  for (const auto& e : executors_)
    for (const auto& k : e->kinds())
      if (k == kind) return e.get();
  return nullptr;
}

namespace {
template <typename F>
std::vector<std::string> sorted_union(const std::vector<std::unique_ptr<Executor>>& all, F f) {
  std::set<std::string> s;
  for (const auto& e : all)
    for (auto& v : f(*e)) s.insert(std::move(v));
  return {s.begin(), s.end()};
}
}  // namespace

std::vector<std::string> ExecutorRegistry::kinds() const {
  return sorted_union(executors_, [](const Executor& e) { return e.kinds(); });
}
std::vector<std::string> ExecutorRegistry::loaded_models() const {
  return sorted_union(executors_, [](const Executor& e) { return e.loaded_models(); });
}
std::vector<std::string> ExecutorRegistry::precisions() const {
  return sorted_union(executors_, [](const Executor& e) { return e.precisions(); });
}

}  // namespace spt
