// exp10c I–L (spec §10.3): single-head linearised attention, method
// selection, cumulative linearisation, the FLOP cost model; report and
// figures. Ratios are against exp10a's rounded baseline.
#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "analysis/stats.h"
#include "exp10/reduce_internal.h"
#include "report/markdown.h"

namespace spt::exp10::detail {

namespace {

// exp10i rows by head, per method in linear_methods() order.
std::map<HeadId, std::map<std::string, double>> linear_table(const json& i) {
  std::map<HeadId, std::map<std::string, double>> t;
  for (const auto& r : i.at("results"))
    t[{r.at("layer").get<int>(), r.at("head").get<int>()}][r.at("method").get<std::string>()] =
        r.at("delta_ppl").get<double>();
  return t;
}

json method_stats_of(const std::vector<double>& d) {
  int neg = 0, small = 0;
  for (double v : d) {
    neg += v < 0;
    small += std::fabs(v) < 0.01;
  }
  return {{"mean", r6(np_mean(d))},
          {"median", r6(analysis::median(d))},
          {"max", r6(analysis::max_of(d))},
          {"n_negative", neg},
          {"n_small", small}};
}

// numpy.percentile's default (linear interpolation) of sorted values.
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t k = static_cast<size_t>(pos);
  return k + 1 < sorted.size() ? sorted[k] + (pos - k) * (sorted[k + 1] - sorted[k]) : sorted[k];
}

// A box plot on an xy panel: category i at x = i, its interquartile range as
// a band around the median line, whiskers to the minimum and maximum; the key
// and a label above each box name the categories. Categories without values
// are left out.
report::Panel box_panel(std::string title, const std::vector<std::string>& cats,
                        const std::vector<std::vector<double>>& values, report::Axis y) {
  using S = report::Series;
  static const char* const kBox[] = {"#4477aa", "#ee6677", "#228833", "#ccbb44", "#aa3377"};
  std::vector<S> series;
  std::vector<report::Label> labels;
  for (size_t i = 0; i < cats.size(); ++i) {
    std::vector<double> v;
    for (double d : values[i])
      if (std::isfinite(d)) v.push_back(d);
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    const double x = static_cast<double>(i), q1 = quantile(v, 0.25), med = quantile(v, 0.5), q3 = quantile(v, 0.75);
    const std::string col = kBox[i % 5];
    S box{cats[i], {x - 0.3, x + 0.3}, {med, med}, S::Style::line, {q1, q1}, {q3, q3}, col};
    series.push_back(box);
    series.push_back(S{"", {x, x}, {v.front(), q1}, S::Style::line, {}, {}, col});
    series.push_back(S{"", {x, x}, {q3, v.back()}, S::Style::line, {}, {}, col});
    labels.push_back({x - 0.3, v.back(), cats[i]});
  }
  report::Axis x = report::count_axis("method");
  x.min = -0.7;
  x.max = static_cast<double>(cats.size()) - 0.3;
  report::Panel p = report::line_panel(std::move(title), x, std::move(y), std::move(series));
  p.labels = std::move(labels);
  return p;
}

// exp10i_linear_individual, exp10i_linear_vs_mean_scatter,
// exp10j_method_comparison, exp10k_pareto_linear, exp10l_cost_tradeoff:
// each when its parts ran.
void exp10c_figures(Ctx& c, const json* id, const json* jd, const json* kd, const json* ld, const json* ed,
                    const json* fd) {
  namespace R = report;
  using S = R::Series;
  const std::string& m = c.label;
  std::map<HeadId, double> mean;
  if (ed)
    for (const auto& r : read_head_table(*ed)) mean[r.id()] = r.delta;
  if (id) {
    const auto tab = linear_table(*id);
    const std::string n = std::to_string(tab.size());
    std::vector<R::Panel> hists, scatters;
    for (const auto& meth : linear_methods()) {
      std::vector<double> d;
      S pts;
      int better = 0;
      for (const auto& [h, by] : tab) {
        d.push_back(by.at(meth));
        if (!ed) continue;
        better += by.at(meth) < mean.at(h);
        pts.x.push_back(mean.at(h));
        pts.y.push_back(by.at(meth));
      }
      hists.push_back(R::histogram_panel(meth, d, 30, R::dppl_axis(), R::count_axis("heads")));
      if (!ed) continue;
      double lo = 0, hi = 0;
      for (size_t i = 0; i < pts.x.size(); ++i) lo = std::min({lo, pts.x[i], pts.y[i]}), hi = std::max({hi, pts.x[i], pts.y[i]});
      R::Panel p = R::scatter_panel(meth + ": Linear < Mean: " + std::to_string(better) + "/" + n,
                                    dppl_axis("ΔPPL mean-ablation"), dppl_axis("ΔPPL linearised"),
                                    {pts, S{"", {lo, hi}, {lo, hi}, S::Style::dashed, {}, {}, "#888888"}});
      p.key = "off";
      scatters.push_back(p);
    }
    c.emit_plot({"exp10i_linear_individual_" + m, "Single-head linearisation ΔPPL — " + m, hists, 3});
    if (ed) c.emit_plot({"exp10i_linear_vs_mean_scatter_" + m, "Linearised vs mean-ablated ΔPPL — " + m, scatters, 3});
  }
  if (jd && id) {
    // Box plot of ΔPPL per method (+ mixed, mean-abl) and the best-method map.
    const auto tab = linear_table(*id);
    std::map<HeadId, std::string> pick;
    for (const auto& r : jd->at("mixed_ranking"))
      pick[{r.at("layer").get<int>(), r.at("head").get<int>()}] = r.at("method").get<std::string>();
    const std::vector<std::string> cats = {"relu", "l1", "identity", "mixed", "mean-abl"};
    std::vector<std::vector<double>> vals(cats.size());
    for (const auto& [h, by] : tab) {
      for (size_t k = 0; k < 3; ++k) vals[k].push_back(by.at(cats[k]));
      vals[3].push_back(by.at(pick.count(h) ? pick.at(h) : "relu"));
      if (ed) vals[4].push_back(mean.at(h));
    }
    std::vector<std::vector<double>> map(std::max(0, c.n_layer - 1), std::vector<double>(c.n_head, NAN));
    std::vector<std::string> rows;
    for (int l = 1; l < c.n_layer; ++l) {
      rows.push_back(std::to_string(l));
      for (int hh = 0; hh < c.n_head; ++hh) {
        const auto it = pick.find({l, hh});
        if (it == pick.end()) continue;
        const auto& ms = linear_methods();
        map[l - 1][hh] = static_cast<double>(std::find(ms.begin(), ms.end(), it->second) - ms.begin());
      }
    }
    std::vector<R::Panel> panels = {box_panel("ΔPPL by method", cats, vals, R::dppl_axis())};
    if (!map.empty()) {
      R::Axis z = R::count_axis("");  // the title names the codes
      z.min = 0;
      z.max = 2;
      panels.push_back(R::heatmap_panel("best method per head: 0 relu, 1 l1, 2 identity", map, R::count_axis("layer"),
                                        R::count_axis("head"), z, rows));
    }
    c.emit_plot({"exp10j_method_comparison_" + m, "Linearisation methods — " + m, panels});
  }
  if (kd) {
    const std::string best = kd->at("best_method").get<std::string>();
    std::vector<S> curves = {curve_series(kd->at("cumulative_best"), "n_linearized", best + " (best method)"),
                             curve_series(kd->at("cumulative_mixed"), "n_linearized", "mixed")};
    if (fd) curves.push_back(curve_series(fd->at("cumulative_mean"), "n_ablated", "mean-ablation (10F)"));
    c.emit_plot({"exp10k_pareto_linear_" + m, "Cumulative linearisation — " + m,
                 {ratio_panel("", R::count_axis("heads linearised (layers 1+)"), curves, R::Scale::log)}});
  }
  if (ld) {
    std::vector<S> curves;
    for (const char* n : {"128", "512", "1024", "2048"}) {  // numeric order (JSON keys sort as text)
      if (!ld->at("seq_lengths").contains(n)) continue;
      S s{std::string("n = ") + n};
      s.style = S::Style::linespoints;
      for (const auto& r : ld->at("seq_lengths").at(n).at("tradeoffs")) {
        s.x.push_back(r.at("savings_kernel_pct").get<double>() / 100);  // percent axis: fractions in
        s.y.push_back(r.at("ppl_ratio").get<double>());
      }
      curves.push_back(s);
    }
    c.emit_plot({"exp10l_cost_tradeoff_" + m, "PPL ratio vs attention FLOP savings (kernelised) — " + m,
                 {R::line_panel("", R::Axis{"attention FLOPs saved", R::Unit::percent}, ratio_axis(R::Scale::log),
                                curves)}});
  }
}

}  // namespace

json reduce_i(Ctx& c) {
  const json& a = c.input("a/reduce");
  const double base = a.at("baseline_ppl").get<double>();
  std::map<std::pair<HeadId, std::string>, PplPoint> got;
  for (const auto& [key, res] : c.with_prefix("i/head/")) {
    const auto slash = key.find('/');
    if (slash == std::string::npos) throw std::runtime_error("exp10i: bad input name i/head/" + key);
    got[{parse_head(key.substr(0, slash)), key.substr(slash + 1)}] = read_ppl(*res, "i/head/" + key);
  }
  json results = json::array();
  const auto heads = all_heads(c.n_layer, c.n_head, 1);
  for (const auto& h : heads)
    for (const auto& m : linear_methods()) {
      const auto it = got.find({h, m});
      if (it == got.end()) throw std::runtime_error("exp10i: no result for " + head_name(h) + " / " + m);
      results.push_back({{"layer", h.layer},
                         {"head", h.head},
                         {"method", m},
                         {"ppl", r4(it->second.ppl)},
                         {"delta_ppl", r6((it->second.ppl - base) / base)}});
    }
  if (got.size() != results.size()) throw std::runtime_error("exp10i: unexpected extra results");
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", base},
              {"n_heads_tested", heads.size()},
              {"methods", linear_methods()},
              {"results", results}};
  // The statistics the original prints, kept with the table.
  const json* e = c.maybe("e/reduce");
  std::map<HeadId, double> mean;
  if (e)
    for (const auto& r : read_head_table(*e)) mean[r.id()] = r.delta;
  json summary = json::object();
  const auto tab = linear_table(doc);
  for (const auto& m : linear_methods()) {
    std::vector<double> d;
    int better = 0;
    for (const auto& [h, by] : tab) {
      d.push_back(by.at(m));
      if (e && by.at(m) < mean.at(h)) ++better;
    }
    summary[m] = method_stats_of(d);
    summary[m]["n_linear_lt_mean"] = e ? json(better) : json(nullptr);
  }
  doc["summary"] = summary;
  return c.emit_json("exp10i_linear_individual_" + c.label, doc);
}

json reduce_j(Ctx& c) {
  const json& i = c.input("i/reduce");
  const json* e = c.maybe("e/reduce");
  const auto tab = linear_table(i);
  json stats = json::object();
  std::string best_method;
  double best_mean = 0;
  for (const auto& m : linear_methods()) {
    std::vector<double> d;
    for (const auto& [h, by] : tab) d.push_back(by.at(m));
    stats[m] = method_stats_of(d);
    // As the original: min over the stored (6-dp) means; a tie keeps the
    // earlier method of [relu, l1, identity].
    const double mu = stats[m].at("mean").get<double>();
    if (best_method.empty() || mu < best_mean) {
      best_method = m;
      best_mean = mu;
    }
  }
  std::map<HeadId, double> mean;
  if (e)
    for (const auto& r : read_head_table(*e)) mean[r.id()] = r.delta;
  std::vector<HeadDelta> best_rows, mixed_rows;
  // Only the methods some head picked, as the original's dict of counts.
  json counts = json::object();
  std::vector<double> mixed_d;
  int better = 0;
  for (const auto& [h, by] : tab) {  // std::map: layer-major order
    std::string pick = linear_methods().front();
    for (const auto& m : linear_methods())
      if (by.at(m) < by.at(pick)) pick = m;  // strict: ties keep the earlier method
    counts[pick] = counts.value(pick, 0) + 1;
    mixed_d.push_back(by.at(pick));
    if (e && by.at(pick) < mean.at(h)) ++better;
    best_rows.push_back({h.layer, h.head, 0, by.at(best_method), ""});
    mixed_rows.push_back({h.layer, h.head, 0, by.at(pick), pick});
  }
  json doc = {{"method_stats", stats},
              {"best_method", best_method},
              {"method_counts_mixed", counts},
              {"mixed_mean_dppl", r6(np_mean(mixed_d))},
              {"n_better_than_mean", e ? json(better) : json(nullptr)},
              {"best_ranking", head_rows(by_abs_ascending(best_rows), false)},
              {"mixed_ranking", head_rows(by_abs_ascending(mixed_rows), false)}};
  return c.emit_json("exp10j_method_comparison_" + c.label, doc);
}

json reduce_k(Ctx& c) {
  const json& a = c.input("a/reduce");
  const json& j = c.input("j/reduce");
  const double base = a.at("baseline_ppl").get<double>();
  const int total = static_cast<int>(j.at("best_ranking").size());
  auto curve = [&](const std::string& which) {
    const auto steps = c.steps("k/" + which + "/");
    require_steps(steps, step_list(Steps::fine, total), "exp10k " + which);
    std::map<int, double> ppl;
    for (const auto& [n, p] : steps) ppl[n] = p.ppl;
    return cumulative_rows(ppl, base, base, "n_linearized");
  };
  const json best = curve("best"), mixed = curve("mixed");
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", base},
              {"best_method", j.at("best_method")},
              {"cumulative_best", best},
              {"cumulative_mixed", mixed},
              {"thresholds_best", thresholds_of(best, "n_linearized")},
              {"thresholds_mixed", thresholds_of(mixed, "n_linearized")}};
  return c.emit_json("exp10k_cumulative_linear_" + c.label, doc);
}

json reduce_l(Ctx& c) {
  const json& k = c.input("k/reduce");
  int d = 64;
  if (k.contains("provenance") && k.at("provenance").contains("config"))
    d = k.at("provenance").at("config").value("d_head", 64);
  const int total = c.n_layer * c.n_head;
  json seq = json::object();
  for (int n : {128, 512, 1024, 2048}) {
    // Integer FLOP counts, as the original (Python ints).
    const int64_t N = n, D = d;
    const int64_t soft = 2 * N * N * D + N * N + 5 * N * N + 2 * N * N * D;  // QKᵀ + scale + softmax + AV
    const int64_t lin = 2 * N * N * D + N * N + N * N + 2 * N * N + 2 * N * N * D;  // … + activation + normalisation
    const int64_t kern = 6 * N * D * D;
    json trade = json::array();
    for (const auto& r : k.at("cumulative_best")) {
      const int64_t kk = r.at("n_linearized").get<int64_t>();
      const int64_t all = total * soft;
      // Python's int / int is the correctly rounded quotient; these sums
      // stay below 2^53, so the double division below is the same.
      auto pct = [&](int64_t per_head) {
        const int64_t with = (total - kk) * soft + kk * per_head;
        return r2((1.0 - static_cast<double>(with) / static_cast<double>(all)) * 100.0);
      };
      trade.push_back({{"n_linearized", kk},
                       {"ppl_ratio", r.at("ratio")},
                       {"savings_linear_pct", pct(lin)},
                       {"savings_kernel_pct", pct(kern)}});
    }
    seq[std::to_string(n)] = {{"flops_per_head_softmax", soft},
                              {"flops_per_head_linear", lin},
                              {"flops_per_head_kernel", kern},
                              {"tradeoffs", trade}};
  }
  json doc = {{"model_config", {{"model", c.param("model")}, {"n_layers", c.n_layer}, {"n_heads", c.n_head},
                                {"d_head", d}, {"total_heads", total}}},
              {"seq_lengths", seq}};
  return c.emit_json("exp10l_cost_estimate_" + c.label, doc);
}

json reduce_exp10c(Ctx& c) {
  namespace R = report;
  const std::string m = c.label;
  const json* id = c.maybe("i/reduce");
  const json* jd = c.maybe("j/reduce");
  const json* kd = c.maybe("k/reduce");
  const json* ld = c.maybe("l/reduce");
  const json* ed = c.maybe("e/reduce");
  const json* fd = c.maybe("f/reduce");
  std::string md = "# exp10c: linearised attention (Phase 2) — " + m + "\n\n";
  md += "Softmax of one head (layers 1+) replaced by ReLU, L1 or identity normalisation of its scores.\n\n";
  std::map<HeadId, double> mean;
  if (ed)
    for (const auto& r : read_head_table(*ed)) mean[r.id()] = r.delta;
  if (id) {
    const auto tab = linear_table(*id);
    const size_t n = tab.size();
    md += "## 10I: single-head linearisation (" + std::to_string(n) + " heads)\n\n";
    R::Table t({"method", "mean ΔPPL", "median", "max", "|Δ| < 1 %", "Δ < 0", "linear < mean-abl"}, "lrrrrrr");
    for (const auto& meth : linear_methods()) {
      std::vector<double> d;
      int better = 0;
      for (const auto& [h, by] : tab) {
        d.push_back(by.at(meth));
        if (ed) better += by.at(meth) < mean.at(h);
      }
      const json s = method_stats_of(d);
      t.row({meth, R::pct(s.at("mean").get<double>(), 2), R::pct(s.at("median").get<double>(), 2),
             R::pct(s.at("max").get<double>(), 2), std::to_string(s.at("n_small").get<int>()) + "/" + std::to_string(n),
             std::to_string(s.at("n_negative").get<int>()) + "/" + std::to_string(n),
             ed ? std::to_string(better) + "/" + std::to_string(n) : "n/a"});
    }
    if (ed) {
      std::vector<double> md_l1;
      int neg = 0;
      for (const auto& [h, by] : tab) {
        md_l1.push_back(mean.at(h));
        neg += mean.at(h) < 0;
      }
      t.row({"mean-ablation (same heads)", R::pct(analysis::mean(md_l1), 2), R::pct(analysis::median(md_l1), 2),
             R::pct(analysis::max_of(md_l1), 2), "", std::to_string(neg) + "/" + std::to_string(n), ""});
    }
    md += t.str() + "\n";
  }
  if (jd) {
    md += "## 10J: method selection\n\nBest method (lowest mean ΔPPL): **" + jd->at("best_method").get<std::string>() +
          "**. Best method per head: ";
    bool first = true;
    for (const auto& meth : linear_methods()) {
      md += std::string(first ? "" : ", ") + meth + " " + std::to_string(jd->at("method_counts_mixed").value(meth, 0));
      first = false;
    }
    md += "; mixed mean ΔPPL " + R::pct(jd->at("mixed_mean_dppl").get<double>(), 2) + "; heads whose best linear ΔPPL < " +
          "mean-ablation ΔPPL: " + (jd->at("n_better_than_mean").is_null() ? std::string("n/a") :
                                    std::to_string(jd->at("n_better_than_mean").get<int>())) + ".\n\n";
  }
  if (kd) {
    const json& best = kd->at("cumulative_best");
    const json& mixed = kd->at("cumulative_mixed");
    md += "## 10K: cumulative linearisation\n\n";
    R::Table t({"n", kd->at("best_method").get<std::string>() + " PPL", "ratio", "mixed PPL", "mixed ratio"}, "rrrrr");
    for (size_t i = 0; i < best.size(); ++i) {
      const auto& b = best[i];
      const json* mx = i < mixed.size() ? &mixed[i] : nullptr;
      t.row({std::to_string(b.at("n_linearized").get<int>()), R::fixed(b.at("ppl").get<double>(), 2),
             R::fixed(b.at("ratio").get<double>(), 3), mx ? R::fixed(mx->at("ppl").get<double>(), 2) : "",
             mx ? R::fixed(mx->at("ratio").get<double>(), 3) : ""});
    }
    md += t.str() + "\n";
    json fthr = fd ? thresholds_of(fd->at("cumulative_mean"), "n_ablated") : json(nullptr);
    R::Table th({"threshold", kd->at("best_method").get<std::string>(), "mixed", "mean-ablation (10F)"}, "lrrr");
    for (const char* k : {"1.1", "1.5", "2.0"})
      th.row({std::string(k) + "×", std::to_string(kd->at("thresholds_best").at(k).get<int>()),
              std::to_string(kd->at("thresholds_mixed").at(k).get<int>()),
              fd ? std::to_string(fthr.at(k).get<int>()) : "n/a"});
    md += th.str() + "\n";
  }
  if (ld) {
    md += "## 10L: cost model (FLOPs per head per forward, d = " +
          std::to_string(ld->at("model_config").at("d_head").get<int>()) + ")\n\n";
    R::Table t({"n", "softmax", "linear", "kernelised", "saving linear (all heads)", "saving kernel (all heads)"}, "rrrrrr");
    for (const char* nc : {"128", "512", "1024", "2048"}) {  // numeric order (JSON keys sort as text)
      const std::string n = nc;
      if (!ld->at("seq_lengths").contains(n)) continue;
      const json& s = ld->at("seq_lengths").at(n);
      const double soft = s.at("flops_per_head_softmax").get<double>(), lin = s.at("flops_per_head_linear").get<double>(),
                   ker = s.at("flops_per_head_kernel").get<double>();
      t.row({n, R::fixed(soft / 1e6, 2) + " M", R::fixed(lin / 1e6, 2) + " M", R::fixed(ker / 1e6, 2) + " M",
             R::fixed(100 * (1 - lin / soft), 1) + " %", R::fixed(100 * (1 - ker / soft), 1) + " %"});
    }
    md += t.str() + "\n";
    if (ld->at("seq_lengths").contains("1024")) {
      md += "Trade-off at n = 1024 (kernelised attention on the first k heads of the best ranking):\n\n";
      R::Table tt({"k", "PPL ratio", "saving kernel", "saving linear"}, "rrrr");
      for (const auto& r : ld->at("seq_lengths").at("1024").at("tradeoffs"))
        tt.row({std::to_string(r.at("n_linearized").get<int>()), R::fixed(r.at("ppl_ratio").get<double>(), 3),
                R::fixed(r.at("savings_kernel_pct").get<double>(), 1) + " %",
                R::fixed(r.at("savings_linear_pct").get<double>(), 2) + " %"});
      md += tt.str() + "\n";
    }
  }
  exp10c_figures(c, id, jd, kd, ld, ed, fd);
  md += figures_section(c);
  json result = {{"model", c.param("model")}, {"report", "exp10c_results_" + m + ".md"}};
  result["provenance"] = c.provenance();
  md += provenance_md(result.at("provenance"));
  c.emit_text("exp10c_results_" + m + ".md", md, "text/markdown");
  result["report_notes"] = c.out.notes;
  return result;
}

}  // namespace spt::exp10::detail
