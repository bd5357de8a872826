// Dispatch and the helpers every σ reduce step shares.
#include "sigma/reduce.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

#include "analysis/fit_models.h"
#include "report/figure.h"
#include "report/markdown.h"
#include "sigma/reduce_internal.h"

namespace spt::sigma {

namespace detail {

Ctx::Ctx(const JobSpec& j, const platform::ReduceContext& r) : platform::Reduce(j, r) {
  label = param("label");
  model = param("model");
  n_layer = static_cast<int>(param_int("n_layer", 0));
}

std::vector<double> dvec(const json& j, const std::string& key, const std::string& from) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_array())
    throw std::runtime_error(from + " has no array '" + key + "'");
  std::vector<double> out;
  for (const auto& v : j.at(key)) out.push_back(v.is_number() ? v.get<double>() : std::nan(""));
  return out;
}

const json& profile(const Ctx& c, const std::string& name) {
  const json& r = c.input(name);
  if (!r.is_object() || !r.contains("sigma"))
    throw std::runtime_error("input " + name + " is not a sigma.profile result");
  return r;
}

std::vector<double> depth_x(int n_layer) { return analysis::linspace(0, 1, n_layer + 1); }

report::Axis depth_axis() { return report::count_axis("depth l"); }

report::Axis lnorm_axis() {
  report::Axis a;
  a.label = "l/L";
  a.min = 0;
  a.max = 1;
  return a;
}

std::string sgn(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.*f", digits, v);
  return buf;
}

std::string device_of(const json& prov) {
  std::set<std::string> d;
  if (prov.is_object() && prov.contains("devices") && prov.at("devices").is_array())
    for (const auto& x : prov.at("devices"))
      if (x.is_string()) d.insert(x.get<std::string>());
  if (prov.is_object() && prov.contains("device") && prov.at("device").is_string())
    d.insert(prov.at("device").get<std::string>());
  std::string s;
  for (const auto& x : d) s += (s.empty() ? "" : ", ") + x;
  return s;
}

json nullable(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

double num(const json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }

std::string ic_str(const json& v) { return v.is_number() ? report::fixed(num(v), 1) : "inf"; }

std::string label_of(const std::string& job_name) {
  const auto a = job_name.find('/');
  if (a == std::string::npos) return job_name;
  const auto b = job_name.find('/', a + 1);
  return job_name.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
}

json fit_json(const analysis::FitResult& f, bool with_y_fit) {
  json params = json::object();
  for (size_t i = 0; i < f.params.size(); ++i) params[f.param_names[i]] = f.params[i];
  json j = {{"model", f.model},         {"params", params},        {"param_names", f.param_names},
            {"r2", f.r2},               {"rss", f.rss},            {"aic", nullable(f.aic)},
            {"bic", nullable(f.bic)},   {"n_params", f.n_params}};
  if (with_y_fit) j["y_fit"] = f.y_fit;
  return j;
}

std::vector<double> eval_fit(const std::vector<analysis::FitModel>& models, const json& fit,
                             const std::vector<double>& x) {
  const std::string name = fit.at("model").get<std::string>();
  for (const auto& m : models) {
    if (m.name != name) continue;
    std::vector<double> p, y;
    for (const auto& n : m.param_names) p.push_back(fit.at("params").at(n).get<double>());
    for (double v : x) y.push_back(m.f(v, p));
    return y;
  }
  throw std::runtime_error("no fit model named '" + name + "'");
}

json png_names(const Ctx& c) {
  json out = json::array();
  for (const auto& f : c.out.files)
    if (f.name.size() > 4 && f.name.compare(f.name.size() - 4, 4, ".png") == 0) out.push_back(f.name);
  return out;
}

std::string embed_figures(const json& doc) {
  if (!doc.contains("figures")) return "";
  std::string s = "### Figures\n\n";
  for (const auto& f : doc.at("figures")) s += report::image_md(f.get<std::string>(), f.get<std::string>()) + "\n\n";
  return s;
}

}  // namespace detail

platform::ReduceOutput run_reduce(const JobSpec& job, const platform::ReduceContext& rc) {
  using namespace detail;
  using Step = json (*)(Ctx&);
  static const std::map<std::string, Step> kSteps = {
      {"exp1_v1", exp1_v1},           {"exp1_v2", exp1_v2},
      {"exp1_report", exp1_report},   {"exp2_response", exp2_response},
      {"exp2_fit", exp2_fit},         {"exp2", exp2},
      {"exp2_report", exp2_report},   {"exp3_regress", exp3_regress},
      {"exp3", exp3},                 {"exp3_report", exp3_report},
      {"exp3ef", exp3ef},             {"exp3ef_truncated", exp3ef_truncated},
      {"exp3ef_cross", exp3ef_cross}, {"exp3ef_report", exp3ef_report},
  };
  const std::string step = job.params.value("reduce", std::string());
  const auto it = kSteps.find(step);
  if (it == kSteps.end()) throw std::runtime_error("unknown sigma reduce step '" + step + "'");
  Ctx c(job, rc);
  c.out.result = it->second(c);
  // Intermediate steps (per-word regressions, fits) pass provenance on, so
  // every document downstream can say what model and devices it came from.
  if (c.out.result.is_object() && !c.out.result.contains("provenance")) c.out.result["provenance"] = c.provenance();
  return std::move(c.out);
}

}  // namespace spt::sigma
