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

// The input named exactly `name`, ignoring the job's scope: σ job names
// (exp3ef/<label>, sigma/common.h: exp3ef_job) carry the model label and
// are never scoped, while Reduce::maybe reads names relative to the scope.
const json* unscoped_input(const JobSpec& job, const std::string& name) {
  for (const auto& in : job.inputs)
    if (in.name == name) return &in.result;
  return nullptr;
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

namespace {

// What the B, C and D figures and the report read of reduce_exp10's document.
struct Exp10View {
  const json& a;
  const json* cdoc;  // exp10c, when part C ran
  const std::vector<HeadDelta>& rows;  // exp10a, layer-major
  const std::vector<HeadDelta>& rank;  // ΔPPL descending
  const std::vector<double>& deltas;
  const json& stats;
  const analysis::ZipfFit* zipf;  // null: no fit (zipf_why says why)
  const std::string& zipf_why;
  const json& thresholds;  // of exp10c, when part C ran
  const std::vector<double>& layer_mean;
  const std::vector<double>& layer_max;
  const std::vector<double>& dg_dl;
  const json& gcorr;  // null: no correlation (gcorr_note says why)
  const std::string& gcorr_note;
  int n1, n10, nneg;
};

// exp10b_heatmap, exp10b_histogram, exp10b_zipf, exp10c_pareto,
// exp10d_layer_importance, exp10d_g_correlation.
void exp10_figures(Ctx& c, const Exp10View& v) {
  namespace R = report;
  using S = R::Series;
  const std::string& m = c.label;
  std::vector<std::vector<double>> heat(c.n_layer, std::vector<double>(c.n_head));
  for (const auto& r : v.rows) heat[r.layer][r.head] = r.delta;
  c.emit_plot({"exp10b_heatmap_" + m, "Zero-ablation ΔPPL per head — " + m,
               {R::heatmap_panel("", heat, R::count_axis("layer"), R::count_axis("head"), R::dppl_axis())}});

  R::Panel hist = R::histogram_panel("", v.deltas, 30, R::dppl_axis(), R::count_axis("heads"));
  hist.vlines = {0, 0.1};
  c.emit_plot({"exp10b_histogram_" + m, "Distribution of zero-ablation ΔPPL — " + m, {hist}});

  {
    S pts{"|ΔPPL|"}, fit;
    pts.style = S::Style::points;
    std::vector<double> y;
    for (const auto& r : v.rank) y.push_back(std::fabs(r.delta));
    std::sort(y.begin(), y.end(), std::greater<double>());
    for (size_t i = 0; i < y.size(); ++i)
      if (y[i] > 0) pts.x.push_back(static_cast<double>(i + 1)), pts.y.push_back(y[i]);
    if (v.zipf) {
      fit.label = "fit C = " + R::fixed(v.zipf->C, 2) + ", α = " + R::fixed(v.zipf->alpha, 2);
      fit.style = S::Style::line;
      for (double x : pts.x) fit.x.push_back(x), fit.y.push_back(v.zipf->C * std::pow(x, -v.zipf->alpha));
    }
    std::vector<S> series = {pts};
    if (v.zipf) series.push_back(fit);
    R::Axis rank_log = R::count_axis("rank");
    rank_log.scale = R::Scale::log;
    c.emit_plot({"exp10b_zipf_" + m, "Zipf plot of |ΔPPL| — " + m,
                 {R::line_panel("linear", R::count_axis("rank"), dppl_axis("|ΔPPL|"), series),
                  R::line_panel("log-log", rank_log, dppl_axis("|ΔPPL|", R::Scale::log), series)}});
  }
  if (v.cdoc) {
    const json& cum = v.cdoc->at("cumulative");
    R::Panel ppl = R::line_panel("perplexity", R::count_axis("heads ablated"), R::Axis{"PPL", R::Unit::plain, R::Scale::log},
                                 {curve_series(cum, "n_ablated", "PPL", "ppl")});
    // Thresholds: dashed at their steps, named in the title (labels beside
    // the lines would leave the panel when a threshold is the last step).
    std::string thr;
    std::vector<double> at;
    for (const char* t : {"1.1", "1.5", "2.0"}) {
      at.push_back(v.thresholds.at(t).get<int>());
      thr += std::string(thr.empty() ? "" : ", ") + t + "×: " + std::to_string(v.thresholds.at(t).get<int>());
    }
    R::Panel ratio = ratio_panel("ratio to baseline (thresholds " + thr + ")", R::count_axis("heads ablated"),
                                 {curve_series(cum, "n_ablated", "ratio")}, R::Scale::log);
    ratio.vlines = at;
    c.emit_plot({"exp10c_pareto_" + m, "Cumulative zero-ablation (least important first) — " + m, {ppl, ratio}});
  }
  {
    std::vector<std::string> layers;
    for (int l = 0; l < c.n_layer; ++l) layers.push_back("L" + std::to_string(l));
    c.emit_plot({"exp10d_layer_importance_" + m, "Layer importance (zero-ablation) — " + m,
                 {R::bar_panel("", layers, {S{"mean ΔPPL", {}, v.layer_mean}, S{"max ΔPPL", {}, v.layer_max}},
                               R::dppl_axis(R::Scale::log), "layer")}});
  }
  if (!v.gcorr.is_null()) {
    S pts;
    for (int l = 0; l < c.n_layer; ++l) pts.point_labels.push_back("L" + std::to_string(l));
    pts.x = v.dg_dl;
    pts.y = v.layer_mean;
    c.emit_plot({"exp10d_g_correlation_" + m,
                 "Layer importance vs dg/d(l/L) — Pearson r = " + R::fixed(v.gcorr.at("corr_pearson").get<double>(), 2) +
                     ", Spearman ρ = " + R::fixed(v.gcorr.at("corr_spearman").get<double>(), 2),
                 {R::scatter_panel("", R::Axis{"dg/d(l/L)"}, dppl_axis("mean ΔPPL of layer"), {pts})}});
  }
}

std::string exp10_report(Ctx& c, const Exp10View& v) {
  namespace R = report;
  const std::string& m = c.label;
  const json& a = v.a;
  const auto& rank = v.rank;
  const int N = static_cast<int>(v.rows.size());
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
    const auto neg = harmful(v.rows);
    md += "### Heads whose ablation lowers PPL (ΔPPL < 0): " + std::to_string(neg.size()) + "\n\n";
    if (!neg.empty()) {
      R::Table t({"head", "ΔPPL", "PPL"}, "rrr");
      for (const auto& r : neg) t.row({head_name(r.id()), R::pct(r.delta, 2), R::fixed(r.ppl, 2)});
      md += t.str() + "\n";
    }
  }
  md += "### Statistics\n\n";
  {
    const json& st = v.stats;
    R::Table t({"statistic", "value"}, "lr");
    t.row({"|ΔPPL| < 1 %", std::to_string(v.n1) + "/" + std::to_string(N)});
    t.row({"|ΔPPL| < 10 %", std::to_string(v.n10) + "/" + std::to_string(N)});
    t.row({"ΔPPL < 0", std::to_string(v.nneg) + "/" + std::to_string(N)});
    t.row({"mean ΔPPL", R::pct(st.at("mean_delta_ppl").get<double>(), 2)});
    t.row({"median ΔPPL", R::pct(st.at("median_delta_ppl").get<double>(), 2)});
    t.row({"max ΔPPL", R::pct(st.at("max_delta_ppl").get<double>(), 1) + " (" + head_name(rank.front().id()) + ")"});
    t.row({"min ΔPPL", R::pct(st.at("min_delta_ppl").get<double>(), 2) + " (" + head_name(rank.back().id()) + ")"});
    md += t.str() + "\n";
  }
  md += "### Zipf fit |ΔPPL| = C · rank^(−α)\n\n";
  if (v.zipf)
    md += "C = " + R::fixed(v.zipf->C, 4) + ", α = " + R::fixed(v.zipf->alpha, 4) + " (R² = " +
          R::fixed(v.zipf->r2, 4) + ", " + std::to_string(v.zipf->n_points) +
          " nonzero points; TRF, p0 = [y₁, 1], α ∈ [0.01, 5])\n\n";
  else
    md += "No fit: " + v.zipf_why + "\n\n";
  if (v.cdoc) {
    md += "## 10C: cumulative ablation (|ΔPPL| ascending)\n\n";
    R::Table t({"heads ablated", "PPL", "ratio"}, "rrr");
    for (const auto& r : v.cdoc->at("cumulative"))
      t.row({std::to_string(r.at("n_ablated").get<int>()), R::fixed(r.at("ppl").get<double>(), 2),
             R::fixed(r.at("ratio").get<double>(), 3)});
    md += t.str() + "\n";
    R::Table th({"threshold", "max heads ablated"}, "lr");
    for (const char* k : {"1.1", "1.5", "2.0"})
      th.row({std::string(k) + "×", std::to_string(v.thresholds.at(k).get<int>())});
    md += "Thresholds (largest measured step with ratio ≤ t):\n\n" + th.str() + "\n";
  }
  md += "## 10D: importance by layer\n\n";
  {
    R::Table t({"layer", "mean ΔPPL", "max ΔPPL"}, "rrr");
    for (int l = 0; l < c.n_layer; ++l)
      t.row({"L" + std::to_string(l), R::pct(v.layer_mean[l], 1), R::pct(v.layer_max[l], 1)});
    md += t.str() + "\n";
  }
  const json& g = v.gcorr;
  if (!g.is_null())
    md += "Correlation of layer mean ΔPPL with dg/d(l/L) from exp3ef: Pearson r = " +
          R::fixed(g.at("corr_pearson").get<double>(), 2) + " (p = " + R::fixed(g.at("p_pearson").get<double>(), 2) +
          "), Spearman ρ = " + R::fixed(g.at("corr_spearman").get<double>(), 2) + " (p = " +
          R::fixed(g.at("p_spearman").get<double>(), 2) + ")\n\n";
  else
    md += "Correlation with g(l/L): " + v.gcorr_note + "\n\n";
  md += "## Success criteria\n\n";
  {
    R::Table t({"#", "criterion", "value", "result"}, "rlll");
    const int need = static_cast<int>(0.3 * N);
    t.row({"1", "|ΔPPL| < 10 % for ≥ " + std::to_string(need) + " heads (≥ 30 % removable)",
           std::to_string(v.n10) + "/" + std::to_string(N), R::pass_fail(v.n10 >= need)});
    t.row({"2", "Zipf α > 0.5", v.zipf ? R::fixed(v.zipf->alpha, 2) : "no fit",
           R::pass_fail(v.zipf && v.zipf->alpha > 0.5)});
    if (!g.is_null()) {
      const double r = g.at("corr_pearson").get<double>(), p = g.at("p_pearson").get<double>();
      t.row({"3", "|r| > 0.5 and p < 0.05 (layer importance vs dg/dl)",
             "r = " + R::fixed(r, 2) + ", p = " + R::fixed(p, 2), R::pass_fail(std::fabs(r) > 0.5 && p < 0.05)});
    } else {
      t.row({"3", "|r| > 0.5 and p < 0.05 (layer importance vs dg/dl)", "n/a", "SKIPPED"});
    }
    md += t.str() + "\n";
  }
  return md + figures_section(c);
}

}  // namespace

json reduce_exp10(Ctx& c) {
  const json& a = c.input("a/reduce");
  const json* cdoc = c.maybe("c/reduce");
  // B and D are pure functions of A's table: always computed, so a
  // submission of "a" alone still gets the full summary.
  const auto rows = read_head_table(a);
  const std::string m = c.label;

  // The original writes this document in the run that computed A, with
  // the fresh (unrounded) baseline; exp10a_{m}.json keeps the rounded one.
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", baseline_exact(a)},
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
  // Unrounded, as the original writes them (numpy over the 6-dp ΔPPLs).
  json stats = {{"n_negligible_1pct", n1},
                {"n_small_10pct", n10},
                {"n_negative", nneg},
                {"mean_delta_ppl", np_mean(deltas)},
                {"median_delta_ppl", analysis::median(deltas)},
                {"max_delta_ppl", analysis::max_of(deltas)},
                {"min_delta_ppl", analysis::min_of(deltas)}};
  std::string zipf_why;
  const auto zipf = analysis::zipf_fit(deltas, &zipf_why);
  json ranking = json::array();
  for (size_t i = 0; i < rank.size(); ++i)
    ranking.push_back({{"rank", i + 1},
                       {"layer", rank[i].layer},
                       {"head", rank[i].head},
                       {"ppl_ablated", rank[i].ppl},
                       {"delta_ppl", rank[i].delta}});
  json zipf_json = zipf ? json{{"C", zipf->C}, {"alpha", zipf->alpha}, {"r2", zipf->r2},
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
    layer_mean[l] = np_mean(v);  // unrounded, as the original writes and correlates them
    layer_max[l] = analysis::max_of(v);
  }
  json gcorr = nullptr;
  std::string gcorr_note;
  std::vector<double> dg_dl;
  // g(l/L) comes through the job graph: the plan makes exp3ef/<label> (the
  // σ family's exp3ef document: g_mean, l_norm) an input of this report
  // unless it was submitted with exp3ef=none.
  const std::string g_source = "exp3ef/" + c.label;
  const bool g_wanted = c.param("exp3ef") != "none";
  const json* g_doc = g_wanted ? unscoped_input(c.job, g_source) : nullptr;
  {
    if (!g_wanted) {
      gcorr_note = "skipped: exp3ef=none";
    } else if (!g_doc) {
      gcorr_note = "skipped: no exp3ef result for this model (input " + g_source + " absent; plan with exp3ef=graph)";
    } else if (c.n_layer < 3) {
      gcorr_note = "skipped: a correlation needs at least 3 layers (this model has " + std::to_string(c.n_layer) + ")";
    } else {
      try {
        const json& g = *g_doc;
        const auto gm = g.at("g_mean").get<std::vector<double>>();
        const auto ln = g.at("l_norm").get<std::vector<double>>();
        if (gm.size() != ln.size() || static_cast<int>(gm.size()) != c.n_layer + 1)
          throw std::runtime_error("g_mean/l_norm have " + std::to_string(gm.size()) + "/" +
                                   std::to_string(ln.size()) + " points; this model needs " +
                                   std::to_string(c.n_layer + 1));
        for (int l = 0; l < c.n_layer; ++l) dg_dl.push_back((gm[l + 1] - gm[l]) / (ln[l + 1] - ln[l]));
        const auto pr = analysis::pearson(dg_dl, layer_mean);
        const auto sr = analysis::spearman(dg_dl, layer_mean);
        gcorr = {{"dg_dl", dg_dl},
                 {"corr_pearson", pr.r},
                 {"p_pearson", pr.p},
                 {"corr_spearman", sr.r},
                 {"p_spearman", sr.p}};
      } catch (const std::exception& e) {
        gcorr_note = std::string("skipped: exp3ef result unusable: ") + e.what();
      }
    }
    doc["exp10d"] = {{"layer_mean_dppl", layer_mean}, {"layer_max_dppl", layer_max}, {"g_correlation", gcorr}};
    if (!gcorr_note.empty()) doc["exp10d"]["g_correlation_note"] = gcorr_note;
    doc["exp10d"]["g_source"] = g_doc ? json(g_source) : json(nullptr);  // the input g(l/L) was read from
  }

  // ---- figures, report
  const Exp10View v{a,          cdoc,      rows,      rank,    deltas, stats, zipf ? &*zipf : nullptr, zipf_why,
                    thresholds, layer_mean, layer_max, dg_dl, gcorr,  gcorr_note, n1, n10, nneg};
  exp10_figures(c, v);
  std::string md = exp10_report(c, v);
  json result = c.emit_json("exp10_" + m, doc);
  md += provenance_md(result.at("provenance"));
  c.emit_text("exp10_results_" + m + ".md", md, "text/markdown");
  result["report_notes"] = c.out.notes;
  return result;
}

}  // namespace spt::exp10::detail
