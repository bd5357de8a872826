// exp10b E–H (spec §10.2): mean-ablation table, L0-protected cumulative
// curves, the three-curve comparison, harmful heads; phase-1.5 summary,
// report and figures. Every ratio here is against exp10a's rounded baseline.
#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "analysis/stats.h"
#include "exp10/reduce_internal.h"
#include "report/markdown.h"

namespace spt::exp10::detail {

namespace {

double rounded_baseline(const json& a) { return a.at("baseline_ppl").get<double>(); }

std::map<int, double> ppl_map(const std::map<int, PplPoint>& steps) {
  std::map<int, double> m;
  for (const auto& [n, p] : steps) m[n] = p.ppl;
  return m;
}

// Ratio at step n of a cumulative table, or NaN.
double ratio_at(const json& rows, const char* key, int n) {
  for (const auto& r : rows)
    if (r.at(key).get<int>() == n) return r.at("ratio").get<double>();
  return std::nan("");
}

// exp10e_zero_vs_mean_scatter, exp10f_pareto_l0protected,
// exp10g_three_curves, exp10h_harmful_heads: each when its parts ran.
void exp10b_figures(Ctx& c, const json& a, const json* cd, const json* ed, const json* fd, const json* gd,
                    const json* hd) {
  namespace R = report;
  using S = R::Series;
  const std::string& m = c.label;
  if (ed) {  // layers 1+: layer 0's outliers would squash the rest
    std::map<HeadId, double> mean;
    for (const auto& r : read_head_table(*ed)) mean[r.id()] = r.delta;
    std::vector<S> by_layer;
    double lo = 0, hi = 0;
    for (int l = 1; l < c.n_layer; ++l) {
      S s{"L" + std::to_string(l)};
      s.color = layer_color(l - 1, c.n_layer - 1);
      by_layer.push_back(s);
    }
    for (const auto& r : read_head_table(a))
      if (r.layer >= 1) {
        S& s = by_layer[r.layer - 1];
        s.x.push_back(r.delta);
        s.y.push_back(mean[r.id()]);
        lo = std::min({lo, r.delta, mean[r.id()]});
        hi = std::max({hi, r.delta, mean[r.id()]});
      }
    S diag{"y = x", {lo, hi}, {lo, hi}, S::Style::dashed, {}, {}, "#888888"};
    by_layer.push_back(diag);
    c.emit_plot({"exp10e_zero_vs_mean_scatter_" + m, "Zero- vs mean-ablation ΔPPL, layers 1+ — " + m,
                 {R::scatter_panel("", dppl_axis("ΔPPL zero-ablation"), dppl_axis("ΔPPL mean-ablation"), by_layer)}});
  }
  if (fd)
    c.emit_plot({"exp10f_pareto_l0protected_" + m, "Cumulative mean-ablation with layer 0 protected — " + m,
                 {ratio_panel("", R::count_axis("heads ablated (layers 1+)"),
                              {curve_series(fd->at("cumulative_mean"), "n_ablated", "mean-ablation")})}});
  if (gd) {
    std::vector<std::pair<const json*, std::string>> curves;
    if (cd) curves.push_back({&cd->at("cumulative"), "(a) zero, all heads"});
    curves.push_back({&gd->at("cumulative"), "(b) zero, layers 1+"});
    if (fd) curves.push_back({&fd->at("cumulative_mean"), "(c) mean, layers 1+"});
    std::vector<S> ppl, ratio;
    for (const auto& [rows, label] : curves) {
      ppl.push_back(curve_series(*rows, "n_ablated", label, "ppl"));
      ratio.push_back(curve_series(*rows, "n_ablated", label));
    }
    R::Panel rp = ratio_panel("ratio", R::count_axis("heads ablated"), ratio);
    rp.y.min = 0.95;  // spec §10.2: ratio axis 0.95–3.5
    rp.y.max = 3.5;
    c.emit_plot({"exp10g_three_curves_" + m, "Cumulative ablation: three curves — " + m,
                 {R::line_panel("perplexity", R::count_axis("heads ablated"), R::Axis{"PPL", R::Unit::plain, R::Scale::log},
                                ppl),
                  rp}});
  }
  if (hd && hd->contains("cumulative_harmful_first")) {
    std::vector<std::string> heads;
    S zero{"ΔPPL zero-ablation"};
    for (const auto& r : hd->at("harmful_zero")) {
      heads.push_back(head_name(r.at("layer").get<int>(), r.at("head").get<int>()));
      zero.y.push_back(r.at("delta_ppl").get<double>());
    }
    R::Panel bars = R::bar_panel("heads with ΔPPL zero < 0", heads, {zero}, R::dppl_axis());
    bars.key = "off";
    std::vector<S> curves = {curve_series(hd->at("cumulative_harmful_first"), "n_additional", "harmful first")};
    if (fd) curves.push_back(curve_series(fd->at("cumulative_mean"), "n_ablated", "standard mean curve (10F)"));
    c.emit_plot({"exp10h_harmful_heads_" + m, "Harmful heads — " + m,
                 {bars, R::line_panel("harmful first vs standard mean curve", R::count_axis("additional heads"),
                                      ratio_axis(), curves)}});
  }
}

}  // namespace

json reduce_e(Ctx& c) {
  const json& a = c.input("a/reduce");
  const double base = rounded_baseline(a);
  std::map<HeadId, PplPoint> got;
  for (const auto& [key, res] : c.with_prefix("e/head/")) got[parse_head(key)] = read_ppl(*res, "e/head/" + key);
  json results = json::array();
  for (const auto& h : all_heads(c.n_layer, c.n_head)) {
    const auto it = got.find(h);
    if (it == got.end()) throw std::runtime_error("exp10e: no result for head " + head_name(h));
    results.push_back({{"layer", h.layer},
                       {"head", h.head},
                       {"ppl_ablated", r4(it->second.ppl)},
                       {"delta_ppl", r6((it->second.ppl - base) / base)}});
  }
  if (got.size() != results.size()) throw std::runtime_error("exp10e: more head results than heads");
  json doc = {{"model", c.param("model")}, {"baseline_ppl", base},   {"n_layers", c.n_layer},
              {"n_heads", c.n_head},       {"results", results}};
  return c.emit_json("exp10e_mean_ablation_" + c.label, doc);
}

json reduce_f(Ctx& c) {
  const json& e = c.input("e/reduce");
  const double base = rounded_baseline(e);
  const auto order = named_order("mean_l0prot", nullptr, e, nullptr);
  const auto steps = c.steps("f/step/");
  require_steps(steps, step_list(Steps::fine, static_cast<int>(order.size())), "exp10f");
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", base},
              {"ablation_order", head_rows(order, false)},
              {"cumulative_mean", cumulative_rows(ppl_map(steps), base, base, "n_ablated")}};
  return c.emit_json("exp10f_cumulative_l0protected_" + c.label, doc);
}

json reduce_g(Ctx& c) {
  const json& a = c.input("a/reduce");
  const double base = rounded_baseline(a);
  const auto order = named_order("zero_l0prot", a, nullptr, nullptr);
  const auto steps = c.steps("g/step/");
  require_steps(steps, step_list(Steps::fine, static_cast<int>(order.size())), "exp10g");
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", base},
              {"ablation_order", head_rows(order, false)},
              {"cumulative", cumulative_rows(ppl_map(steps), base, base, "n_ablated")}};
  return c.emit_json("exp10g_zero_l0prot_" + c.label, doc);
}

json reduce_h(Ctx& c) {
  const json& a = c.input("a/reduce");
  const json& e = c.input("e/reduce");
  const double base = rounded_baseline(a);
  const auto hz = harmful(read_head_table(a));
  const auto hm = harmful(read_head_table(e));
  if (hz.empty()) {
    // As the original: no joint tests, no harmful-first curve, and no
    // exp10h_harmful_heads file; exp10_phase1.5's exp10h holds the two lists.
    for (const char* in : {"h/joint_zero", "h/joint_mean"})
      if (!read_ppl(c.input(in), in).skipped)
        throw std::runtime_error(std::string("exp10h: ") + in + " ran although no head has ΔPPL_zero < 0");
    if (!c.steps("h/step/").empty())
      throw std::runtime_error("exp10h: a harmful-first step ran although no head has ΔPPL_zero < 0");
    json doc = {{"harmful_zero", json::array()},
                {"harmful_mean", head_rows(hm, false)},
                {"joint_tests", "skipped: no harmful heads (zero-ablation ΔPPL < 0)"}};
    doc["provenance"] = c.provenance();
    return doc;
  }
  const PplPoint jz = read_ppl(c.input("h/joint_zero"), "h/joint_zero");
  const PplPoint jm = read_ppl(c.input("h/joint_mean"), "h/joint_mean");
  const auto rest = named_order("harmful_rest", a, e, nullptr);
  auto steps = c.steps("h/step/");
  require_steps(steps, step_list(Steps::fine, static_cast<int>(rest.size())), "exp10h");
  double sum_individual = 0;
  for (const auto& r : hz) sum_individual += r.delta;
  json cum = json::array();
  cum.push_back({{"n_additional", 0},
                 {"n_total_ablated", hz.size()},
                 {"ppl", r4(jz.ppl)},
                 {"ratio", r4(jz.ppl / base)}});
  for (const auto& [n, p] : steps) {
    if (n == 0) continue;
    cum.push_back({{"n_additional", n},
                   {"n_total_ablated", static_cast<int>(hz.size()) + n},
                   {"ppl", r4(p.ppl)},
                   {"ratio", r4(p.ppl / base)}});
  }
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", base},
              {"harmful_zero", head_rows(hz, false)},
              {"harmful_mean", head_rows(hm, false)},
              {"harmful_zero_sum_delta", r6(sum_individual)},
              {"joint_zero_ppl", r4(jz.ppl)},
              {"joint_zero_delta", r6((jz.ppl - base) / base)},
              {"joint_mean_ppl", r4(jm.ppl)},
              {"joint_mean_delta", r6((jm.ppl - base) / base)},
              {"cumulative_harmful_first", cum}};
  return c.emit_json("exp10h_harmful_heads_" + c.label, doc);
}

json reduce_exp10b(Ctx& c) {
  namespace R = report;
  const json& a = c.input("a/reduce");
  const json* cd = c.maybe("c/reduce");
  const json* ed = c.maybe("e/reduce");
  const json* fd = c.maybe("f/reduce");
  const json* gd = c.maybe("g/reduce");
  const json* hd = c.maybe("h/reduce");
  const std::string m = c.label;
  const double base = rounded_baseline(a);
  json doc = {{"model", c.param("model")},
              {"baseline_ppl", base},
              {"max_tokens", c.param_int("max_tokens", 0)},
              {"phase", "1.5"}};
  std::string md = "# exp10b: mean-ablation, L0 protection, harmful heads (Phase 1.5) — " + m + "\n\n";
  md += "Baseline PPL " + R::fixed(base, 2) + " (exp10a, rounded as stored). Mean-ablation replaces a head's hook_z " +
        "by its mean over every position of the evaluation chunks.\n\n";

  const auto zero = read_head_table(a);
  if (ed) {
    const auto mean = read_head_table(*ed);
    auto stats = [](const std::vector<HeadDelta>& rows) {
      std::vector<double> d;
      int n1 = 0, n10 = 0, neg = 0;
      for (const auto& r : rows) {
        d.push_back(r.delta);
        n1 += std::fabs(r.delta) < 0.01;
        n10 += std::fabs(r.delta) < 0.10;
        neg += r.delta < 0;
      }
      return std::make_tuple(n1, n10, neg, analysis::mean(d), analysis::median(d), ranking_desc(rows).front());
    };
    const auto [m1, m10, mneg, mmean, mmed, mtop] = stats(mean);
    const auto [z1, z10, zneg, zmean, zmed, ztop] = stats(zero);
    const std::string N = "/" + std::to_string(mean.size());
    md += "## 10E: mean-ablation vs zero-ablation\n\n";
    R::Table t({"statistic", "mean-ablation", "zero-ablation"}, "lrr");
    t.row({"|ΔPPL| < 1 %", std::to_string(m1) + N, std::to_string(z1) + N});
    t.row({"|ΔPPL| < 10 %", std::to_string(m10) + N, std::to_string(z10) + N});
    t.row({"ΔPPL < 0", std::to_string(mneg) + N, std::to_string(zneg) + N});
    t.row({"mean ΔPPL", R::pct(mmean, 2), R::pct(zmean, 2)});
    t.row({"median ΔPPL", R::pct(mmed, 2), R::pct(zmed, 2)});
    t.row({"max ΔPPL", R::pct(mtop.delta, 1) + " (" + head_name(mtop.id()) + ")",
           R::pct(ztop.delta, 1) + " (" + head_name(ztop.id()) + ")"});
    md += t.str() + "\nmean(ΔPPL_mean) / mean(ΔPPL_zero) = " + R::fixed(zmean != 0 ? mmean / zmean : NAN, 3) + "\n\n";

    std::map<HeadId, double> zmap;
    for (const auto& r : zero) zmap[r.id()] = r.delta;
    md += "### Top 10 by mean-ablation ΔPPL\n\n";
    R::Table top({"head", "mean-ablation", "zero-ablation"}, "lrr");
    const auto mrank = ranking_desc(mean);
    for (size_t i = 0; i < std::min<size_t>(10, mrank.size()); ++i)
      top.row({head_name(mrank[i].id()), R::pct(mrank[i].delta, 2), R::pct(zmap[mrank[i].id()], 2)});
    md += top.str() + "\n";
    {
      std::map<HeadId, double> mm;
      for (const auto& r : mean) mm[r.id()] = r.delta;
      const double zd = ztop.delta, mdl = mm[ztop.id()];
      md += "Most important head under zero-ablation, " + head_name(ztop.id()) + ": zero " + R::pct(zd, 1) +
            ", mean " + R::pct(mdl, 2) + " (" + R::fixed(zd / std::max(std::fabs(mdl), 1e-8), 1) + "×).\n\n";
      std::vector<std::string> flips;
      for (const auto& r : zero)
        if ((r.delta > 0) != (mm[r.id()] > 0) && r.delta != 0 && mm[r.id()] != 0)
          flips.push_back(head_name(r.id()) + " (" + R::pct(r.delta, 2) + " → " + R::pct(mm[r.id()], 2) + ")");
      md += "Sign flips between zero and mean ablation: " + std::to_string(flips.size());
      if (!flips.empty()) {
        md += " — ";
        for (size_t i = 0; i < flips.size() && i < 12; ++i) md += (i ? ", " : "") + flips[i];
        if (flips.size() > 12) md += ", …";
      }
      md += "\n\n### Layer means\n\n";
      R::Table lt({"layer", "mean-abl", "zero-abl", "ratio"}, "rrrr");
      for (int l = 0; l < c.n_layer; ++l) {
        std::vector<double> dm, dz;
        for (const auto& r : mean)
          if (r.layer == l) dm.push_back(r.delta);
        for (const auto& r : zero)
          if (r.layer == l) dz.push_back(r.delta);
        const double am = analysis::mean(dm), az = analysis::mean(dz);
        lt.row({"L" + std::to_string(l), R::pct(am, 2), R::pct(az, 2), R::fixed(az != 0 ? am / az : NAN, 2)});
      }
      md += lt.str() + "\n";
    }
  }

  json f_thr, g_thr_zero_all, g_thr_l0, g_thr_mean;
  if (fd) {
    const json& cm = fd->at("cumulative_mean");
    f_thr = thresholds_of(cm, "n_ablated");
    doc["exp10f"] = {{"cumulative_mean", cm}, {"thresholds_mean", f_thr}};
    md += "## 10F: cumulative mean-ablation, layers 1+ (|ΔPPL_mean| ascending)\n\n";
    R::Table t({"heads", "PPL", "ratio"}, "rrr");
    for (const auto& r : cm)
      t.row({std::to_string(r.at("n_ablated").get<int>()), R::fixed(r.at("ppl").get<double>(), 2),
             R::fixed(r.at("ratio").get<double>(), 3)});
    md += t.str() + "\n";
  }
  if (gd) {
    json g = json::object();
    if (cd) g["thresholds_zero_all"] = g_thr_zero_all = thresholds_of(cd->at("cumulative"), "n_ablated");
    g["thresholds_zero_l0prot"] = g_thr_l0 = thresholds_of(gd->at("cumulative"), "n_ablated");
    if (fd) g["thresholds_mean_l0prot"] = g_thr_mean = f_thr;
    doc["exp10g"] = g;
    md += "## 10G: three curves\n\n";
    R::Table t({"threshold", "zero, all heads", "zero, layers 1+", "mean, layers 1+"}, "lrrr");
    for (const char* k : {"1.1", "1.5", "2.0"})
      t.row({std::string(k) + "×", cd ? std::to_string(g_thr_zero_all.at(k).get<int>()) : "n/a",
             std::to_string(g_thr_l0.at(k).get<int>()), fd ? std::to_string(g_thr_mean.at(k).get<int>()) : "n/a"});
    md += t.str() + "\n";
    if (fd) {
      md += "Zero − mean ratio gap at common steps (layers 1+):\n\n";
      R::Table gap({"heads", "zero ratio", "mean ratio", "gap"}, "rrrr");
      for (const auto& r : gd->at("cumulative")) {
        const int n = r.at("n_ablated").get<int>();
        const double rm = ratio_at(fd->at("cumulative_mean"), "n_ablated", n);
        if (std::isnan(rm)) continue;
        const double rz = r.at("ratio").get<double>();
        gap.row({std::to_string(n), R::fixed(rz, 3), R::fixed(rm, 3), R::fixed(rz - rm, 3)});
      }
      md += gap.str() + "\n";
    }
  }
  if (hd) {
    json h = *hd;
    h.erase("provenance");
    doc["exp10h"] = h;
    md += "## 10H: harmful heads\n\n";
    R::Table t({"head", "ΔPPL zero"}, "lr");
    for (const auto& r : hd->at("harmful_zero"))
      t.row({head_name(r.at("layer").get<int>(), r.at("head").get<int>()), R::pct(r.at("delta_ppl").get<double>(), 2)});
    md += "Heads with ΔPPL_zero < 0: " + std::to_string(hd->at("harmful_zero").size()) + "\n\n";
    const bool joint = hd->contains("joint_zero_ppl");  // absent: no harmful head, joint tests skipped
    if (!joint)
      md += "No harmful heads: the joint tests and the harmful-first curve are skipped, as in the original.\n\n";
    else
      md += t.str() + "\n" + "Joint zero-ablation of these heads: PPL " +
            R::fixed(hd->at("joint_zero_ppl").get<double>(), 2) + ", ΔPPL " +
            R::pct(hd->at("joint_zero_delta").get<double>(), 2) + " (sum of individual ΔPPL " +
            R::pct(hd->at("harmful_zero_sum_delta").get<double>(), 2) + "); joint mean-ablation: PPL " +
            R::fixed(hd->at("joint_mean_ppl").get<double>(), 2) + ", ΔPPL " +
            R::pct(hd->at("joint_mean_delta").get<double>(), 2) + ".\n\n";
    md += "Heads with ΔPPL_mean < 0: " + std::to_string(hd->at("harmful_mean").size());
    {
      const auto& hm = hd->at("harmful_mean");
      for (size_t i = 0; i < hm.size() && i < 5; ++i)
        md += std::string(i ? ", " : " — ") + head_name(hm[i].at("layer").get<int>(), hm[i].at("head").get<int>()) +
              " " + R::pct(hm[i].at("delta_ppl").get<double>(), 2);
    }
    md += "\n\n";
    if (joint) {
      md += "\"Harmful first\" (harmful heads zeroed, then layer-1+ heads mean-ablated by |ΔPPL_mean|):\n\n";
      R::Table cum({"additional", "total ablated", "PPL", "ratio"}, "rrrr");
      for (const auto& r : hd->at("cumulative_harmful_first"))
        cum.row({std::to_string(r.at("n_additional").get<int>()), std::to_string(r.at("n_total_ablated").get<int>()),
                 R::fixed(r.at("ppl").get<double>(), 2), R::fixed(r.at("ratio").get<double>(), 3)});
      md += cum.str() + "\n";
    }
  }
  exp10b_figures(c, a, cd, ed, fd, gd, hd);
  md += figures_section(c);
  json result = c.emit_json("exp10_phase1.5_" + m, doc);
  md += provenance_md(result.at("provenance"));
  c.emit_text("exp10b_results_" + m + ".md", md, "text/markdown");
  result["report_notes"] = c.out.notes;
  return result;
}

}  // namespace spt::exp10::detail
