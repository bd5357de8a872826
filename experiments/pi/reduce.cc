// Dispatch and the helpers every π reduce step shares.
#include "pi/reduce.h"

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "pi/reduce_internal.h"

namespace spt::pi {

namespace detail {

Ctx::Ctx(const JobSpec& j, const platform::ReduceContext& r) : platform::Reduce(j, r) {
  label = param("label");
  model = param("model");
  n_layer = static_cast<int>(param_int("n_layer", 0));
}

json nullable(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double num(const json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }

std::vector<double> dvec(const json& j, const std::string& key, const std::string& from) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_array())
    throw std::runtime_error(from + " has no array '" + key + "'");
  std::vector<double> out;
  for (const auto& v : j.at(key)) out.push_back(num(v));
  return out;
}

json fit_json(const analysis::FitResult& f) {
  json params = json::object();
  for (size_t i = 0; i < f.params.size(); ++i) params[f.param_names.at(i)] = f.params[i];
  return {{"model", f.model}, {"params", params},         {"n_params", f.n_params},
          {"r2", f.r2},       {"rss", f.rss},             {"aic", nullable(f.aic)},
          {"bic", nullable(f.bic)}};
}

json stats_json(const RotationStats& s) {
  return {{"n_samples", s.n_samples},
          {"theta_mean_per_layer", s.theta_mean},
          {"theta_std_per_layer", s.theta_std},
          {"cumulative_mean", s.cum_mean},
          {"cumulative_std", s.cum_std},
          {"cumulative_over_pi_mean", s.over_pi_mean},
          {"cumulative_over_pi_std", s.over_pi_std},
          {"cumulative_over_pi_sq_half", s.over_pi_sq_half},
          {"nearest_integer_multiple", s.nearest},
          {"deviation_from_int", s.deviation},
          {"fraction_within_0.1_of_pi_multiple", s.fraction_within},
          {"success_criterion", s.success}};
}

std::string random_banner(const json& prov) {
  return platform::random_banner(prov,
                                 "> **RANDOM WEIGHTS.** A generated checkpoint with random weights: the numbers "
                                 "below check the pipeline, not the science.\n\n");
}

std::string devices_of(const json& prov) {
  std::set<std::string> d;
  if (prov.is_object()) {
    if (prov.contains("devices") && prov.at("devices").is_array())
      for (const auto& x : prov.at("devices"))
        if (x.is_string()) d.insert(x.get<std::string>());
    if (prov.contains("device") && prov.at("device").is_string()) d.insert(prov.at("device").get<std::string>());
  }
  std::string s;
  for (const auto& x : d) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "?" : s;
}

}  // namespace detail

platform::ReduceOutput run_reduce(const JobSpec& job, const platform::ReduceContext& rc) {
  using namespace detail;
  using Step = json (*)(Ctx&);
  static const std::map<std::string, Step> kSteps = {
      {"exp8", exp8},     {"exp8_report", exp8_report},           {"exp9_a", exp9_a},
      {"exp9_c", exp9_c}, {"exp9_convergence", exp9_convergence}, {"exp9_b", exp9_b},
      {"exp9_report", exp9_report}};
  const std::string step = job.params.value("reduce", std::string());
  const auto it = kSteps.find(step);
  if (it == kSteps.end()) throw std::runtime_error("unknown pi reduce step '" + step + "'");
  Ctx c(job, rc);
  c.out.result = it->second(c);
  if (c.out.result.is_object() && !c.out.result.contains("provenance")) c.out.result["provenance"] = c.provenance();
  return std::move(c.out);
}

}  // namespace spt::pi
