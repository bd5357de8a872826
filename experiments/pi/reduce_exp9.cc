// exp9 (spec §9): A σ_free per model (exp3ef reused, else measured from
// exp3's units with the h fallbacks, loudly) and its convergence in 1/L;
// B the scaling of Θ with depth; C cos_pi_0p vs erf vs sin_pi_1p.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "analysis/fit_models.h"
#include "analysis/stats.h"
#include "pi/common.h"
#include "pi/reduce_internal.h"
#include "platform/prompts.h"
#include "report/markdown.h"
#include "sigma/common.h"
#include "sigma/science.h"

namespace spt::pi::detail {

namespace {

double fit_erf(const std::vector<double>& x, const std::vector<double>& g, double* r2 = nullptr, double* rss = nullptr) {
  const auto ranked = analysis::fit_and_rank({erf_model()}, x, g, 20000, analysis::InfoCriterion::rss_only);
  if (ranked.fits.empty()) return std::nan("");
  if (r2) *r2 = ranked.fits.front().r2;
  if (rss) *rss = ranked.fits.front().rss;
  return ranked.fits.front().params.at(0);
}

// Where a result was computed: {devices, precision, torch_version, random_weights}.
json measured_on(const json& prov) {
  return {{"devices", devices_of(prov)},
          {"precision", prov.value("precision", std::string("?"))},
          {"torch_version", prov.value("torch_version", std::string("?"))},
          {"random_weights", prov.value("random_weights", false)}};
}

struct Word {
  std::string word, h_source;
  double range_final = 0, range_used = 0;
  bool skipped = false;
  std::vector<double> f;
};

// One word's measurement (exp3 A+B): h with fallbacks, f(l) slopes.
Word measure_word(Ctx& c, const std::string& w, json& warnings) {
  const auto& g = platform::prompt_sets().gradient_for(w);
  std::vector<std::vector<double>> sigma;
  for (char side : {'A', 'B'}) {
    const size_t n = side == 'A' ? g.A.size() : g.B.size();
    for (size_t i = 0; i < n; ++i)
      sigma.push_back(dvec(c.input(sigma::grad_job(c.label, w, side, static_cast<int>(i))), "sigma", "profile"));
  }
  const HValues h = h_with_fallbacks(sigma, g.A.size());
  Word out{w, h.source, h.range_final, h.range_used, h.skip, {}};
  for (const auto& msg : h.warnings) {
    const std::string loud = "WARNING exp9 A " + c.label + "/" + w + ": " + msg;
    c.out.notes.push_back(loud);
    warnings.push_back(loud);
    std::fprintf(stderr, "%s\n", loud.c_str());  // the worker's log too
  }
  if (!h.skip) out.f = slopes(h.h, sigma);
  return out;
}

json fits_per_word(const std::vector<double>& x, const json& g_per_word) {
  json out = json::object();
  for (auto it = g_per_word.begin(); it != g_per_word.end(); ++it) {
    std::vector<double> g;
    for (const auto& v : *it) g.push_back(num(v));
    out[it.key()] = nullable(fit_erf(x, g));
  }
  return out;
}

}  // namespace

json exp9_a(Ctx& c) {
  json warnings = json::array(), h_source = json::object(), h_range = json::object();
  std::vector<std::string> words;
  std::vector<std::vector<double>> f;
  json skipped_h = json::array();
  bool all_final = true;
  int d_model = 0;
  for (const auto& w : platform::prompt_sets().gradient_words()) {
    d_model = c.input(sigma::dir_job(c.label, w)).value("d_model", 0);
    const Word m = measure_word(c, w, warnings);
    h_source[w] = m.h_source;
    h_range[w] = {{"final", m.range_final}, {"used", m.range_used}};
    all_final = all_final && m.h_source == "final_sigma";
    if (m.skipped) {
      skipped_h.push_back(w);
      continue;
    }
    words.push_back(w);
    f.push_back(m.f);
  }
  if (words.empty()) throw std::runtime_error("exp9 A " + c.label + ": every word was skipped (h collapsed)");
  const sigma::UniversalG u = sigma::universal_g(words, f);
  if (u.words.empty()) throw std::runtime_error("exp9 A " + c.label + ": every word has f_max < 1e-8");
  json fmax = json::object(), gpw = json::object();
  for (size_t i = 0; i < u.words.size(); ++i) {
    fmax[u.words[i]] = u.fmax[i];
    gpw[u.words[i]] = u.g[i];
  }
  double r2 = std::nan(""), rss = std::nan("");
  const double sigma_free = fit_erf(u.l_norm, u.g_mean, &r2, &rss);
  json doc = {{"model", c.model},     {"label", c.label},     {"n_layers", c.n_layer}, {"d_model", d_model},
              {"words", u.words},     {"fmax", fmax},         {"g_per_word", gpw},     {"g_mean", u.g_mean},
              {"g_std", u.g_std},     {"l_norm", u.l_norm},   {"h_source", h_source},  {"h_range", h_range},
              {"warnings", warnings}, {"source", "measured"}, {"measured_sigma_free", nullable(sigma_free)}};
  doc["sigma_free"] = nullable(sigma_free);
  doc["erf_r2"] = nullable(r2);
  doc["erf_rss"] = nullable(rss);
  if (!skipped_h.empty()) doc["skipped_words_h"] = skipped_h;
  if (!u.skipped.empty()) doc["skipped_words_fmax"] = u.skipped;
  // Reuse exp3ef (spec §9 A) when it is an input and h was the final-depth
  // σ for every word (then exp3ef is the same computation).
  const json* ef = c.param("exp3ef", "graph") == "graph" ? c.maybe(sigma::exp3ef_job(c.label)) : nullptr;
  if (ef && all_final && ef->contains("fits") && ef->at("fits").contains("erf")) {
    const json& e = ef->at("fits").at("erf");
    for (const char* k : {"words", "fmax", "g_per_word", "g_mean", "g_std", "l_norm"}) doc[k] = ef->at(k);
    doc["sigma_free"] = e.at("params").at("sigma");
    doc["erf_r2"] = e.at("r2");
    doc["erf_rss"] = e.at("rss");
    doc["source"] = "exp3ef";
  } else if (ef) {
    doc["exp3ef_not_reused"] = all_final ? "exp3ef has no erf fit" : "h fell back for some word";
  }
  doc["sigma_per_word"] = fits_per_word(dvec(doc, "l_norm", "exp9 A"), doc.at("g_per_word"));
  return c.emit_json("exp9_part_a_" + c.label, doc);
}

json exp9_c(Ctx& c) {
  const json& a = c.input(exp9a_job(c.label));
  const auto x = dvec(a, "l_norm", "exp9 A"), g = dvec(a, "g_mean", "exp9 A");
  const ModelFits mf = exp9c_models(x, g);
  json doc = {{"model", c.model}, {"label", c.label}, {"n_layers", c.n_layer}, {"n_points", g.size()}};
  for (const auto& f : mf.fits) {
    json j = {{"r2", f.r2}, {"bic", nullable(f.bic)}, {"rss", f.rss}};
    if (f.model == "erf") j["sigma"] = f.params.at(0);
    if (f.model == "sin_pi_1p") j["alpha"] = f.params.at(0);
    doc[f.model] = j;
  }
  json dropped = json::object();
  for (const auto& d : mf.dropped) dropped[d.model] = d.reason;
  if (!dropped.empty()) doc["dropped"] = dropped;
  const double dbic = doc.contains("erf") ? num(doc["cos_pi_0p"]["bic"]) - num(doc["erf"]["bic"]) : std::nan("");
  doc["delta_bic_cos_minus_erf"] = nullable(dbic);
  return c.emit_json("exp9_part_c_" + c.label, doc);
}

json exp9_convergence(Ctx& c) {
  json models = json::object();
  std::vector<double> x, y, yerr, Ls;
  std::vector<report::Series> overlay;
  report::Axis ln;
  ln.label = "l/L";
  for (const auto& in : c.job.inputs) {
    const json& a = in.result;
    const std::string lab = a.at("label").get<std::string>();
    std::vector<double> per;
    for (auto it = a.at("sigma_per_word").begin(); it != a.at("sigma_per_word").end(); ++it)
      if (it->is_number()) per.push_back(it->get<double>());
    const int L = a.at("n_layers").get<int>();
    models[lab] = {{"n_layers", L},
                   {"d_model", a.at("d_model")},
                   {"sigma_free", a.at("sigma_free")},
                   {"sigma_per_word", a.at("sigma_per_word")},
                   {"erf_r2", a.at("erf_r2")},
                   {"source", a.at("source")},
                   {"h_source", a.at("h_source")},
                   {"measured_on", measured_on(a.value("provenance", json::object()))}};
    overlay.push_back({lab, dvec(a, "l_norm", lab), dvec(a, "g_mean", lab), report::Series::Style::linespoints});
    if (!a.at("sigma_free").is_number()) continue;
    x.push_back(1.0 / L);
    Ls.push_back(L);
    y.push_back(num(a.at("sigma_free")));
    yerr.push_back(per.empty() ? 0.0 : analysis::pstdev(per));
  }
  json conv = {{"x_inv_layers", x}, {"y_sigma_free", y}, {"y_sigma_err", yerr}, {"sigma_pi", kSigmaPi}};
  std::set<double> distinct(x.begin(), x.end());
  report::Series pts{"σ_free ± std over words", x, y, report::Series::Style::points};
  for (size_t i = 0; i < y.size(); ++i) {
    pts.lo.push_back(y[i] - yerr[i]);
    pts.hi.push_back(y[i] + yerr[i]);
  }
  std::vector<report::Series> ser = {pts};
  report::Panel p1;
  if (distinct.size() >= 2) {
    const Convergence cv = convergence(x, y);
    conv.update({{"linear_slope", cv.slope},
                 {"linear_intercept", cv.intercept},
                 {"linear_r2", cv.r2},
                 {"sigma_extrapolated", cv.intercept},
                 {"se_intercept", nullable(cv.se_intercept)},
                 {"t_quantile", nullable(cv.t)},
                 {"ci_95_lower", nullable(cv.lower)},
                 {"ci_95_upper", nullable(cv.upper)},
                 {"within_95_ci", std::isfinite(cv.lower) ? json(cv.within) : json(nullptr)}});
    const auto xg = analysis::linspace(0, *std::max_element(x.begin(), x.end()), 50);
    std::vector<double> yg;
    for (double v : xg) yg.push_back(cv.intercept + cv.slope * v);
    ser.push_back({"linear fit", xg, yg, report::Series::Style::line});
    if (std::isfinite(cv.lower))
      ser.push_back({"95 % CI at 1/L → 0", {0.0, 0.0}, {cv.lower, cv.upper}, report::Series::Style::linespoints});
  } else {
    conv["linear_fit"] = "needs two or more models of different depth";
  }
  report::Axis xa, ya;
  xa.label = "1/L";
  xa.min = 0;
  ya.label = "σ_free";
  p1 = report::line_panel("σ_free vs 1/L (dashed: 1/√π)", xa, ya, ser);
  p1.hlines = {kSigmaPi};
  c.emit_plot({"exp9a_sigma_convergence", "", {p1}});
  c.emit_plot({"exp9a_g_overlay_all", "", {report::line_panel("g_mean per model", ln, {"g"}, overlay)}});
  json doc = {{"models", models}, {"convergence", conv}};
  return c.emit_json("exp9_part_a_convergence", doc);
}

json exp9_b(Ctx& c) {
  json models = json::object();
  std::vector<double> L, theta, lo, hi;
  for (const auto& in : c.job.inputs) {
    const json& r = in.result;
    const std::string lab = in.name.substr(0, in.name.find('/'));
    std::vector<std::vector<double>> th;
    for (const auto& row : r.at("thetas")) {
      std::vector<double> v;
      for (const auto& t : row) v.push_back(num(t));
      th.push_back(std::move(v));
    }
    const RotationStats st = rotation_stats(th);
    json m = {{"model", r.value("provenance", json::object()).value("model", lab)},
              {"n_layers", r.at("n_layer")},
              {"d_model", r.at("d_model")},
              {"n_samples", st.n_samples},
              {"theta_mean_per_layer", st.theta_mean},
              {"theta_std_per_layer", st.theta_std},
              {"cumulative_mean", st.cum_mean},
              {"cumulative_std", st.cum_std},
              {"cumulative_over_pi", st.over_pi_mean},
              {"cumulative_over_pi_sq_half", st.over_pi_sq_half},
              {"provenance", r.value("provenance", json::object())}};
    c.emit_text("exp9_part_b_" + lab + ".json", m.dump(2) + "\n", "application/json");
    m["measured_on"] = measured_on(m.at("provenance"));
    m.erase("provenance");
    models[lab] = m;
    L.push_back(r.at("n_layer").get<int>());
    theta.push_back(st.cum_mean);
    lo.push_back(st.cum_mean - st.cum_std);
    hi.push_back(st.cum_mean + st.cum_std);
  }
  const ScalingFits sf = scaling_fits(L, theta);
  json fits = json::object(), order = json::array(), dropped = json::object();
  report::Series pts{"Θ mean ± std", L, theta, report::Series::Style::points};
  pts.lo = lo;
  pts.hi = hi;
  std::vector<report::Series> ser = {pts};
  const auto Lg = analysis::linspace(std::max(1.0, *std::min_element(L.begin(), L.end()) * 0.8),
                                     *std::max_element(L.begin(), L.end()) * 1.1, 100);
  for (const auto& f : sf.fits) {
    json j = {{"formula", f.formula}, {"n_params", f.n_params}, {"rss", f.rss}, {"bic", nullable(f.bic)}};
    if (f.params.size() > 0) j["a"] = f.params[0];
    if (f.params.size() > 1) j["b"] = f.params[1];
    fits[f.name] = j;
    order.push_back(f.name);
    std::vector<double> y;
    for (double v : Lg) y.push_back(scaling_eval(f, v));
    ser.push_back({f.formula, Lg, y, report::Series::Style::line});
  }
  for (const auto& d : sf.dropped) dropped[d.model] = d.reason;
  report::Axis xa, ya;
  xa.label = "layers L";
  ya.label = "Θ (rad)";
  c.emit_plot({"exp9b_theta_scaling", "", {report::line_panel("cumulative rotation Θ vs depth", xa, ya, ser)}});
  json doc = {{"models", models}, {"scaling_fits", fits}, {"scaling_order", order}};
  if (!dropped.empty()) doc["scaling_dropped"] = dropped;
  return c.emit_json("exp9_part_b", doc);
}

namespace {

std::string f3(const json& v) { return report::fixed(num(v), 3); }
std::string f4(const json& v) { return report::fixed(num(v), 4); }

}  // namespace

json exp9_report(Ctx& c) {
  json all = {{"experiment", "exp9_pi_convergence"}};
  std::string body;
  json part_c = json::object();
  std::vector<double> npts, b_cos, b_erf, b_sin;
  for (const auto& in : c.job.inputs) {
    const json& r = in.result;
    if (in.name == "exp9/convergence") {
      all["part_a"] = {{"models", r.at("models")}, {"convergence", r.at("convergence")}};
      const json& cv = r.at("convergence");
      report::Table t({"model", "L", "σ_free", "std over words", "erf R²", "source"}, "lrrrrl");
      size_t i = 0;
      for (auto it = r.at("models").begin(); it != r.at("models").end(); ++it, ++i)
        t.row({it.key(), std::to_string(it->at("n_layers").get<int>()), f4(it->at("sigma_free")),
               i < cv.at("y_sigma_err").size() ? f4(cv.at("y_sigma_err")[i]) : "", f4(it->at("erf_r2")),
               it->at("source").get<std::string>()});
      body += "## A: σ_free per model and its convergence in 1/L\n\n" + t.str() + "\n";
      if (cv.contains("linear_intercept"))
        body += "σ(1/L → 0) = " + f4(cv.at("linear_intercept")) + " (slope " + f3(cv.at("linear_slope")) + ", R² " +
                f3(cv.at("linear_r2")) + "); 95 % CI [" + f4(cv.at("ci_95_lower")) + ", " + f4(cv.at("ci_95_upper")) +
                "] (t quantile " + f3(cv.at("t_quantile")) + "); 1/√π = 0.5642 " +
                (cv.at("within_95_ci").is_boolean() ? (cv.at("within_95_ci").get<bool>() ? "inside" : "outside")
                                                    : "— CI undefined with fewer than 3 models") +
                ".\n\n";
      body += report::image_md("exp9a_sigma_convergence.png", "σ_free vs 1/L") + "\n\n" +
              report::image_md("exp9a_g_overlay_all.png", "g_mean per model") + "\n\n";
    } else if (in.name == "exp9/b") {
      all["part_b"] = {{"models", r.at("models")}, {"scaling_fits", r.at("scaling_fits")}};
      report::Table t({"model", "L", "Θ mean", "Θ std", "Θ/π", "Θ/(π²/2)"}, "lrrrrr");
      for (auto it = r.at("models").begin(); it != r.at("models").end(); ++it)
        t.row({it.key(), std::to_string(it->at("n_layers").get<int>()), f3(it->at("cumulative_mean")),
               f3(it->at("cumulative_std")), f3(it->at("cumulative_over_pi")), f3(it->at("cumulative_over_pi_sq_half"))});
      report::Table s({"model", "k", "params", "RSS", "BIC"}, "lrlrr");
      for (const auto& n : r.at("scaling_order")) {
        const json& f = r.at("scaling_fits").at(n.get<std::string>());
        std::string p;
        if (f.contains("a")) p += "a = " + f4(f.at("a"));
        if (f.contains("b")) p += ", b = " + f4(f.at("b"));
        s.row({f.at("formula").get<std::string>(), std::to_string(f.at("n_params").get<int>()), p,
               report::fixed(num(f.at("rss")), 5), f.at("bic").is_number() ? report::fixed(num(f.at("bic")), 2) : "inf"});
      }
      body += "## B: cumulative rotation Θ and its scaling with depth\n\n" + t.str() +
              "\nScaling fits (unbounded, Levenberg–Marquardt / MINPACK lmdif), BIC order:\n\n" + s.str() + "\n" +
              report::image_md("exp9b_theta_scaling.png", "Θ vs L") + "\n\n";
    } else {
      part_c[r.at("label").get<std::string>()] = r;
      npts.push_back(num(r.at("n_points")));
      b_cos.push_back(r.contains("cos_pi_0p") ? num(r["cos_pi_0p"]["bic"]) : std::nan(""));
      b_erf.push_back(r.contains("erf") ? num(r["erf"]["bic"]) : std::nan(""));
      b_sin.push_back(r.contains("sin_pi_1p") ? num(r["sin_pi_1p"]["bic"]) : std::nan(""));
    }
  }
  if (!part_c.empty()) {
    all["part_c"] = {{"models", part_c}};
    report::Table t({"model", "points", "cos_pi_0p R² / BIC", "erf R² / BIC (σ)", "sin_pi_1p R² / BIC (α)",
                     "ΔBIC cos − erf"},
                    "lrrrrr");
    for (auto it = part_c.begin(); it != part_c.end(); ++it) {
      const json& r = *it;
      auto cell = [&](const char* m, const char* p) {
        if (!r.contains(m)) return std::string("dropped");
        std::string s = f4(r.at(m).at("r2")) + " / " + report::fixed(num(r.at(m).at("bic")), 2);
        if (p) s += " (" + f3(r.at(m).at(p)) + ")";
        return s;
      };
      t.row({it.key(), std::to_string(r.at("n_points").get<int>()), cell("cos_pi_0p", nullptr), cell("erf", "sigma"),
             cell("sin_pi_1p", "alpha"), report::fixed(num(r.at("delta_bic_cos_minus_erf")), 2)});
    }
    report::Axis xa, ya;
    xa.label = "depth points (L+1)";
    ya.label = "BIC";
    c.emit_plot({"exp9c_bic_vs_npoints", "",
                 {report::line_panel("BIC vs number of depth points", xa, ya,
                                     {{"cos_pi_0p", npts, b_cos, report::Series::Style::linespoints},
                                      {"erf", npts, b_erf, report::Series::Style::linespoints},
                                      {"sin_pi_1p", npts, b_sin, report::Series::Style::linespoints}})}});
    body += "## C: cos_pi_0p vs erf vs sin_pi_1p on g_mean\n\n" + t.str() + "\n" + c.figures_md() + "\n";
  }
  c.emit_text("exp9_convergence.json", all.dump(2) + "\n", "application/json");
  // Provenance: what was measured where (spec §9 is new science, A9).
  json a_models = all.contains("part_a") ? all["part_a"]["models"] : json::object();
  const json prov = c.provenance();
  std::string head =
      "# exp9: convergence of the π signatures across model sizes\n\n"
      "These are new results: the original exp9 never finished (spec §9, A9). A: σ_free of erf(x/(σ√2)) fitted "
      "to g_mean (exp3ef reused where h was the final-depth σ for every word; otherwise measured from exp3's units "
      "with the fallbacks, each one a loud warning), regressed on 1/L with a 95 % CI from t_{0.975, n−2}. B: Θ "
      "over the first max_samples positions of chunk 0 of the test split. C: ΔBIC of the 0-parameter cos model "
      "against erf.\n\n" +
      random_banner(prov) +
      "## Provenance: what was measured on which device and precision\n\n" +
      "Devices over all inputs: " + devices_of(prov) + "; precision: " + c.param("precision", "?") +
      " (fp32 = strict float32: TF32 off in cuBLAS and cuDNN on CUDA).\n\n";
  if (all.contains("part_b")) {
    report::Table t({"model", "B measured on", "precision", "torch", "random weights"}, "lllll");
    for (auto it = all["part_b"]["models"].begin(); it != all["part_b"]["models"].end(); ++it) {
      const json& mo = it->at("measured_on");
      t.row({it.key(), mo.at("devices").get<std::string>(), mo.at("precision").get<std::string>(),
             mo.at("torch_version").get<std::string>(), mo.at("random_weights").get<bool>() ? "YES" : "no"});
    }
    head += t.str() + "\n";
  }
  if (!a_models.empty()) {
    report::Table t({"model", "A measured on", "precision", "torch", "random weights", "A source", "h_source per word"},
                    "lllllll");
    for (auto it = a_models.begin(); it != a_models.end(); ++it) {
      std::string hs;
      for (auto h = it->at("h_source").begin(); h != it->at("h_source").end(); ++h)
        hs += (hs.empty() ? "" : ", ") + h.key() + ": " + h->get<std::string>();
      const json& mo = it->at("measured_on");
      t.row({it.key(), mo.at("devices").get<std::string>(), mo.at("precision").get<std::string>(),
             mo.at("torch_version").get<std::string>(), mo.at("random_weights").get<bool>() ? "YES" : "no",
             it->at("source").get<std::string>(), hs});
    }
    head += t.str() + "\n";
  }
  c.emit_text("exp9_results.md", head + body + platform::provenance_md(prov), "text/markdown");
  return {{"report", "exp9_results.md"}, {"document", "exp9_convergence.json"}};
}

}  // namespace spt::pi::detail
