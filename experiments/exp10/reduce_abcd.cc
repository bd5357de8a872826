// exp10 A–D (spec §10.1): the zero-ablation table, the cumulative curve,
// and the combined exp10_{model}.json with ranking, statistics, Zipf fit,
// thresholds, layer statistics and the exp3ef correlation; report + figures.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "analysis/stats.h"
#include "analysis/zipf.h"
#include "exp10/reduce_internal.h"
#include "report/markdown.h"
#include "spt/util.h"

namespace spt::exp10::detail {

namespace {

double baseline_exact(const json& a) {
  return a.contains("baseline_ppl_exact") ? a.at("baseline_ppl_exact").get<double>()
                                          : a.at("baseline_ppl").get<double>();
}

// Loads exp3ef_{model}.json from a path or "sha256:<hex>" artifact.
json load_exp3ef(Ctx& c, const std::string& ref) {
  std::string path = ref;
  if (ref.rfind("sha256:", 0) == 0) {
    if (!c.rc.fetch) throw std::runtime_error("exp3ef=" + ref + ": this worker cannot fetch artifacts");
    path = c.rc.fetch(ref.substr(7));
  } else if (!std::filesystem::exists(ref) && c.rc.fetch) {
    path = c.rc.fetch(ref);  // a name registered on the coordinator
  }
  return json::parse(read_file(path));
}

}  // namespace

json reduce_a(Ctx& c) {
  const PplPoint base = read_ppl(c.input("a/baseline"), "a/baseline");
  std::map<HeadId, PplPoint> got;
  for (const auto& [key, res] : c.with_prefix("a/head/")) got[parse_head(key)] = read_ppl(*res, "a/head/" + key);
  json results = json::array();
  for (const auto& h : all_heads(c.n_layer, c.n_head)) {
    const auto it = got.find(h);
    if (it == got.end()) throw std::runtime_error("exp10a: no result for head " + head_name(h));
    results.push_back({{"layer", h.layer},
                       {"head", h.head},
                       {"ppl_ablated", r4(it->second.ppl)},
                       {"delta_ppl", r6((it->second.ppl - base.ppl) / base.ppl)}});
  }
  if (got.size() != results.size())
    throw std::runtime_error("exp10a: " + std::to_string(got.size()) + " head results for a " +
                             std::to_string(c.n_layer) + "x" + std::to_string(c.n_head) + " model");
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", r4(base.ppl)},
              {"n_layers", c.n_layer},
              {"n_heads", c.n_head},
              {"results", results},
              {"max_tokens", c.param_int("max_tokens", 0)},
              {"chunk_len", c.param_int("chunk_len", 0)},
              {"n_chunks", base.n_chunks},
              {"n_predicted_tokens", base.n_tokens},
              {"baseline_ppl_exact", base.ppl}};
  return c.emit_json("exp10a_" + c.label, doc);
}

json reduce_c(Ctx& c) {
  const json& a = c.input("a/reduce");
  const double base = baseline_exact(a);  // fresh-run semantics: unrounded (A2)
  const auto order = named_order("zero_all", a, nullptr, nullptr);
  const auto steps = c.steps("c/step/");
  require_steps(steps, step_list(Steps::c, c.n_layer * c.n_head), "exp10c");
  std::map<int, double> ppl;
  for (const auto& [n, p] : steps) ppl[n] = p.ppl;
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", a.at("baseline_ppl")},
              {"ablation_order", head_rows(order, false)},
              {"cumulative", cumulative_rows(ppl, base, base, "n_ablated")}};
  return c.emit_json("exp10c_" + c.label, doc);
}

json reduce_exp10(Ctx& c) {
  const json& a = c.input("a/reduce");
  const json* cdoc = c.maybe("c/reduce");
  // B and D are pure functions of A's table: always computed, so a
  // submission of "a" alone still gets the full summary.
  const auto rows = read_head_table(a);
  const int N = static_cast<int>(rows.size());
  const std::string m = c.label;

  json doc = {{"model", c.param("model")},
              {"baseline_ppl", a.at("baseline_ppl")},
              {"n_layers", c.n_layer},
              {"n_heads", c.n_head},
              {"max_tokens", c.param_int("max_tokens", 0)}};

  // ---- B: ranking, statistics, Zipf
  const auto rank = ranking_desc(rows);
  std::vector<double> deltas;
  for (const auto& r : rows) deltas.push_back(r.delta);
  int n1 = 0, n10 = 0, nneg = 0;
  for (double d : deltas) {
    n1 += std::fabs(d) < 0.01;
    n10 += std::fabs(d) < 0.10;
    nneg += d < 0;
  }
  json stats = {{"n_negligible_1pct", n1},
                {"n_small_10pct", n10},
                {"n_negative", nneg},
                {"mean_delta_ppl", r6(analysis::mean(deltas))},
                {"median_delta_ppl", r6(analysis::median(deltas))},
                {"max_delta_ppl", r6(analysis::max_of(deltas))},
                {"min_delta_ppl", r6(analysis::min_of(deltas))}};
  std::string zipf_why;
  const auto zipf = analysis::zipf_fit(deltas, &zipf_why);
  json ranking = json::array();
  for (size_t i = 0; i < rank.size(); ++i)
    ranking.push_back({{"rank", i + 1},
                       {"layer", rank[i].layer},
                       {"head", rank[i].head},
                       {"ppl_ablated", rank[i].ppl},
                       {"delta_ppl", rank[i].delta}});
  json zipf_json = zipf ? json{{"C", r6(zipf->C)}, {"alpha", r6(zipf->alpha)}, {"r2", r6(zipf->r2)},
                               {"n_points", zipf->n_points}}
                        : json{{"C", nullptr}, {"alpha", nullptr}, {"error", zipf_why}};
  doc["exp10b"] = {{"ranking", ranking}, {"statistics", stats}, {"zipf_fit", zipf_json}};

  // ---- C: cumulative + thresholds
  json thresholds;
  if (cdoc) {
    thresholds = thresholds_of(cdoc->at("cumulative"), "n_ablated");
    doc["exp10c"] = {{"cumulative", cdoc->at("cumulative")}, {"thresholds", thresholds}};
  }

  // ---- D: layer statistics (+ exp3ef correlation)
  std::vector<double> layer_mean(c.n_layer), layer_max(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    std::vector<double> v;
    for (const auto& r : rows)
      if (r.layer == l) v.push_back(r.delta);
    layer_mean[l] = r6(analysis::mean(v));
    layer_max[l] = r6(analysis::max_of(v));
  }
  json gcorr = nullptr;
  std::string gcorr_note;
  std::vector<double> dg_dl;
  const std::string exp3ef_ref = c.param("exp3ef");
  {
    if (exp3ef_ref.empty()) {
      gcorr_note = "skipped: no exp3ef result for this model (param exp3ef=<path or sha256:…>)";
    } else {
      try {
        const json g = load_exp3ef(c, exp3ef_ref);
        const auto gm = g.at("g_mean").get<std::vector<double>>();
        const auto ln = g.at("l_norm").get<std::vector<double>>();
        if (gm.size() != ln.size() || static_cast<int>(gm.size()) != c.n_layer + 1)
          throw std::runtime_error("g_mean/l_norm have " + std::to_string(gm.size()) + "/" +
                                   std::to_string(ln.size()) + " points; this model needs " +
                                   std::to_string(c.n_layer + 1));
        for (int l = 0; l < c.n_layer; ++l) dg_dl.push_back((gm[l + 1] - gm[l]) / (ln[l + 1] - ln[l]));
        const auto pr = analysis::pearson(dg_dl, layer_mean);
        const auto sr = analysis::spearman(dg_dl, layer_mean);
        json dg = json::array();
        for (double v : dg_dl) dg.push_back(r6(v));
        gcorr = {{"dg_dl", dg},
                 {"corr_pearson", r6(pr.r)},
                 {"p_pearson", r6(pr.p)},
                 {"corr_spearman", r6(sr.r)},
                 {"p_spearman", r6(sr.p)}};
      } catch (const std::exception& e) {
        gcorr_note = std::string("skipped: exp3ef result unusable: ") + e.what();
      }
    }
    doc["exp10d"] = {{"layer_mean_dppl", layer_mean}, {"layer_max_dppl", layer_max}, {"g_correlation", gcorr}};
    if (!gcorr_note.empty()) doc["exp10d"]["g_correlation_note"] = gcorr_note;
  }

  // ---- figures
  {
    // Heatmap, in percent: rows = layers, columns = heads.
    std::string dat;
    for (int l = 0; l < c.n_layer; ++l) {
      for (int h = 0; h < c.n_head; ++h)
        dat += (h ? " " : "") + num(rows[static_cast<size_t>(l * c.n_head + h)].delta * 100.0);
      dat += "\n";
    }
    // Diverging palette with white at 0 (blue: ablation helps, red: hurts).
    double lo = -1e-9, hi = 1e-9;
    for (const auto& r : rows) {
      lo = std::min(lo, r.delta * 100.0);
      hi = std::max(hi, r.delta * 100.0);
    }
    report::Figure f;
    f.name = "exp10b_heatmap_" + m;
    f.width = std::max(700, 60 * c.n_head + 200);
    f.height = std::max(500, 45 * c.n_layer + 150);
    f.data = {{f.name + ".dat", dat}};
    f.script = "set title 'Zero-ablation ΔPPL (%) per head — " + m +
               "'\nset xlabel 'head'\nset ylabel 'layer'\n"
               "set xrange [-0.5:" + std::to_string(c.n_head) + "-0.5]\nset yrange [" + std::to_string(c.n_layer) +
               "-0.5:-0.5]\nset xtics 1\nset ytics 1\nset cblabel 'ΔPPL (%)'\n"
               "set cbrange [" + num(lo) + ":" + num(hi) + "]\n"
               "set palette defined (" + num(lo) + " '#2166ac', 0 '#f7f7f7', " + num(hi) + " '#b2182b')\n"
               "plot '" + f.name + ".dat' matrix with image notitle, \\\n"
               "     '' matrix using 1:2:(sprintf('%.1f', $3)) with labels font ',7' notitle\n";
    c.emit_figure(f);
  }
  {
    const auto hist = analysis::histogram(deltas, 30);
    std::string dat = "# bin_center count bin_width\n";
    for (size_t i = 0; i < hist.counts.size(); ++i)
      dat += num(0.5 * (hist.edges[i] + hist.edges[i + 1])) + " " + std::to_string(hist.counts[i]) + " " +
             num(hist.edges[i + 1] - hist.edges[i]) + "\n";
    report::Figure f;
    f.name = "exp10b_histogram_" + m;
    f.data = {{f.name + ".dat", dat}};
    f.script = "set title 'Distribution of zero-ablation ΔPPL — " + m +
               "'\nset xlabel 'ΔPPL (fraction)'\nset ylabel 'heads'\nset style fill solid 0.6 border -1\n"
               "set arrow from 0, graph 0 to 0, graph 1 nohead dt 2 lc rgb 'black'\n"
               "set arrow from 0.1, graph 0 to 0.1, graph 1 nohead dt 2 lc rgb 'red'\n"
               "plot '" + f.name + ".dat' using 1:2:3 with boxes lc rgb '#4477aa' title 'heads'\n";
    c.emit_figure(f);
  }
  {
    std::vector<double> y;
    for (const auto& r : rank) y.push_back(std::fabs(r.delta));
    std::sort(y.begin(), y.end(), std::greater<double>());
    std::string dat = "# rank abs_delta_ppl\n";
    for (size_t i = 0; i < y.size(); ++i)
      if (y[i] > 0) dat += std::to_string(i + 1) + " " + num(y[i]) + "\n";
    report::Figure f;
    f.name = "exp10b_zipf_" + m;
    f.width = 1200;
    f.height = 500;
    f.data = {{f.name + ".dat", dat}};
    const std::string fit = zipf ? num(zipf->C) + "*x**(-" + num(zipf->alpha) + ")" : "";
    const std::string fit_title = zipf ? "fit C=" + report::fixed(zipf->C, 2) + ", α=" + report::fixed(zipf->alpha, 2)
                                       : "";
    const std::string plot = "plot '" + f.name + ".dat' using 1:2 with points pt 7 ps 0.6 title '|ΔPPL|'" +
                             (zipf ? ", " + fit + " with lines lw 2 title '" + fit_title + "'" : "") + "\n";
    f.script = "set multiplot layout 1,2 title 'Zipf plot of |ΔPPL| — " + m +
               "'\nset xlabel 'rank'\nset ylabel '|ΔPPL|'\nset title 'linear'\n" + plot +
               "set title 'log-log'\nset logscale xy\n" + plot + "unset multiplot\n";
    c.emit_figure(f);
  }
  if (cdoc) {
    const json& cum = cdoc->at("cumulative");
    report::Figure f;
    f.name = "exp10c_pareto_" + m;
    f.width = 1200;
    f.height = 500;
    f.data = {{f.name + ".dat", curve_dat(cum, "n_ablated")}};
    std::string vlines;
    for (const char* t : {"1.1", "1.5", "2.0"}) {
      const int n = thresholds.at(t).get<int>();
      vlines += "set arrow from " + std::to_string(n) + ", graph 0 to " + std::to_string(n) +
                ", graph 1 nohead dt 4 lw 1.5 lc rgb '#cc3311'\nset label '" + t + "×: " + std::to_string(n) +
                "' at " + std::to_string(n) + ", graph " + (t[2] == '1' ? "0.95" : t[2] == '5' ? "0.88" : "0.81") +
                " left offset 0.5,0 tc rgb '#cc3311'\n";
    }
    f.script = "set multiplot layout 1,2 title 'Cumulative zero-ablation (least important first) — " + m +
               "'\nset xlabel 'heads ablated'\nset grid\nset title 'perplexity'\nset logscale y\nset ylabel 'PPL'\n"
               "plot '" + f.name + ".dat' using 1:3 with linespoints pt 7 title 'PPL'\nunset logscale y\n"
               "set title 'ratio to baseline'\nset ylabel 'PPL / baseline'\nset logscale y\n" + vlines +
               "plot '" + f.name + ".dat' using 1:2 with linespoints pt 7 title 'ratio', 1.1 dt 2 title '1.1×', "
               "1.5 dt 2 title '1.5×', 2.0 dt 2 title '2.0×'\nunset multiplot\n";
    c.emit_figure(f);
  }
  {
    std::string dat = "# layer mean_dppl_pct max_dppl_pct\n";
    for (int l = 0; l < c.n_layer; ++l)
      dat += std::to_string(l) + " " + num(layer_mean[l] * 100) + " " + num(layer_max[l] * 100) + "\n";
    report::Figure f;
    f.name = "exp10d_layer_importance_" + m;
    f.data = {{f.name + ".dat", dat}};
    f.script = "set title 'Layer importance (zero-ablation) — " + m +
               "'\nset xlabel 'layer'\nset ylabel 'ΔPPL (%)'\nset xtics 1\nset grid ytics\n"
               "set style fill solid 0.6 border -1\nset boxwidth 0.7\nset logscale y\n"
               "plot '" + f.name + ".dat' using 1:($2 > 0 ? $2 : NaN) with boxes lc rgb '#4477aa' title 'mean ΔPPL', "
               "'' using 1:($3 > 0 ? $3 : NaN) with linespoints pt 7 lc rgb '#cc3311' title 'max ΔPPL'\n";
    c.emit_figure(f);
  }
  if (!gcorr.is_null()) {
    std::string dat = "# layer dg_dl layer_mean_dppl\n";
    for (int l = 0; l < c.n_layer; ++l) dat += std::to_string(l) + " " + num(dg_dl[l]) + " " + num(layer_mean[l]) + "\n";
    report::Figure f;
    f.name = "exp10d_g_correlation_" + m;
    f.data = {{f.name + ".dat", dat}};
    f.script = "set title 'Layer importance vs dg/d(l/L) — Pearson r = " +
               report::fixed(gcorr.at("corr_pearson").get<double>(), 2) + ", Spearman ρ = " +
               report::fixed(gcorr.at("corr_spearman").get<double>(), 2) +
               "'\nset xlabel 'dg/d(l/L)'\nset ylabel 'mean ΔPPL of layer'\nset grid\n"
               "plot '" + f.name + ".dat' using 2:3 with points pt 7 ps 1.2 notitle, "
               "'' using 2:3:(sprintf('L%d', $1)) with labels offset 1,0.5 notitle\n";
    c.emit_figure(f);
  }

  // ---- report
  namespace R = report;
  std::string md = "# exp10: head ablation (Phase 1) — " + m + "\n\n";
  md += "Zero-ablation of each attention head (hook_z = 0) on the first " +
        R::count(c.param_int("max_tokens", 0)) + " tokens of " + data_description(c.provenance()) + " (" +
        std::to_string(a.value("n_chunks", 0)) + " chunks of " + std::to_string(c.param_int("chunk_len", 0)) +
        ", " + R::count(a.value("n_predicted_tokens", 0)) + " predicted tokens).\n\n";
  md += "**Baseline PPL: " + R::fixed(a.at("baseline_ppl").get<double>(), 2) + "**\n\n";
  md += "## 10A/10B: single-head ablation\n\n### Top 10 heads (ΔPPL descending)\n\n";
  {
    R::Table t({"rank", "head", "ΔPPL", "PPL"}, "rrrr");
    for (size_t i = 0; i < std::min<size_t>(10, rank.size()); ++i)
      t.row({std::to_string(i + 1), head_name(rank[i].id()), R::pct(rank[i].delta, 1), R::fixed(rank[i].ppl, 2)});
    md += t.str() + "\n";
  }
  {
    const auto neg = harmful(rows);
    md += "### Heads whose ablation lowers PPL (ΔPPL < 0): " + std::to_string(neg.size()) + "\n\n";
    if (!neg.empty()) {
      R::Table t({"head", "ΔPPL", "PPL"}, "rrr");
      for (const auto& r : neg) t.row({head_name(r.id()), R::pct(r.delta, 2), R::fixed(r.ppl, 2)});
      md += t.str() + "\n";
    }
  }
  md += "### Statistics\n\n";
  {
    R::Table t({"statistic", "value"}, "lr");
    t.row({"|ΔPPL| < 1 %", std::to_string(n1) + "/" + std::to_string(N)});
    t.row({"|ΔPPL| < 10 %", std::to_string(n10) + "/" + std::to_string(N)});
    t.row({"ΔPPL < 0", std::to_string(nneg) + "/" + std::to_string(N)});
    t.row({"mean ΔPPL", R::pct(stats.at("mean_delta_ppl").get<double>(), 2)});
    t.row({"median ΔPPL", R::pct(stats.at("median_delta_ppl").get<double>(), 2)});
    t.row({"max ΔPPL", R::pct(stats.at("max_delta_ppl").get<double>(), 1) + " (" + head_name(rank.front().id()) + ")"});
    t.row({"min ΔPPL", R::pct(stats.at("min_delta_ppl").get<double>(), 2) + " (" + head_name(rank.back().id()) + ")"});
    md += t.str() + "\n";
  }
  md += "### Zipf fit |ΔPPL| = C · rank^(−α)\n\n";
  if (zipf)
    md += "C = " + R::fixed(zipf->C, 4) + ", α = " + R::fixed(zipf->alpha, 4) + " (R² = " + R::fixed(zipf->r2, 4) +
          ", " + std::to_string(zipf->n_points) + " nonzero points; TRF, p0 = [y₁, 1], α ∈ [0.01, 5])\n\n";
  else
    md += "No fit: " + zipf_why + "\n\n";
  if (cdoc) {
    md += "## 10C: cumulative ablation (|ΔPPL| ascending)\n\n";
    R::Table t({"heads ablated", "PPL", "ratio"}, "rrr");
    for (const auto& r : cdoc->at("cumulative"))
      t.row({std::to_string(r.at("n_ablated").get<int>()), R::fixed(r.at("ppl").get<double>(), 2),
             R::fixed(r.at("ratio").get<double>(), 3)});
    md += t.str() + "\n";
    R::Table th({"threshold", "max heads ablated"}, "lr");
    for (const char* k : {"1.1", "1.5", "2.0"}) th.row({std::string(k) + "×", std::to_string(thresholds.at(k).get<int>())});
    md += "Thresholds (largest measured step with ratio ≤ t):\n\n" + th.str() + "\n";
  }
  md += "## 10D: importance by layer\n\n";
  {
    R::Table t({"layer", "mean ΔPPL", "max ΔPPL"}, "rrr");
    for (int l = 0; l < c.n_layer; ++l) t.row({"L" + std::to_string(l), R::pct(layer_mean[l], 1), R::pct(layer_max[l], 1)});
    md += t.str() + "\n";
  }
  if (!gcorr.is_null())
    md += "Correlation of layer mean ΔPPL with dg/d(l/L) from exp3ef: Pearson r = " +
          R::fixed(gcorr.at("corr_pearson").get<double>(), 2) + " (p = " +
          R::fixed(gcorr.at("p_pearson").get<double>(), 2) + "), Spearman ρ = " +
          R::fixed(gcorr.at("corr_spearman").get<double>(), 2) + " (p = " +
          R::fixed(gcorr.at("p_spearman").get<double>(), 2) + ")\n\n";
  else
    md += "Correlation with g(l/L): " + gcorr_note + "\n\n";
  md += "## Success criteria\n\n";
  {
    R::Table t({"#", "criterion", "value", "result"}, "rlll");
    const int need = static_cast<int>(0.3 * N);
    t.row({"1", "|ΔPPL| < 10 % for ≥ " + std::to_string(need) + " heads (≥ 30 % removable)",
           std::to_string(n10) + "/" + std::to_string(N), R::pass_fail(n10 >= need)});
    t.row({"2", "Zipf α > 0.5", zipf ? R::fixed(zipf->alpha, 2) : "no fit", R::pass_fail(zipf && zipf->alpha > 0.5)});
    if (!gcorr.is_null()) {
      const double r = gcorr.at("corr_pearson").get<double>(), p = gcorr.at("p_pearson").get<double>();
      t.row({"3", "|r| > 0.5 and p < 0.05 (layer importance vs dg/dl)",
             "r = " + R::fixed(r, 2) + ", p = " + R::fixed(p, 2), R::pass_fail(std::fabs(r) > 0.5 && p < 0.05)});
    } else {
      t.row({"3", "|r| > 0.5 and p < 0.05 (layer importance vs dg/dl)", "n/a", "SKIPPED"});
    }
    md += t.str() + "\n";
  }
  md += c.figure_notes();
  json result = c.emit_json("exp10_" + m, doc);
  md += provenance_md(result.at("provenance"));
  c.emit_text("exp10_results_" + m + ".md", md, "text/markdown");
  result["report_notes"] = c.out.notes;
  return result;
}

}  // namespace spt::exp10::detail
