// exp2 (spec §4): A response function and collapse, B Landau-type fits of
// f_mean (last depth dropped, BIC order), C logit lens of strong_A/strong_B.
#include <cmath>
#include <limits>

#include "analysis/fit_models.h"
#include "analysis/stats.h"
#include "platform/prompts.h"
#include "platform/model_names.h"
#include "report/markdown.h"
#include "sigma/common.h"
#include "sigma/reduce_internal.h"
#include "sigma/science.h"

namespace spt::sigma::detail {

namespace {

constexpr int kExcludeFinal = 1;

// x and y of Part B: depths 0..L−1 (the last one dropped).
void fit_data(const json& resp, int n_layer, std::vector<double>& x, std::vector<double>& y) {
  y = dvec(resp, "f_mean", "exp2 response");
  x = analysis::linspace(0, 1, n_layer + 1);
  if (y.size() != x.size()) throw std::runtime_error("exp2 response: f_mean has " + std::to_string(y.size()) +
                                                     " depths, the model " + std::to_string(x.size()));
  x.resize(x.size() - kExcludeFinal);
  y.resize(y.size() - kExcludeFinal);
}

const analysis::FitModel& family(const std::vector<analysis::FitModel>& models, const std::string& name) {
  for (const auto& m : models)
    if (m.name == name) return m;
  throw std::runtime_error("unknown exp2 fit family '" + name + "'");
}

double bic_of(const json& fit) { return fit.at("bic").is_number() ? fit.at("bic").get<double>() : INFINITY; }

// Top-1 of each depth, as the JSON keeps it (top1, its probability, top3).
json lens_layers(const json& lens) {
  json layers = json::array();
  for (const auto& l : lens)
    layers.push_back({{"top1", l.at("top1")}, {"top1_prob", l.at("top1_prob")}, {"top3", l.at("top3")}});
  return {{"layers", layers}};
}

}  // namespace

json exp2_response(Ctx& c) {
  const std::string word = c.param("word");
  std::vector<std::string> labels;
  std::vector<std::vector<double>> sigma;
  for (const auto& cond : platform::prompt_sets().experiment_for(word).conditions) {
    const std::string name = prof_job(c.label, word, cond.label);
    labels.push_back(cond.label);
    sigma.push_back(dvec(profile(c, name), "sigma", name));
  }
  const Response r = response(labels, sigma);
  json h = json::object(), f = json::object(), s = json::object();
  for (size_t i = 0; i < labels.size(); ++i) {
    s[labels[i]] = sigma[i];
    if (!r.valid) continue;
    h[labels[i]] = r.h[i];
    if (r.kept[i]) f[labels[i]] = r.f[i];
  }
  return {{"word", word},     {"valid", r.valid},  {"h_values", h},
          {"f_curves", f},    {"f_mean", r.f_mean}, {"collapse_variance", nullable(r.collapse_variance)},
          {"sigma", s},       {"labels", labels}};
}

json exp2_fit(Ctx& c) {
  const std::string word = c.param("word"), fam = c.param("family");
  const json& resp = c.input("exp2/" + c.label + "/response/" + word);
  json out = {{"word", word}, {"family", fam}};
  if (!resp.value("valid", false) || resp.at("f_mean").empty()) {
    out["skipped"] = "no response curve (|half| < 1e-8 or no condition with |h| > 0.05)";
    return out;
  }
  std::vector<double> x, y;
  fit_data(resp, c.n_layer, x, y);
  const auto models = analysis::exp2_models(analysis::mean(y));
  const auto ranked = analysis::fit_and_rank({family(models, fam)}, x, y, kMaxfev, analysis::InfoCriterion::fitting_py);
  if (ranked.fits.empty())
    out["dropped"] = ranked.dropped.empty() ? "no result" : ranked.dropped.front().reason;
  else
    out["fit"] = fit_json(ranked.fits.front(), true);
  return out;
}

namespace {

struct WordDoc {
  json doc;
  std::vector<std::string> order;  // families in BIC order
};

WordDoc word_doc(Ctx& c, const std::string& word, bool parts_b, bool parts_c) {
  WordDoc w;
  if (const json* resp = c.maybe("exp2/" + c.label + "/response/" + word))
    w.doc["response"] = {{"h_values", resp->at("h_values")},
                         {"collapse_variance", resp->at("collapse_variance")},
                         {"f_mean", resp->at("f_mean")}};
  if (parts_b) {
    std::vector<std::pair<double, json>> fits;
    json dropped = json::object();
    for (const char* fam : kExp2Families) {
      const json& r = c.input("exp2/" + c.label + "/fit/" + word + "/" + fam);
      if (r.contains("fit"))
        fits.emplace_back(bic_of(r.at("fit")), r.at("fit"));
      else
        dropped[fam] = r.value("dropped", r.value("skipped", std::string("?")));
    }
    std::stable_sort(fits.begin(), fits.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    json fj = json::object();
    for (const auto& [bic, f] : fits) {
      w.order.push_back(f.at("model").get<std::string>());
      fj[w.order.back()] = f;
    }
    w.doc["fits"] = fj;
    w.doc["fit_order"] = w.order;
    if (!dropped.empty()) w.doc["fits_dropped"] = dropped;
  }
  if (parts_c) {
    json lens = json::object(), corrected = json::object();
    for (const char* cond : {"strong_A", "strong_B"}) {
      const json& r = profile(c, lens_job(c.label, word, cond));
      lens[cond] = lens_layers(r.at("lens").at("uncorrected"));
      corrected[cond] = lens_layers(r.at("lens").at("corrected"));
    }
    w.doc["logit_lens"] = lens;
    w.doc["logit_lens_corrected"] = corrected;
  }
  return w;
}

void collapse_figure(Ctx& c, const std::string& word, const json& resp) {
  const auto mean = dvec(resp, "f_mean", "response");
  if (mean.empty()) return;
  std::vector<double> l;
  for (size_t i = 0; i < mean.size(); ++i) l.push_back(static_cast<double>(i));
  std::vector<report::Series> left, right;
  for (const auto& cond : resp.at("labels")) {  // condition order, not key order
    const std::string key = cond.get<std::string>();
    if (!resp.at("f_curves").contains(key)) continue;  // |h| <= 0.05: not a curve
    const auto f = resp.at("f_curves").at(key).get<std::vector<double>>();
    std::vector<double> d;
    for (size_t i = 0; i < f.size(); ++i) d.push_back(f[i] - mean[i]);
    const std::string lab = key + " (h = " + report::fixed(num(resp.at("h_values").at(key)), 2) + ")";
    left.push_back({lab, l, f, report::Series::Style::linespoints});
    right.push_back({lab, l, d, report::Series::Style::linespoints});
  }
  left.push_back({"mean", l, mean, report::Series::Style::dashed});
  const json& cv = resp.at("collapse_variance");
  auto pr = report::line_panel("f_c − f_mean (collapse variance " +
                                   (cv.is_number() ? report::fixed(num(cv), 4) : std::string("n/a")) + ")",
                               depth_axis(), {"f_c − f_mean"}, right);
  pr.hlines = {0};
  c.emit_plot({"exp2_collapse_" + word + "_" + c.label, "Response collapse: " + word,
               {report::line_panel("f_c(l) = σ_c(l)/h_c", depth_axis(), {"f"}, left), pr}});
}

void fit_figure(Ctx& c, const std::string& word, const json& resp, const json& fits) {
  std::vector<double> x, y;
  fit_data(resp, c.n_layer, x, y);
  const auto models = analysis::exp2_models(analysis::mean(y));
  const auto grid = analysis::linspace(0, x.back(), 200);
  std::vector<report::Series> s = {{"f_mean (last depth dropped)", x, y, report::Series::Style::points}};
  for (auto it = fits.begin(); it != fits.end(); ++it)
    s.push_back({it.key() + " (R² " + report::fixed(num(it->at("r2")), 3) + ", BIC " +
                     report::fixed(bic_of(*it), 1) + ")",
                 grid, eval_fit(models, *it, grid), report::Series::Style::line});
  c.emit_plot({"exp2_fit_" + word + "_" + c.label, "",
               {report::line_panel("Fits of f_mean: " + word, lnorm_axis(), {"f_mean"}, s)}});
}

void lens_figure(Ctx& c, const std::string& word, const std::string& cond) {
  const json& r = profile(c, lens_job(c.label, word, cond));
  const auto s = dvec(r, "sigma", cond);
  std::vector<double> l, half, ds, prob;
  std::vector<std::string> tokens;
  for (size_t i = 0; i < s.size(); ++i) l.push_back(static_cast<double>(i));
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    half.push_back(i + 0.5);
    ds.push_back(s[i + 1] - s[i]);
  }
  const size_t every = std::max<size_t>(1, s.size() / 15);
  auto pp = report::line_panel("top-1 probability (lens without b_U, as the original)", depth_axis(),
                               {"p(top-1)"}, {});
  report::Series bars{"", l, {}, report::Series::Style::bars};
  for (size_t i = 0; i < r.at("lens").at("uncorrected").size(); ++i) {
    const json& d = r.at("lens").at("uncorrected").at(i);
    bars.y.push_back(d.at("top1_prob").get<double>());
    if (i % every == 0) pp.labels.push_back({static_cast<double>(i), bars.y.back(), d.at("top1").get<std::string>()});
  }
  pp.series.push_back(bars);
  auto p1 = report::line_panel("σ(l)", depth_axis(), {"σ"}, {{"", l, s, report::Series::Style::linespoints}});
  auto p2 = report::line_panel("Δσ across each block", depth_axis(), {"Δσ"}, {{"", half, ds, report::Series::Style::bars}});
  p1.hlines = p2.hlines = {0};
  report::Plot plot{"exp2_logitlens_" + word + "_" + cond + "_" + c.label, "Logit lens: " + word + " " + cond,
                    {p1, p2, pp}};
  plot.cols = 1;
  c.emit_plot(plot);
}

}  // namespace

json exp2(Ctx& c) {
  const std::string parts = c.param("parts", "abc");
  const bool b = parts.find('b') != std::string::npos, cc = parts.find('c') != std::string::npos;
  json words = json::object(), tally = json::object();
  std::vector<report::Series> universality;
  for (const auto& w : platform::prompt_sets().direction_words()) {
    WordDoc wd = word_doc(c, w, b, cc);
    if (!wd.order.empty()) {
      wd.doc["best_fit"] = wd.order.front();
      tally[wd.order.front()] = tally.value(wd.order.front(), 0) + 1;
    }
    if (const json* resp = c.maybe("exp2/" + c.label + "/response/" + w)) {
      collapse_figure(c, w, *resp);
      if (b && wd.doc.contains("fits") && !resp->at("f_mean").empty()) fit_figure(c, w, *resp, wd.doc.at("fits"));
      const auto fm = dvec(*resp, "f_mean", w);
      if (!fm.empty()) universality.push_back({w, depth_x(c.n_layer), minmax_scaled(fm), report::Series::Style::line});
    }
    if (cc)
      for (const char* cond : {"strong_A", "strong_B"}) lens_figure(c, w, cond);
    words[w] = wd.doc;
  }
  if (!universality.empty())
    c.emit_plot({"exp2_universality_" + c.label, "",
                 {report::line_panel("f_mean min–max scaled, every word (" + c.label + ")", lnorm_axis(),
                                     {"scaled f_mean"}, universality)}});
  json doc = {{"model", c.model}, {"n_layers", c.n_layer}, {"n_exclude_final", kExcludeFinal},
              {"words", words},   {"parts", parts}};
  if (b) doc["family_tally"] = tally;
  if (cc)
    doc["logit_lens_note"] =
        "logit_lens omits b_U as the original did (spec A5): softmax(LNPre(r)·W_U), not the model's output "
        "distribution even at depth L; logit_lens_corrected adds b_U";
  doc["device"] = device_of(c.provenance());
  doc["figures"] = png_names(c);
  return c.emit_json("exp2_" + c.label, doc);
}

namespace {

std::string params_str(const json& fit) {
  std::string s;
  for (const auto& n : fit.at("param_names")) {
    const std::string k = n.get<std::string>();
    if (k == "A" || k == "B") continue;  // amplitudes: the original's table shows shape parameters
    s += (s.empty() ? "" : ", ") + k + " = " + report::fixed(num(fit.at("params").at(k)), 2);
  }
  return s;
}

std::string exp2_section(const json& doc) {
  std::string s = "## " + platform::model_label(doc.value("model", std::string("?"))) + " (" + std::to_string(doc.value("n_layers", 0)) +
                  " layers)\n\n" + random_banner(doc.value("provenance", json::object()));
  report::Table cv({"word", "collapse variance", "best fit", "R²", "BIC", "key parameters"}, "lrlrrl");
  for (const auto& word : platform::prompt_sets().direction_words()) {  // file order, not key order
    if (!doc.at("words").contains(word)) continue;
    const json& w = doc.at("words").at(word);
    const json cvv = w.contains("response") ? w.at("response").at("collapse_variance") : json(nullptr);
    std::string best = "-", r2 = "-", bic = "-", params = "-";
    if (w.contains("best_fit")) {
      const json& f = w.at("fits").at(w.at("best_fit").get<std::string>());
      best = f.at("model").get<std::string>();
      r2 = report::fixed(num(f.at("r2")), 3);
      bic = ic_str(f.at("bic"));
      params = params_str(f);
    }
    cv.row({word, cvv.is_number() ? report::fixed(num(cvv), 4) : "n/a", best, r2, bic, params});
  }
  s += cv.str() + "\n";
  if (doc.contains("family_tally")) {
    s += "Family tally (best by BIC):";
    for (auto it = doc.at("family_tally").begin(); it != doc.at("family_tally").end(); ++it)
      s += " " + it.key() + " " + std::to_string(it->get<int>()) + ";";
    s += "\n\n";
  }
  if (doc.contains("logit_lens_note")) {
    s += "Logit lens top-1 by depth (" + doc.at("logit_lens_note").get<std::string>() + "):\n\n";
    for (const auto& word : platform::prompt_sets().direction_words())
      for (const char* cond : {"strong_A", "strong_B"}) {
        if (!doc.at("words").contains(word) || !doc.at("words").at(word).contains("logit_lens")) continue;
        const json& w = doc.at("words").at(word);
        std::string line, prev;
        int depth = 0;
        for (const auto& l : w.at("logit_lens").at(cond).at("layers")) {
          const std::string t = l.at("top1").get<std::string>();
          if (t != prev) line += (line.empty() ? "" : " → ") + std::string("\"") + t + "\" (" + std::to_string(depth) + ")";
          prev = t;
          ++depth;
        }
        s += "- " + word + " " + cond + ": " + line + "\n";
      }
    s += "\n";
  }
  return s;
}

}  // namespace

json exp2_report(Ctx& c) {
  std::string body;
  for (const auto& in : c.job.inputs) {
    body += exp2_section(in.result);
    body += embed_figures(in.result);
    body += provenance_md(in.result.value("provenance", json::object()));
  }
  c.emit_text("exp2_results.md",
              "# exp2: response function, Landau-type fits, logit lens\n\n"
              "A: h_c = (σ_c(L) − mid)/half, f_c = σ_c/h_c for |h_c| > 0.05, collapse variance = mean over depths of "
              "the variance across curves. B: power_law, tanh, sigmoid, two_stage fitted to f_mean without the last "
              "depth (TRF, maxfev 20000), BIC order. C: logit lens at strong_A/strong_B (spec §4).\n\n" +
                  body,
              "text/markdown");
  return {{"report", "exp2_results.md"}};
}

}  // namespace spt::sigma::detail
