// exp3ef (spec §5.2): E the universal penetration function g = f/f_max,
// F five candidate shapes fitted to g_mean, G the comparison across models
// (not-a-knot cubic spline of the finer curve onto the coarser grid), and T
// the non-binding "truncated" fits (A8).
#include <cmath>

#include "analysis/fit_models.h"
#include "platform/model_names.h"
#include "platform/prompts.h"
#include "report/markdown.h"
#include "sigma/common.h"
#include "sigma/reduce_internal.h"
#include "sigma/science.h"

namespace spt::sigma::detail {

namespace {

struct Fits {
  json fits = json::object();
  json order = json::array();
  json dropped = json::object();
};

Fits fit_g(const std::vector<double>& x, const std::vector<double>& y) {
  const auto ranked = analysis::fit_and_rank(analysis::exp3ef_models(), x, y, kMaxfev,
                                             analysis::InfoCriterion::fitting_py);
  Fits out;
  for (const auto& f : ranked.fits) {
    out.fits[f.model] = fit_json(f, false);  // exp3ef's fits carry no y_fit (§5.2)
    out.order.push_back(f.model);
  }
  for (const auto& d : ranked.dropped) out.dropped[d.model] = d.reason;
  return out;
}

// The fitted curve on a 200-point grid of [0, x_max].
report::Series fit_curve(const json& fit, double x_max, const std::string& label) {
  const auto x = analysis::linspace(0, x_max, 200);
  return {label, x, eval_fit(analysis::exp3ef_models(), fit, x), report::Series::Style::line};
}


void ef_figures(Ctx& c, const UniversalG& u, const Fits& f) {
  std::vector<report::Series> s;
  for (size_t w = 0; w < u.words.size(); ++w) s.push_back({u.words[w], u.l_norm, u.g[w], report::Series::Style::linespoints});
  report::Series mean{"g_mean ± std", u.l_norm, u.g_mean, report::Series::Style::line};
  for (size_t l = 0; l < u.g_mean.size(); ++l) {
    mean.lo.push_back(u.g_mean[l] - u.g_std[l]);
    mean.hi.push_back(u.g_mean[l] + u.g_std[l]);
  }
  s.push_back(mean);
  c.emit_plot({"exp3e_universal_g_" + c.label, "",
               {report::line_panel("g(l/L) = f(l)/f_max per word (" + c.label + ")", lnorm_axis(), {"g"}, s)}});
  std::vector<report::Panel> panels;
  for (const auto& name : f.order) {
    const json& fit = f.fits.at(name.get<std::string>());
    panels.push_back(report::line_panel(
        name.get<std::string>() + " (AIC " + ic_str(fit.at("aic")) + ", BIC " + ic_str(fit.at("bic")) + ")",
        lnorm_axis(), {"g_mean"},
        {{"g_mean", u.l_norm, u.g_mean, report::Series::Style::points}, fit_curve(fit, 1.0, "fit")}));
  }
  if (!panels.empty()) c.emit_plot({"exp3f_fit_" + c.label, "Fits of g_mean (" + c.label + ")", panels});
}

}  // namespace

json exp3ef(Ctx& c) {
  const json& e3 = c.input(exp3_job(c.label));
  std::vector<std::string> words;
  std::vector<std::vector<double>> f;
  for (const auto& w : platform::prompt_sets().gradient_words()) {  // GRADIENT_PROMPTS order, not key order
    if (!e3.at("words").contains(w)) throw std::runtime_error("exp3 result lacks word " + w);
    words.push_back(w);
    f.push_back(dvec(e3.at("words").at(w), "f", w));
  }
  const UniversalG u = universal_g(words, f);
  const Fits fits = fit_g(u.l_norm, u.g_mean);
  const Peak pk = peak_of(u.g_mean);
  json fmax = json::object(), g = json::object(), res = json::object();
  for (size_t w = 0; w < u.words.size(); ++w) {
    fmax[u.words[w]] = u.fmax[w];
    g[u.words[w]] = u.g[w];
    res[u.words[w]] = {{"max_abs", u.resid_max_abs[w]}, {"rmse", u.resid_rmse[w]}, {"residuals", u.residuals[w]}};
  }
  json doc = {{"model", c.model},
              {"n_layers", c.n_layer},
              {"words", u.words},
              {"fmax", fmax},
              {"g_per_word", g},
              {"g_mean", u.g_mean},
              {"g_std", u.g_std},
              {"l_norm", u.l_norm},
              {"residuals_from_mean", res},
              {"fits", fits.fits},
              {"fit_order", fits.order},
              {"best_model", fits.order.empty() ? json(nullptr) : fits.order.front()},
              {"peak", {{"depth", pk.depth}, {"l_norm", pk.x}, {"g", pk.value}, {"g_last", pk.last}, {"drop", pk.drop}}}};
  if (!u.skipped.empty()) doc["skipped_words"] = u.skipped;
  if (!fits.dropped.empty()) doc["fits_dropped"] = fits.dropped;
  ef_figures(c, u, fits);
  doc["figures"] = png_names(c);
  return c.emit_json("exp3ef_" + c.label, doc);
}

// Convention (spec A8 leaves it open): g_mean over depths 0..L−2 divided by
// its own maximum, fitted at the unchanged x = l/L. Non-binding.
json exp3ef_truncated(Ctx& c) {
  const json& ef = c.input(exp3ef_job(c.label));
  auto g = dvec(ef, "g_mean", "exp3ef");
  auto x = dvec(ef, "l_norm", "exp3ef");
  if (g.size() < 5) throw std::runtime_error("truncated fits need at least 5 depths");
  g.resize(g.size() - 2);
  x.resize(x.size() - 2);
  const double mx = *std::max_element(g.begin(), g.end());
  for (double& v : g) v /= mx;
  const Fits fits = fit_g(x, g);
  json doc = {{"model", c.model},
              {"binding", false},
              {"convention",
               "g_mean truncated to depths 0..L-2, divided by its maximum, fitted at x = l/L (unchanged); the "
               "original's protocol is not in its code (spec A8), so these numbers are not comparable evidence"},
              {"x", x},
              {"g_truncated", g},
              {"fits", fits.fits},
              {"fit_order", fits.order}};
  return c.emit_json("exp3ef_truncated_" + c.label, doc);
}

namespace {

json compare_json(const CurveCompare& cc) {
  return {{"correlation", nullable(cc.correlation)}, {"rmse", nullable(cc.rmse)}, {"max_diff", nullable(cc.max_diff)}};
}

// One word's comparison; a word whose curve cannot be interpolated (a NaN,
// too few depths) records why instead of failing the whole of G.
json compare_word(const json& coarse, const json& fine, const std::string& w) {
  try {
    return compare_json(compare_curves(dvec(coarse, w, "coarse g"), dvec(fine, w, "fine g")));
  } catch (const std::exception& e) {
    return {{"error", e.what()}};
  }
}

json pair_doc(const json& a, const json& b, const std::string& la, const std::string& lb) {
  // The coarser model's grid is the reference (spec: medium onto small).
  const bool a_coarse = a.at("g_mean").size() <= b.at("g_mean").size();
  const json& coarse = a_coarse ? a : b;
  const json& fine = a_coarse ? b : a;
  const CurveCompare gm = compare_curves(dvec(coarse, "g_mean", "coarse"), dvec(fine, "g_mean", "fine"));
  json words = json::object(), corr = json::object(), rmse = json::object(), maxd = json::object();
  for (auto it = coarse.at("g_per_word").begin(); it != coarse.at("g_per_word").end(); ++it) {
    if (!fine.at("g_per_word").contains(it.key())) continue;
    const json w = compare_word(coarse.at("g_per_word"), fine.at("g_per_word"), it.key());
    words[it.key()] = w;
    corr[it.key()] = w.value("correlation", json(nullptr));
    rmse[it.key()] = w.value("rmse", json(nullptr));
    maxd[it.key()] = w.value("max_diff", json(nullptr));
  }
  return {{"coarse", a_coarse ? la : lb},
          {"fine", a_coarse ? lb : la},
          {"g_mean_correlation", nullable(gm.correlation)},
          {"g_mean_rmse", nullable(gm.rmse)},
          {"g_mean_max_diff", nullable(gm.max_diff)},
          {"word_correlations", corr},
          {"word_rmse", rmse},
          {"word_max_diff", maxd},
          {"words", words},
          {"x", gm.x},
          {"g_coarse", gm.coarse},
          {"g_fine_on_coarse", gm.fine_on_coarse}};
}

void cross_figures(Ctx& c, const std::vector<std::pair<std::string, const json*>>& docs, const json& first) {
  std::vector<report::Series> gm, words, overlay;
  for (const auto& [label, d] : docs) {
    const auto x = dvec(*d, "l_norm", label);
    gm.push_back({label, x, dvec(*d, "g_mean", label), report::Series::Style::linespoints});
    for (auto it = d->at("g_per_word").begin(); it != d->at("g_per_word").end(); ++it)
      words.push_back({label + " " + it.key(), x, dvec(d->at("g_per_word"), it.key(), label), report::Series::Style::line});
    overlay.push_back({label + " g_mean", x, dvec(*d, "g_mean", label), report::Series::Style::points});
    if (d->at("best_model").is_string())
      overlay.push_back(fit_curve(d->at("fits").at(d->at("best_model").get<std::string>()), 1.0,
                                  label + " best: " + d->at("best_model").get<std::string>()));
  }
  const auto x = dvec(first, "x", "pair");
  std::vector<double> diff;
  const auto gc = dvec(first, "g_coarse", "pair"), gf = dvec(first, "g_fine_on_coarse", "pair");
  for (size_t i = 0; i < x.size(); ++i) diff.push_back(gf[i] - gc[i]);
  auto pd = report::line_panel("difference after interpolation (" + first.at("fine").get<std::string>() + " − " +
                                   first.at("coarse").get<std::string>() + ")",
                               lnorm_axis(), {"Δg"}, {{"", x, diff, report::Series::Style::linespoints}});
  pd.hlines = {0};
  c.emit_plot({"exp3g_cross_model_g", "g(l/L) across models",
               {report::line_panel("g_mean", lnorm_axis(), {"g_mean"}, gm),
                report::line_panel("per word", lnorm_axis(), {"g"}, words), pd}});
  c.emit_plot({"exp3g_best_fit_overlay", "",
               {report::line_panel("g_mean and each model's best fit", lnorm_axis(), {"g"}, overlay)}});
}

}  // namespace

json exp3ef_cross(Ctx& c) {
  std::vector<std::pair<std::string, const json*>> docs;
  json prov = json::object();
  for (const auto& in : c.job.inputs) {
    const std::string label = label_of(in.name);
    docs.emplace_back(label, &in.result);
    prov[label] = in.result.value("provenance", json::object());
  }
  if (docs.size() < 2) throw std::runtime_error("exp3ef G needs two or more models");
  json pairs = json::array();
  for (size_t i = 0; i < docs.size(); ++i)
    for (size_t j = i + 1; j < docs.size(); ++j)
      pairs.push_back(pair_doc(*docs[i].second, *docs[j].second, docs[i].first, docs[j].first));
  json doc = pairs.front();
  for (const char* k : {"x", "g_coarse", "g_fine_on_coarse", "words"}) doc.erase(k);
  doc["models"] = {docs[0].first, docs[1].first};
  doc["pairs"] = pairs;
  doc["interpolation"] = "not-a-knot cubic spline of the finer g onto the coarser grid, extrapolating (interp1d cubic)";
  cross_figures(c, docs, pairs.front());
  doc["figures"] = png_names(c);
  doc["provenance"] = {{"models", prov}};
  c.emit_text("exp3g_cross_model.json", doc.dump(2) + "\n", "application/json");
  return doc;
}

namespace {

std::string ef_section(const json& doc) {
  std::string s = "## " + platform::model_label(doc.value("model", std::string("?"))) + " (" + std::to_string(doc.value("n_layers", 0)) +
                  " layers)\n\n" + random_banner(doc.value("provenance", json::object()));
  report::Table e({"word", "f_max", "RMSE from g_mean", "max |resid|"}, "lrrr");
  for (const auto& w : doc.at("words")) {
    const std::string k = w.get<std::string>();
    e.row({k, report::fixed(num(doc.at("fmax").at(k)), 3), report::fixed(num(doc.at("residuals_from_mean").at(k).at("rmse")), 3),
           report::fixed(num(doc.at("residuals_from_mean").at(k).at("max_abs")), 3)});
  }
  const json& pk = doc.at("peak");
  s += "### E: universal g\n\n" + e.str() + "\nPeak of g_mean at depth " + std::to_string(pk.at("depth").get<int>()) +
       " (l/L = " + report::fixed(num(pk.at("l_norm")), 3) + "), g = " + report::fixed(num(pk.at("g")), 3) +
       "; g(L) = " + report::fixed(num(pk.at("g_last")), 3) + " (drop " + report::fixed(num(pk.at("drop")), 3) + ").\n\n";
  report::Table f({"model", "R²", "AIC", "BIC", "params"}, "lrrrl");
  for (const auto& name : doc.at("fit_order")) {
    const json& fit = doc.at("fits").at(name.get<std::string>());
    std::string p;
    for (const auto& n : fit.at("param_names"))
      p += (p.empty() ? "" : ", ") + n.get<std::string>() + " = " + report::fixed(num(fit.at("params").at(n.get<std::string>())), 3);
    f.row({name.get<std::string>(), report::fixed(num(fit.at("r2")), 4), ic_str(fit.at("aic")), ic_str(fit.at("bic")), p});
  }
  s += "### F: fits of g_mean (" + std::to_string(doc.at("g_mean").size()) + " points, BIC order)\n\n" + f.str() +
       "\n" + embed_figures(doc);
  return s;
}

std::string truncated_section(const json& doc) {
  std::string s = "### Truncated fits (NOT binding)\n\n" + doc.at("convention").get<std::string>() + ".\n\n";
  report::Table t({"model", "R²", "params"}, "lrl");
  for (const auto& name : doc.at("fit_order")) {
    const json& fit = doc.at("fits").at(name.get<std::string>());
    std::string p;
    for (auto it = fit.at("params").begin(); it != fit.at("params").end(); ++it)
      p += (p.empty() ? "" : ", ") + it.key() + " = " + report::fixed(num(*it), 3);
    t.row({name.get<std::string>(), report::fixed(num(fit.at("r2")), 4), p});
  }
  return s + t.str() + "\n";
}

std::string cross_section(const json& doc) {
  std::string s = "## G: across models\n\n";
  for (const auto& p : doc.at("pairs")) {
    s += "- " + p.at("fine").get<std::string>() + " interpolated onto " + p.at("coarse").get<std::string>() +
         ": g_mean correlation " + report::fixed(num(p.at("g_mean_correlation")), 3) + ", RMSE " +
         report::fixed(num(p.at("g_mean_rmse")), 3) + ", max |diff| " + report::fixed(num(p.at("g_mean_max_diff")), 3) +
         "; per word:";
    for (auto it = p.at("word_correlations").begin(); it != p.at("word_correlations").end(); ++it)
      s += " " + it.key() + " " + report::fixed(num(*it), 3);
    s += "\n";
  }
  return s + "\n" + embed_figures(doc);
}

}  // namespace

json exp3ef_report(Ctx& c) {
  std::string body, prov;
  for (const auto& in : c.job.inputs) {
    const std::string rest = in.name.substr(in.name.find('/') + 1);
    if (rest == "cross") {
      body += cross_section(in.result);
    } else if (rest.size() > 10 && rest.compare(rest.size() - 10, 10, "/truncated") == 0) {
      body += truncated_section(in.result);
    } else {
      body += ef_section(in.result);
      prov += provenance_md(in.result.value("provenance", json::object()));
    }
  }
  c.emit_text("exp3ef_results.md",
              "# exp3ef: the universal penetration function g(l/L)\n\n"
              "g_w(l) = f_w(l)/f_max,w from exp3's slopes; g_mean and g_std across words; five shapes fitted to "
              "g_mean over all L+1 depths (TRF, maxfev 20000) and ranked by BIC; models compared after "
              "interpolating the finer curve onto the coarser grid (spec §5.2).\n\n" +
                  body + prov,
              "text/markdown");
  return {{"report", "exp3ef_results.md"}};
}

}  // namespace spt::sigma::detail
