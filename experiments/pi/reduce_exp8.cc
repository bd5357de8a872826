// exp8 (spec §8): A the erf width against 1/√π (likelihood ratio, χ²(1)),
// B four π-shaped models against exp3ef's candidates by BIC, C the rotation
// angles of the residual stream between depths.
#include <algorithm>
#include <cmath>

#include "analysis/fit_models.h"
#include "pi/common.h"
#include "pi/reduce_internal.h"
#include "report/markdown.h"
#include "sigma/common.h"

namespace spt::pi::detail {

namespace {

report::Axis lnorm_axis() {
  report::Axis a;
  a.label = "l/L";
  return a;
}

std::vector<double> grid(double a, double b, int n = 200) { return analysis::linspace(a, b, n); }

std::vector<double> erf_curve(const std::vector<double>& x, double s) {
  std::vector<double> y;
  for (double v : x) y.push_back(std::erf(v / (std::max(s, 1e-10) * std::sqrt(2.0))));
  return y;
}

json part_a(Ctx& c, const std::vector<double>& x, const std::vector<double>& g) {
  const ErfTest t = erf_width_test(x, g);
  std::vector<double> res_free, res_fixed;
  const auto yf = erf_curve(x, t.sigma_free), y0 = erf_curve(x, kSigmaPi);
  for (size_t i = 0; i < x.size(); ++i) {
    res_free.push_back(g[i] - yf[i]);
    res_fixed.push_back(g[i] - y0[i]);
  }
  const auto xg = grid(0, 1);
  auto p1 = report::line_panel(
      "g_mean and erf fits", lnorm_axis(), {"g"},
      {{"g_mean", x, g, report::Series::Style::points},
       {"free σ = " + report::fixed(t.sigma_free, 4), xg, erf_curve(xg, t.sigma_free), report::Series::Style::line},
       {"fixed σ = 1/√π", xg, erf_curve(xg, kSigmaPi), report::Series::Style::dashed}});
  auto p2 = report::line_panel("residuals", lnorm_axis(), {"g − fit"},
                               {{"free", x, res_free, report::Series::Style::bars},
                                {"fixed", x, res_fixed, report::Series::Style::linespoints}});
  p2.hlines = {0};
  c.emit_plot({"exp8a_erf_sigma_test_" + c.label,
               "erf width vs 1/√π (" + c.label + "): χ² = " + report::fixed(t.lr_statistic, 3) +
                   ", p = " + report::fixed(t.p_value, 3),
               {p1, p2}});
  return {{"n_points", t.n},          {"sigma_free", t.sigma_free},     {"sigma_pi", kSigmaPi},
          {"sigma_diff_pct", t.sigma_diff_pct}, {"rss_free", t.rss_free}, {"rss_fixed", t.rss_fixed},
          {"r2_free", t.r2_free},     {"r2_fixed", t.r2_fixed},         {"lr_statistic", t.lr_statistic},
          {"p_value", t.p_value},     {"reject_H0", t.reject}};
}

// exp3ef's stored fits with BIC recomputed by exp8's rule (+∞ only when
// RSS <= 0): same formula, so unchanged wherever exp3ef's was finite.
json stored_entry(const std::string& name, const json& fit, int n) {
  const double rss = num(fit.at("rss"));
  const int k = fit.at("n_params").get<int>();
  const auto ic = analysis::info_criteria(rss, n, k, analysis::InfoCriterion::rss_only);
  return {{"model", name},          {"n_params", k}, {"r2", fit.at("r2")}, {"rss", rss},
          {"aic", nullable(ic.aic)}, {"bic", nullable(ic.bic)}, {"params", fit.at("params")}, {"source", "exp3ef"},
          {"is_pi_model", false}};
}

json part_b(Ctx& c, const json& ef, const std::vector<double>& x, const std::vector<double>& g) {
  const ModelFits pm = pi_models(x, g);
  json pi = json::object(), all = json::array(), dropped = json::object();
  for (const auto& f : pm.fits) {
    json j = fit_json(f);
    pi[f.model] = j;
    j["source"] = "pi";
    j["is_pi_model"] = true;
    all.push_back(j);
  }
  for (const auto& d : pm.dropped) dropped[d.model] = d.reason;
  const int n = static_cast<int>(g.size());
  for (const auto& name : ef.at("fit_order"))
    all.push_back(stored_entry(name.get<std::string>(), ef.at("fits").at(name.get<std::string>()), n));
  std::stable_sort(all.begin(), all.end(), [](const json& a, const json& b) {
    const double x = num(a.at("bic")), y = num(b.at("bic"));  // null (+∞) last
    return !std::isnan(x) && (std::isnan(y) || x < y);
  });
  const json& best = all.front();
  // Figure: the π curves on g_mean; BIC bars (π models red).
  const auto xg = grid(0, 1);
  std::vector<report::Series> s = {{"g_mean", x, g, report::Series::Style::points}};
  for (const auto& f : pm.fits) {
    report::Series cv{f.model, xg, {}, report::Series::Style::line};
    for (double v : xg) {
      const double xc = std::max(v, 1e-10);
      const double a = f.params.empty() ? 1.0 : f.params[0];
      const bool cosm = f.model.rfind("cos", 0) == 0;
      const double arg = f.params.empty() ? v : std::pow(xc, a);
      cv.y.push_back(cosm ? (1 - std::cos(kPi * arg)) / 2 : std::sin(kPi * arg / 2));
    }
    s.push_back(cv);
  }
  std::vector<std::string> cats;
  report::Series pib{"π models", {}, {}, report::Series::Style::bars}, other{"exp3ef fits", {}, {}, report::Series::Style::bars};
  pib.color = "#d62728";
  other.color = "#4c72b0";
  for (const auto& e : all) {
    cats.push_back(e.at("model").get<std::string>());
    const double b = num(e.at("bic"));
    pib.y.push_back(e.at("is_pi_model").get<bool>() ? b : std::nan(""));
    other.y.push_back(e.at("is_pi_model").get<bool>() ? std::nan("") : b);
  }
  report::Axis bic_axis;
  bic_axis.label = "BIC";
  c.emit_plot({"exp8b_pi_models_" + c.label, "π models vs exp3ef fits (" + c.label + ")",
               {report::line_panel("π-model fits of g_mean", lnorm_axis(), {"g"}, s),
                report::bar_panel("BIC (lower is better)", cats, {pib, other}, bic_axis)}});
  json doc = {{"pi_models", pi},
              {"all_models_bic_sorted", all},
              {"best_model", best.at("model")},
              {"best_is_pi_model", best.at("is_pi_model")},
              {"best_is_zero_param_pi_model", best.at("is_pi_model").get<bool>() && best.at("n_params") == 0}};
  if (!dropped.empty()) doc["pi_models_dropped"] = dropped;
  return doc;
}

std::vector<std::vector<double>> matrix(const json& rows, const std::string& from) {
  std::vector<std::vector<double>> out;
  for (const auto& r : rows) {
    std::vector<double> v;
    for (const auto& x : r) v.push_back(num(x));
    out.push_back(std::move(v));
  }
  if (out.empty()) throw std::runtime_error(from + " has no samples");
  return out;
}

json part_c(Ctx& c, const json& wt, const json& pr) {
  const RotationStats st = rotation_stats(matrix(wt.at("thetas"), "rotation unit"));
  json wiki = stats_json(st);
  wiki.erase("success_criterion");
  json prompts = json::object();
  int within = 0, n = 0;
  std::vector<std::string> cats;
  std::vector<double> over_all;
  std::vector<report::Series> profiles;
  const int L = static_cast<int>(st.theta_mean.size());
  std::vector<double> blocks;
  for (int b = 0; b < L; ++b) blocks.push_back(b);
  for (const auto& p : pr.at("prompts")) {
    const auto th = dvec(p, "thetas", "prompt rotation");
    double cum = 0;
    for (double v : th) cum += v;
    const double over = cum / kPi;
    const std::string w = p.at("word").get<std::string>(), cond = p.at("condition").get<std::string>();
    prompts[w][cond] = {{"thetas", th}, {"cumulative", cum}, {"cumulative_over_pi", over}, {"n_tokens", p.at("n_tokens")}};
    within += std::abs(over - std::nearbyint(over)) < 0.1;
    ++n;
    cats.push_back(w + "/" + cond);
    over_all.push_back(over);
    if (cond == "neutral" || cond == "strong_A" || cond == "strong_B")
      profiles.push_back({w + " " + cond, blocks, th, report::Series::Style::line});
  }
  // Figure: θ per block ± std with π/L; histogram of Θ/π; prompt profiles; Θ/π per prompt.
  report::Series mean{"mean ± std", blocks, st.theta_mean, report::Series::Style::linespoints};
  for (int b = 0; b < L; ++b) {
    mean.lo.push_back(st.theta_mean[b] - st.theta_std[b]);
    mean.hi.push_back(st.theta_mean[b] + st.theta_std[b]);
  }
  report::Axis rad;
  rad.label = "θ (rad)";
  auto p1 = report::line_panel("θ_b over " + std::to_string(st.n_samples) + " WikiText positions",
                               report::count_axis("block b"), rad, {mean});
  p1.hlines = {kPi / L};
  std::vector<double> over_wt;
  for (double v : st.cumulative) over_wt.push_back(v / kPi);
  report::Axis ox;
  ox.label = "Θ/π";
  auto p2 = report::histogram_panel("Θ/π (WikiText)", over_wt, 30, ox);
  const double lo = *std::min_element(over_wt.begin(), over_wt.end()), hi = *std::max_element(over_wt.begin(), over_wt.end());
  for (double k = std::floor(lo); k <= std::ceil(hi); k += 1) p2.vlines.push_back(k);
  auto p3 = report::line_panel("θ_b at the target word (no BOS)", report::count_axis("block b"), rad, profiles);
  p3.key = "off";
  report::Axis oy;
  oy.label = "Θ/π";
  auto p4 = report::bar_panel("Θ/π per prompt", cats, {{"", {}, over_all, report::Series::Style::bars}}, oy);
  c.emit_plot({"exp8c_rotation_angles_" + c.label, "rotation angles (" + c.label + ")", {p1, p2, p3, p4}, 2});
  return {{"wikitext", wiki},
          {"prompts", prompts},
          {"prompts_fraction_within_0.1", n ? double(within) / n : 0.0},
          {"success_criterion", st.success}};
}

std::string bic_str(const json& v) { return v.is_number() ? report::fixed(num(v), 2) : "inf"; }

std::string section(const json& d) {
  const std::string lab = d.at("label").get<std::string>();
  std::string s = "## " + lab + " (" + std::to_string(d.value("n_layers", 0)) + " layers)\n\n" +
                  random_banner(d.value("provenance", json::object()));
  if (d.contains("exp8a_" + lab)) {
    const json& a = d.at("exp8a_" + lab);
    report::Table t({"n", "σ_free", "diff vs 1/√π", "RSS_free", "RSS_fixed", "χ²", "p", "R² free / fixed", "reject H0"},
                    "rrrrrrrll");
    t.row({std::to_string(a.at("n_points").get<int>()), report::fixed(num(a.at("sigma_free")), 4),
           report::fixed(num(a.at("sigma_diff_pct")), 2) + " %", report::fixed(num(a.at("rss_free")), 4),
           report::fixed(num(a.at("rss_fixed")), 4), report::fixed(num(a.at("lr_statistic")), 3),
           report::fixed(num(a.at("p_value")), 3),
           report::fixed(num(a.at("r2_free")), 4) + " / " + report::fixed(num(a.at("r2_fixed")), 4),
           a.at("reject_H0").get<bool>() ? "yes" : "no"});
    s += "### A: erf width vs 1/√π = 0.564190\n\n" + t.str() + "\n";
  }
  if (d.contains("exp8b_" + lab)) {
    const json& b = d.at("exp8b_" + lab);
    report::Table t({"model", "k", "R²", "BIC", "source"}, "lrrrl");
    for (const auto& e : b.at("all_models_bic_sorted"))
      t.row({e.at("model").get<std::string>(), std::to_string(e.at("n_params").get<int>()),
             report::fixed(num(e.at("r2")), 4), bic_str(e.at("bic")), e.at("source").get<std::string>()});
    s += "### B: π models and exp3ef's fits, BIC order\n\n" + t.str() + "\nBest: " +
         b.at("best_model").get<std::string>() + (b.at("best_is_pi_model").get<bool>() ? " (a π model)" : " (not a π model)") +
         ".\n\n";
  }
  if (d.contains("exp8c")) {
    const json& w = d.at("exp8c").at("wikitext");
    s += "### C: rotation angles\n\nWikiText (test split, chunk 0, first " + std::to_string(w.at("n_samples").get<int>()) +
         " positions): Θ = " + report::fixed(num(w.at("cumulative_mean")), 3) + " ± " +
         report::fixed(num(w.at("cumulative_std")), 3) + " rad, Θ/π = " + report::fixed(num(w.at("cumulative_over_pi_mean")), 3) +
         " ± " + report::fixed(num(w.at("cumulative_over_pi_std")), 3) + ", nearest integer " +
         std::to_string(w.at("nearest_integer_multiple").get<int>()) + ", deviation " +
         report::fixed(num(w.at("deviation_from_int")), 3) + ", fraction within 0.1 = " +
         report::fixed(100 * num(w.at("fraction_within_0.1_of_pi_multiple")), 1) + " %.\n\n";
    report::Table t({"block", "θ mean", "θ std"}, "rrr");
    const auto m = dvec(w, "theta_mean_per_layer", "exp8c"), sd = dvec(w, "theta_std_per_layer", "exp8c");
    for (size_t i = 0; i < m.size(); ++i) t.row({std::to_string(i), report::fixed(m[i], 3), report::fixed(sd[i], 3)});
    s += t.str() + "\nPrompts (45 EXPERIMENT_PROMPTS, no BOS, last token), Θ/π:\n\n";
    report::Table p({"word", "neutral", "weak_A", "weak_B", "strong_A", "strong_B"}, "lrrrrr");
    for (auto it = d.at("exp8c").at("prompts").begin(); it != d.at("exp8c").at("prompts").end(); ++it) {
      std::vector<std::string> row = {it.key()};
      for (const char* cnd : {"neutral", "weak_A", "weak_B", "strong_A", "strong_B"})
        row.push_back(it->contains(cnd) ? report::fixed(num(it->at(cnd).at("cumulative_over_pi")), 3) : "");
      p.row(row);
    }
    s += p.str() + "\nPrompts within 0.1 of their own nearest multiple of π: " +
         report::fixed(100 * num(d.at("exp8c").at("prompts_fraction_within_0.1")), 1) + " %.\n\n";
  }
  const json& pr = d.at("pre_registered");
  s += "### Pre-registered success (any one)\n\n- A: p > 0.05: " + std::string(report::pass_fail(pr.value("a_p_above_0.05", false))) +
       "\n- B: a 0-parameter π model best by BIC: " + report::pass_fail(pr.value("b_zero_param_pi_best", false)) +
       "\n- C: >= 90 % of positions within ±0.1 of a multiple of π: " + report::pass_fail(pr.value("c_fraction_ge_0.9", false)) +
       "\n\n";
  if (d.contains("figures"))
    for (const auto& f : d.at("figures")) s += report::image_md(f.get<std::string>(), f.get<std::string>()) + "\n\n";
  return s;
}

}  // namespace

json exp8(Ctx& c) {
  const std::string parts = c.param("parts", "abc");
  json doc = {{"model", c.model}, {"label", c.label}, {"n_layers", c.n_layer}};
  json pre = json::object();
  if (parts.find_first_of("ab") != std::string::npos) {
    const json& ef = c.input(sigma::exp3ef_job(c.label));
    const auto x = dvec(ef, "l_norm", "exp3ef"), g = dvec(ef, "g_mean", "exp3ef");
    if (parts.find('a') != std::string::npos) {
      doc["exp8a_" + c.label] = part_a(c, x, g);
      pre["a_p_above_0.05"] = num(doc["exp8a_" + c.label]["p_value"]) > 0.05;
    }
    if (parts.find('b') != std::string::npos) {
      doc["exp8b_" + c.label] = part_b(c, ef, x, g);
      pre["b_zero_param_pi_best"] = doc["exp8b_" + c.label]["best_is_zero_param_pi_model"];
    }
  }
  if (parts.find('c') != std::string::npos) {
    doc["exp8c"] = part_c(c, c.input(rot_wikitext_job(c.label)), c.input(rot_prompts_job(c.label)));
    pre["c_fraction_ge_0.9"] = doc["exp8c"]["success_criterion"];
  }
  bool any = false;
  for (auto it = pre.begin(); it != pre.end(); ++it) any = any || it->get<bool>();
  pre["any"] = any;
  doc["pre_registered"] = pre;
  json figs = json::array();
  for (const auto& f : c.out.files)
    if (f.name.size() > 4 && f.name.compare(f.name.size() - 4, 4, ".png") == 0) figs.push_back(f.name);
  doc["figures"] = figs;
  return c.emit_json("exp8_" + c.label, doc);
}

json exp8_report(Ctx& c) {
  std::string body;
  for (const auto& in : c.job.inputs)
    body += section(in.result) + platform::provenance_md(in.result.value("provenance", json::object())) + "\n";
  c.emit_text("exp8_results.md",
              "# exp8: traces of π in g(l/L)\n\n"
              "A: erf(x/(σ√2)) fitted to exp3ef's g_mean free (p0 0.5, bounds [0.01, 10]) and with σ = 1/√π; "
              "Λ = n·ln(RSS_fixed/RSS_free), p = χ²(1) survival. B: cos/sin π models (0 and 1 parameter) merged "
              "with exp3ef's five fits, sorted by BIC = n·ln(RSS/n) + k·ln n. C: θ_b = angle between the residual "
              "stream before and after block b, Θ = Σθ_b (spec §8).\n\n"
              "Note (spec A15): the original exp8_results.md lists, for gpt2-medium, cos_pi_0p (BIC −130.59) above "
              "log (−130.70), which is not BIC order; its code sorts by BIC, and so does this report.\n\n" +
                  body,
              "text/markdown");
  return {{"report", "exp8_results.md"}};
}

}  // namespace spt::pi::detail
