// Dispatch and the helpers every exp10 reduce step shares.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "analysis/thresholds.h"
#include "exp10/reduce_internal.h"
#include "spt/util.h"

namespace spt::exp10 {

double ppl_of(double nll_sum, double n_tokens) { return std::exp(nll_sum / n_tokens); }

namespace detail {

double r1(double x) { return round_to(x, 1); }
double r2(double x) { return round_to(x, 2); }
double r4(double x) { return round_to(x, 4); }
double r6(double x) { return round_to(x, 6); }

namespace {
// numpy's pairwise_sum (umath/loops_utils.h): < 8 values sequentially, up to
// 128 in eight interleaved accumulators, longer runs split in halves whose
// length is a multiple of 8.
double np_pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return np_pairwise_sum(a, n2) + np_pairwise_sum(a + n2, n - n2);
}
}  // namespace

double np_mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  return (0.0 + np_pairwise_sum(v.data(), v.size())) / static_cast<double>(v.size());
}

PplPoint read_ppl(const json& r, const std::string& job_name) {
  PplPoint p;
  if (!r.is_object()) throw std::runtime_error("input " + job_name + " is not an exp10.ppl result");
  p.skipped = r.value("skipped", false);
  if (r.contains("variant")) p.variant = r.at("variant");
  if (p.skipped) return p;
  if (!r.contains("nll_sum") || !r.contains("n_tokens"))
    throw std::runtime_error("input " + job_name + " has no nll_sum/n_tokens (not an exp10.ppl result)");
  p.nll = r.at("nll_sum").get<double>();
  p.n_tokens = r.at("n_tokens").get<int64_t>();
  if (p.n_tokens <= 0) throw std::runtime_error("input " + job_name + " evaluated no tokens");
  p.ppl = ppl_of(p.nll, static_cast<double>(p.n_tokens));
  p.n_chunks = r.value("n_chunks", int64_t{0});
  p.total_tokens = r.value("total_tokens", int64_t{0});
  return p;
}

HeadId parse_head(const std::string& s) {
  int l = -1, h = -1;
  char tail = 0;
  if (std::sscanf(s.c_str(), "L%dH%d%c", &l, &h, &tail) != 2 || l < 0 || h < 0)
    throw std::runtime_error("'" + s + "' is not a head name like L3H7");
  return {l, h};
}

Ctx::Ctx(const JobSpec& j, const ReduceContext& r)
    : platform::Reduce(j, r), label(j.params.value("model_label", model_label(j.params.value("model", std::string("model"))))) {
  n_layer = j.params.value("n_layer", 0);
  n_head = j.params.value("n_head", 0);
  if (n_layer < 1 || n_head < 1) throw std::runtime_error("reduce job " + j.name + " lacks n_layer/n_head");
}

std::map<int, PplPoint> Ctx::steps(const std::string& prefix) const {
  std::map<int, PplPoint> out;
  for (const auto& [key, res] : with_prefix(prefix)) {
    PplPoint p = read_ppl(*res, prefix + key);
    if (p.skipped) continue;
    int n;
    if (key == "all") {
      n = p.variant.value("n_additional", -1);
      if (n < 0) throw std::runtime_error("input " + prefix + key + " does not say its step size");
    } else {
      try {
        n = std::stoi(key);
      } catch (const std::exception&) {
        throw std::runtime_error("input " + prefix + key + " is not a step");
      }
    }
    out[n] = p;
  }
  return out;
}

json cumulative_rows(const std::map<int, double>& ppl_by_n, double base_for_ratio, double base_shown,
                     const char* n_key) {
  json rows = json::array();
  rows.push_back({{n_key, 0}, {"ppl", r4(base_shown)}, {"ratio", 1.0}});
  for (const auto& [n, ppl] : ppl_by_n) {
    if (n == 0) continue;
    rows.push_back({{n_key, n}, {"ppl", r4(ppl)}, {"ratio", r4(ppl / base_for_ratio)}});
  }
  return rows;
}

json thresholds_of(const json& rows, const char* n_key) {
  std::vector<analysis::CurvePoint> curve;
  for (const auto& r : rows) curve.push_back({r.at(n_key).get<int>(), r.at("ratio").get<double>()});
  return {{"1.1", analysis::threshold_steps(curve, 1.1)},
          {"1.5", analysis::threshold_steps(curve, 1.5)},
          {"2.0", analysis::threshold_steps(curve, 2.0)}};
}

report::Axis dppl_axis(const std::string& label, report::Scale s) {
  report::Axis a = report::dppl_axis(s);
  a.label = label;
  return a;
}

report::Axis ratio_axis(report::Scale s) {
  report::Axis a;
  a.label = "PPL / baseline";
  a.scale = s;
  return a;
}

report::Series curve_series(const json& rows, const char* n_key, std::string label, const char* y_key) {
  report::Series s;
  s.label = std::move(label);
  s.style = report::Series::Style::linespoints;
  for (const auto& r : rows) {
    s.x.push_back(r.at(n_key).get<double>());
    s.y.push_back(r.at(y_key).get<double>());
  }
  return s;
}

report::Panel ratio_panel(std::string title, report::Axis x, std::vector<report::Series> curves, report::Scale s) {
  report::Panel p = report::line_panel(std::move(title), std::move(x), ratio_axis(s), std::move(curves));
  p.hlines = {1.1, 1.5, 2.0};
  return p;
}

std::string layer_color(int i, int n) {
  // viridis at 0, 0.5, 1
  static const double stops[3][3] = {{68, 1, 84}, {33, 145, 140}, {253, 231, 37}};
  const double t = n > 1 ? std::clamp(static_cast<double>(i) / (n - 1), 0.0, 1.0) : 0.0;
  const int k = t < 0.5 ? 0 : 1;
  const double u = (t - 0.5 * k) * 2;
  char buf[8];
  int rgb[3];
  for (int j = 0; j < 3; ++j) rgb[j] = static_cast<int>(std::lround(stops[k][j] + u * (stops[k + 1][j] - stops[k][j])));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}

std::string figures_section(const Ctx& c) {
  const std::string f = c.figures_md();
  return f.empty() ? "" : "## Figures\n\n" + f;
}

std::string data_description(const json& prov) {
  std::set<std::string> names;
  if (prov.contains("data_files") && prov.at("data_files").is_array())
    for (const auto& f : prov.at("data_files"))
      if (f.is_string()) names.insert(std::filesystem::path(f.get<std::string>()).filename().string());
  if (names.size() == 1 && *names.begin() == "wiki.valid.raw") return "the WikiText-2 validation split";
  if (names.size() == 1 && *names.begin() == "wiki.test.raw") return "the WikiText-2 test split";
  if (names.empty()) return "the dataset";
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "`" : ", `") + n + "`";
  return s + " (a file not named wiki.valid.raw: not the WikiText-2 validation split unless renamed; see Provenance)";
}

void require_steps(const std::map<int, PplPoint>& got, const std::vector<int>& want, const std::string& what) {
  std::string missing;
  for (int n : want)
    if (n != 0 && !got.count(n)) missing += (missing.empty() ? "" : ", ") + std::to_string(n);
  if (!missing.empty()) throw std::runtime_error(what + ": missing steps " + missing);
}

json head_rows(const std::vector<HeadDelta>& rows, bool with_ppl, const char* ppl_key) {
  json a = json::array();
  for (const auto& r : rows) {
    json j = {{"layer", r.layer}, {"head", r.head}};
    if (!r.method.empty()) j["method"] = r.method;
    if (with_ppl) j[ppl_key] = r.ppl;
    j["delta_ppl"] = r.delta;
    a.push_back(std::move(j));
  }
  return a;
}

}  // namespace detail

ReduceOutput run_reduce(const JobSpec& job, const ReduceContext& rc) {
  using namespace detail;
  const std::string what = job.params.value("reduce", std::string());
  static const std::map<std::string, json (*)(Ctx&)> kSteps = {
      {"a", reduce_a}, {"c", reduce_c}, {"exp10", reduce_exp10}, {"e", reduce_e},   {"f", reduce_f},
      {"g", reduce_g}, {"h", reduce_h}, {"exp10b", reduce_exp10b}, {"i", reduce_i}, {"j", reduce_j},
      {"k", reduce_k}, {"l", reduce_l}, {"exp10c", reduce_exp10c}, {"v", reduce_v},
      {"p", reduce_p}};
  const auto it = kSteps.find(what);
  if (it == kSteps.end()) throw std::runtime_error("exp10.reduce: unknown step '" + what + "'");
  Ctx c(job, rc);
  json result = it->second(c);
  c.out.result = std::move(result);
  return std::move(c.out);
}

}  // namespace spt::exp10
