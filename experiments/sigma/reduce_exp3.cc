// exp3 (spec §5.1): linear response of σ(l) to context strength h.
// B+C per word: h from the final-depth σ, per-depth linregress, h* at
// threshold 0.05; D per model: f(l) correlations and signed f_max.
#include <cmath>

#include "analysis/fit_models.h"
#include "analysis/regress.h"
#include "platform/prompts.h"
#include "platform/model_names.h"
#include "report/markdown.h"
#include "sigma/common.h"
#include "sigma/reduce_internal.h"
#include "sigma/science.h"

namespace spt::sigma::detail {

json exp3_regress(Ctx& c) {
  const std::string word = c.param("word");
  const auto& g = platform::prompt_sets().gradient_for(word);
  std::vector<std::vector<double>> sigma;
  for (char side : {'A', 'B'}) {
    const size_t n = side == 'A' ? g.A.size() : g.B.size();
    for (size_t i = 0; i < n; ++i) {
      const std::string name = grad_job(c.label, word, side, static_cast<int>(i));
      sigma.push_back(dvec(profile(c, name), "sigma", name));
    }
  }
  const Linearity lin = linear_response(sigma);
  json depths = json::array(), hstar = json::array(), sorted_sigma = json::array();
  for (const auto& d : lin.depths) {
    depths.push_back({{"layer", d.layer},
                      {"slope", d.slope},
                      {"intercept", d.intercept},
                      {"r2", d.r2},
                      {"p_value", d.p_value},
                      {"std_err", d.std_err},
                      {"residuals", d.residuals},
                      {"max_abs_residual", d.max_abs_residual}});
    hstar.push_back(d.hstar ? json(*d.hstar) : json(nullptr));
  }
  for (int i : lin.order) sorted_sigma.push_back(sigma[i]);
  return {{"word", word},       {"M", lin.M},           {"h_values", lin.h_sorted}, {"order", lin.order},
          {"linearity", depths}, {"hstar", hstar},      {"f", lin.f},               {"f_max", lin.f_max},
          {"prompts_A", g.A},   {"prompts_B", g.B},     {"sigma_sorted", sorted_sigma}};
}

namespace {

// Depths of the σ-vs-h panels: linspace(0, L, 6) truncated to int.
std::vector<int> panel_depths(int L) {
  std::vector<int> out;
  for (double v : analysis::linspace(0, L, 6)) out.push_back(static_cast<int>(v));
  return out;
}

void word_figures(Ctx& c, const json& r) {
  const std::string word = r.at("word").get<std::string>();
  const auto h = dvec(r, "h_values", word);
  std::vector<report::Panel> panels;
  for (int l : panel_depths(c.n_layer)) {
    std::vector<double> y;
    for (const auto& row : r.at("sigma_sorted")) y.push_back(row.at(l).get<double>());
    const json& d = r.at("linearity").at(l);
    const double a = d.at("slope").get<double>(), b = d.at("intercept").get<double>();
    const std::vector<double> hx = {h.front(), h.back()};
    panels.push_back(report::scatter_panel(
        "depth " + std::to_string(l) + " (R² " + report::fixed(num(d.at("r2")), 3) + ")", {"h"}, {"σ"},
        {{"prompts", h, y, report::Series::Style::points},
         {"fit", hx, {a * hx[0] + b, a * hx[1] + b}, report::Series::Style::line}}));
  }
  c.emit_plot({"exp3_sigma_vs_h_" + word + "_" + c.label, "σ vs h: " + word, panels});

  std::vector<double> r2, slope, hs, hx;
  const auto x = depth_x(c.n_layer);
  for (size_t l = 0; l < r.at("linearity").size(); ++l) {
    r2.push_back(r.at("linearity").at(l).at("r2").get<double>());
    slope.push_back(r.at("linearity").at(l).at("slope").get<double>());
    if (r.at("hstar").at(l).is_number()) {
      hx.push_back(x[l]);
      hs.push_back(r.at("hstar").at(l).get<double>());
    }
  }
  auto pr2 = report::line_panel("R² of σ(l) vs h", lnorm_axis(), {"R²"}, {{"", x, r2, report::Series::Style::linespoints}});
  pr2.hlines = {0.95, 0.99};
  c.emit_plot({"exp3_linearity_" + word + "_" + c.label, "Linearity: " + word,
               {pr2,
                report::line_panel("slope f(l) = dσ/dh", lnorm_axis(), {"f(l)"},
                                   {{"", x, slope, report::Series::Style::linespoints}}),
                report::scatter_panel("h* (threshold 0.05)", lnorm_axis(), {"h*"},
                                      {{"", hx, hs, report::Series::Style::points}})}});
}

}  // namespace

json exp3(Ctx& c) {
  json words = json::object(), fmax = json::object(), r2count = json::object();
  std::vector<std::string> names;
  std::vector<std::vector<double>> f;
  std::vector<report::Series> raw, scaled;
  const auto x = depth_x(c.n_layer);
  for (const auto& w : platform::prompt_sets().gradient_words()) {
    const json& r = c.input("exp3/" + c.label + "/regress/" + w);
    names.push_back(w);
    f.push_back(dvec(r, "f", w));
    fmax[w] = r.at("f_max");
    int n = 0;
    for (const auto& d : r.at("linearity")) n += d.at("r2").get<double>() > 0.95;
    r2count[w] = n;
    words[w] = {{"h_values", r.at("h_values")}, {"linearity", r.at("linearity")}, {"hstar", r.at("hstar")},
                {"prompts_A", r.at("prompts_A")}, {"prompts_B", r.at("prompts_B")}, {"f", r.at("f")},
                {"f_max", r.at("f_max")}, {"M", r.at("M")}};
    word_figures(c, r);
    raw.push_back({w, x, f.back(), report::Series::Style::linespoints});
    scaled.push_back({w, x, minmax_scaled(f.back()), report::Series::Style::linespoints});
  }
  c.emit_plot({"exp3_fl_comparison_" + c.label, "f(l) across words (" + c.label + ")",
               {report::line_panel("raw f(l)", lnorm_axis(), {"f(l)"}, raw),
                report::line_panel("min–max scaled f(l)", lnorm_axis(), {"scaled f(l)"}, scaled)}});
  const auto corr = analysis::corrcoef(f);
  json matrix = json::array();
  for (const auto& row : corr) {
    json jr = json::array();
    for (double v : row) jr.push_back(std::isfinite(v) ? json(v) : json(nullptr));
    matrix.push_back(jr);
  }
  json doc = {{"model", c.model},
              {"n_layers", c.n_layer},
              {"words", words},
              {"f_max", fmax},
              {"depths_r2_above_0.95", r2count},
              {"f_correlation", {{"words", names}, {"matrix", matrix}}}};
  doc["device"] = device_of(c.provenance());
  doc["figures"] = png_names(c);
  return c.emit_json("exp3_" + c.label, doc);
}

namespace {

std::string exp3_section(const json& doc) {
  std::string s = "## " + platform::model_label(doc.value("model", std::string("?"))) + " (" + std::to_string(doc.value("n_layers", 0)) +
                  " layers)\n\n" + random_banner(doc.value("provenance", json::object()));
  const int depths = doc.value("n_layers", 0) + 1;
  report::Table t({"word", "f_max", "min h* (depth)", "h range", "depths with R² > 0.95"}, "lrrll");
  for (const auto& word : doc.at("f_correlation").at("words")) {  // GRADIENT_PROMPTS order
    const auto it = doc.at("words").find(word.get<std::string>());
    if (it == doc.at("words").end()) continue;
    double best = INFINITY;
    int at = -1;
    for (size_t l = 0; l < it->at("hstar").size(); ++l)
      if (it->at("hstar").at(l).is_number() && it->at("hstar").at(l).get<double>() < best) {
        best = it->at("hstar").at(l).get<double>();
        at = static_cast<int>(l);
      }
    const auto& h = it->at("h_values");
    t.row({it.key(), report::fixed(num(it->at("f_max")), 3),
           at < 0 ? "none" : report::fixed(best, 3) + " (" + std::to_string(at) + ")",
           "[" + report::fixed(num(h.front()), 2) + ", " + report::fixed(num(h.back()), 2) + "]",
           std::to_string(doc.at("depths_r2_above_0.95").at(it.key()).get<int>()) + " of " + std::to_string(depths)});
  }
  s += t.str() + "\nf(l) correlation (Pearson, np.corrcoef):\n\n";
  const auto& names = doc.at("f_correlation").at("words");
  std::vector<std::string> head = {""};
  for (const auto& n : names) head.push_back(n.get<std::string>());
  report::Table ct(head);
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<std::string> row = {names.at(i).get<std::string>()};
    for (const auto& v : doc.at("f_correlation").at("matrix").at(i))
      row.push_back(v.is_number() ? report::fixed(num(v), 3) : "n/a");
    ct.row(row);
  }
  return s + ct.str() + "\n";
}

}  // namespace

json exp3_report(Ctx& c) {
  std::string body;
  for (const auto& in : c.job.inputs) {
    body += exp3_section(in.result);
    body += embed_figures(in.result);
    body += provenance_md(in.result.value("provenance", json::object()));
  }
  c.emit_text("exp3_results.md",
              "# exp3: linear response of σ(l) to context strength\n\n"
              "h_p = σ_p(L)/max|σ(L)| over the 20 gradient prompts of a word (the duplicated first prompt kept twice, "
              "A22); per depth, linregress(h, σ(l)) gives the slope f(l); h*(l) is the smallest |h| whose residual "
              "exceeds 5 % of the σ range at that depth (spec §5.1). The last depth is linear by construction.\n\n" +
                  body,
              "text/markdown");
  return {{"report", "exp3_results.md"}};
}

}  // namespace spt::sigma::detail
