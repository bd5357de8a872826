// exp6's k-means units and report (spec §6). See reduce.h.
#include "exp6/reduce.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "analysis/kmeans.h"
#include "analysis/pca.h"
#include "exp6/common.h"
#include "report/figure.h"
#include "report/markdown.h"

namespace spt::exp6 {

namespace {

using nlohmann::json;

// "17.7 %" (report::pct signs its values: it is for deltas).
std::string share(double fraction, int digits) {
  return std::isfinite(fraction) ? report::fixed(100 * fraction, digits) + " %" : "n/a";
}

double ppl_of(double nll, int64_t n) { return n > 0 ? std::exp(nll / static_cast<double>(n)) : std::nan(""); }

analysis::Matrix scores_matrix(const json& a, int64_t n_scores, const std::string& from) {
  if (!a.is_object() || !a.contains("scores")) throw std::runtime_error(from + " has no scores");
  const json& s = a.at("scores");
  analysis::Matrix m{static_cast<int64_t>(s.size()), 0, {}};
  if (m.rows == 0) throw std::runtime_error(from + " has no scores");
  m.cols = std::min<int64_t>(n_scores, static_cast<int64_t>(s[0].size()));
  for (const auto& row : s)
    for (int64_t c = 0; c < m.cols; ++c) m.v.push_back(row.at(static_cast<size_t>(c)).get<double>());
  return m;
}

json kmeans_step(platform::Reduce& r) {
  const json& a = r.input("a/pca");
  const int64_t k = r.param_int("k", 0);
  const auto seed = static_cast<uint64_t>(r.param_int("seed", static_cast<int64_t>(kKMeansSeed)));
  const int n_init = static_cast<int>(r.param_int("n_init", kKMeansInits));
  const analysis::Matrix x = scores_matrix(a, r.param_int("n_scores", kScoresForClustering), "a/pca");
  const analysis::KMeansResult km = analysis::kmeans(x, {.k = k, .n_init = n_init, .seed = seed});
  const auto reps = analysis::nearest_members(x, km);
  const auto sizes = analysis::cluster_sizes(km);
  int64_t non_empty = 0;
  for (int64_t n : sizes) non_empty += n > 0;
  return {{"k", k},
          {"seed", seed},
          {"n_init", n_init},
          {"n_scores", x.cols},
          {"labels", km.labels},
          {"representatives", reps},
          {"cluster_sizes", sizes},
          {"n_clusters", non_empty},
          {"n_replaced", x.rows - non_empty},
          {"inertia", km.inertia},
          {"n_iter", km.n_iter},
          {"best_init", km.best_init},
          {"rng", "spt mt19937_64 k-means++ (not scikit-learn's stream: labels differ from the original's, "
                  "compare inertia; spec §12 A13)"}};
}

// Sub-unit results by variant name, from inputs "<b|c>/ppl/<variant>/<range>".
std::map<std::string, std::vector<const json*>> units_by_variant(const platform::Reduce& r) {
  std::map<std::string, std::vector<const json*>> out;
  for (const char* prefix : {"b/ppl/", "c/ppl/"})
    for (const auto& [rest, res] : r.with_prefix(prefix)) out[rest.substr(0, rest.find('/'))].push_back(res);
  return out;
}

report::Axis log_axis(std::string label, bool integer) {
  report::Axis a = integer ? report::count_axis(std::move(label)) : report::Axis{std::move(label)};
  a.scale = report::Scale::log;
  return a;
}

// The original's gpt2 results (spec §6, exp6_results.md), for comparison
// columns when the model is gpt2.
const std::map<int64_t, double> kPublishedK = {{1, 2034.3},  {3, 1711.0},  {10, 1200.9}, {32, 558.3},
                                               {64, 329.9},  {80, 250.0},  {100, 125.3}, {110, 84.5},
                                               {120, 70.3},  {130, 64.2},  {140, 32.0},  {144, 29.8}};
const std::map<int64_t, double> kPublishedCluster = {{4, 1351.9},  {8, 2208.7}, {12, 1092.3},
                                                     {16, 1242.5}, {32, 830.4}, {64, 482.7}};
const std::map<std::string, int64_t> kPublishedThresholds = {{"0.5", 9}, {"0.8", 54}, {"0.9", 82}, {"0.95", 103}};

std::string published(const std::map<int64_t, double>& m, int64_t k) {
  const auto it = m.find(k);
  return it == m.end() ? "" : report::fixed(it->second, 1);
}

struct Report {
  platform::Reduce& r;
  std::string label;
  json doc;
  std::string md;
  double baseline = std::nan("");
  std::map<std::string, VariantSum> sums;
  bool gpt2 = false;  // add the original's published numbers

  void part_a(const json& a) {
    doc["n_layers"] = a.at("n_layers");
    doc["n_heads"] = a.at("n_heads");
    doc["d_head"] = a.at("d_head");
    doc["n_heads_total"] = a.at("n_heads_total");
    doc["exp6a"] = {{"W_flat_shape", a.at("W_flat_shape")},
                    {"W_flat_sha256", a.at("W_flat_sha256")},
                    {"explained_variance_ratio", a.at("explained_variance_ratio")},
                    {"cumulative_variance", a.at("cumulative_variance")},
                    {"thresholds", a.at("thresholds")}};
    const auto ratio = a.at("explained_variance_ratio").get<std::vector<double>>();
    const auto cum = a.at("cumulative_variance").get<std::vector<double>>();
    md += "## 6A: PCA of W_QK = W_Qᵀ·W_K (" + std::to_string(a.at("n_heads_total").get<int64_t>()) + " heads × " +
          std::to_string(a.at("W_flat_shape")[1].get<int64_t>()) + ")\n\n";
    report::Table t(gpt2 ? std::vector<std::string>{"variance", "K", "published"}
                         : std::vector<std::string>{"variance", "K"},
                    gpt2 ? "rrr" : "rr");
    for (const auto& [k, v] : a.at("thresholds").items()) {
      std::vector<std::string> row = {share(std::stod(k), 0),
                                      v.is_null() ? "not reached" : std::to_string(v.get<int64_t>())};
      if (gpt2) row.push_back(std::to_string(kPublishedThresholds.at(k)));
      t.row(row);
    }
    md += t.str() + "\n";
    std::string top;
    for (size_t i = 0; i < 3 && i < ratio.size(); ++i)
      top += (i ? ", " : "") + std::string("PC") + std::to_string(i + 1) + " " + share(ratio[i], 1);
    if (!cum.empty()) md += top + " (top " + std::to_string(std::min<size_t>(3, cum.size())) + " = " +
                            share(cum[std::min<size_t>(3, cum.size()) - 1], 1) + ").\n\n";
    std::vector<double> ks;
    for (size_t i = 0; i < cum.size(); ++i) ks.push_back(static_cast<double>(i + 1));
    report::Panel p = report::line_panel("cumulative explained variance", report::count_axis("K (components)"),
                                         report::Axis{"cumulative variance", report::Unit::percent},
                                         {{"cumulative", ks, cum}});
    for (const auto& [k, v] : a.at("thresholds").items()) {
      p.hlines.push_back(std::stod(k));
      if (!v.is_null()) p.labels.push_back({v.get<double>(), std::stod(k), "K=" + std::to_string(v.get<int64_t>())});
    }
    r.emit_plot({"exp6a_cumvar_" + label, "exp6A: cumulative explained variance of W_QK (" + label + ")", {p}});
  }

  void baseline_sum() {
    if (!sums.count("baseline")) return;
    baseline = sums.at("baseline").ppl();
  }

  json variant_json(const VariantSum& s) const {
    const double p = s.ppl();
    return {{"perplexity", p}, {"ratio", p / baseline}, {"nll_sum", s.nll}, {"n_tokens", s.count},
            {"n_chunks", s.n_chunks}};
  }

  void part_b(const json* a, const std::vector<int64_t>& ks) {
    const int64_t n_total = doc.value("n_heads_total", int64_t{0});
    json kv = json::object();
    std::vector<double> xs, ppls, ratios;
    report::Table t(gpt2 ? std::vector<std::string>{"K", "cum. variance", "PPL", "ratio", "published PPL"}
                         : std::vector<std::string>{"K", "cum. variance", "PPL", "ratio"},
                    gpt2 ? "rrrrr" : "rrrr");
    for (int64_t k : ks) {
      const std::string v = variant_name("wqk_pca", k);
      if (!sums.count(v)) throw std::runtime_error("report: no sub-units of variant " + v);
      json e = variant_json(sums.at(v));
      double cv = std::nan("");
      if (a && k <= static_cast<int64_t>(a->at("cumulative_variance").size()))
        cv = a->at("cumulative_variance")[static_cast<size_t>(k - 1)].get<double>();
      e["cumulative_variance"] = std::isfinite(cv) ? json(cv) : json(nullptr);
      kv[std::to_string(k)] = e;
      xs.push_back(static_cast<double>(k));
      ppls.push_back(e["perplexity"]);
      ratios.push_back(e["ratio"]);
      std::vector<std::string> row = {std::to_string(k), share(cv, 1), report::fixed(e["perplexity"], 1),
                                      report::fixed(e["ratio"], 2)};
      if (gpt2) row.push_back(published(kPublishedK, k));
      t.row(row);
    }
    // The K = all check (spec: must equal the baseline; warn over 0.01).
    json check = nullptr;
    std::string check_md;
    const std::string all = variant_name("wqk_pca", n_total);
    if (sums.count(all)) {
      const double p = sums.at(all).ppl(), diff = std::abs(p - baseline);
      check = {{"K", n_total}, {"perplexity", p}, {"baseline", baseline}, {"abs_diff", diff}, {"ok", diff <= 0.01}};
      check_md = "K = all (" + std::to_string(n_total) + ") check: PPL " + report::fixed(p, 4) + " vs baseline " +
                 report::fixed(baseline, 4) + ", |diff| " + report::fixed(diff, 6) + " — " +
                 (diff <= 0.01 ? "matches." : "**WARNING: |diff| > 0.01, the injection does not reproduce the "
                                              "baseline.**") + "\n\n";
      if (diff > 0.01) r.out.notes.push_back("exp6 K=all check failed: |diff| = " + std::to_string(diff));
    }
    doc["exp6b"] = {{"baseline", baseline}, {"K_all_verification", check}, {"K_values", kv}};
    md += "## 6B: perplexity with W_QK rebuilt from K components\n\nBaseline PPL " + report::fixed(baseline, 2) +
          ".\n\n" + t.str() + "\n" + check_md;
    const report::Axis kx = log_axis("K (components)", true);
    report::Panel pp = report::line_panel("PPL vs K", kx, log_axis("PPL", false), {{"reconstructed", xs, ppls}});
    pp.hlines = {baseline};
    report::Panel pr = report::line_panel("ratio vs K", kx, log_axis("PPL / baseline", false), {{"ratio", xs, ratios}});
    pr.hlines = {1.05, 1.10};
    r.emit_plot({"exp6b_ppl_vs_K_" + label, "exp6B: perplexity under W_QK reconstruction (" + label + ")", {pp, pr}});
  }

  void part_c(const json* a, const std::vector<int64_t>& ks) {
    json kv = json::object();
    std::vector<double> xs, ppls, ratios;
    report::Table t(gpt2 ? std::vector<std::string>{"k", "replaced", "PPL", "ratio", "clusters", "inertia",
                                                    "published PPL"}
                         : std::vector<std::string>{"k", "replaced", "PPL", "ratio", "clusters", "inertia"},
                    gpt2 ? "rrrrrrr" : "rrrrrr");
    const json* largest = nullptr;
    for (int64_t k : ks) {
      const json& km = r.input("c/kmeans/k" + std::to_string(k));
      const std::string v = variant_name("wqk_cluster", k);
      if (!sums.count(v)) throw std::runtime_error("report: no sub-units of variant " + v);
      json e = variant_json(sums.at(v));
      for (const char* key : {"n_clusters", "n_replaced", "cluster_sizes", "labels", "representatives", "inertia",
                              "seed", "n_init"})
        e[key] = km.at(key);
      kv[std::to_string(k)] = e;
      xs.push_back(static_cast<double>(k));
      ppls.push_back(e["perplexity"]);
      ratios.push_back(e["ratio"]);
      std::vector<std::string> row = {std::to_string(k), std::to_string(km.at("n_replaced").get<int64_t>()),
                                      report::fixed(e["perplexity"], 1), report::fixed(e["ratio"], 2),
                                      std::to_string(km.at("n_clusters").get<int64_t>()),
                                      report::fixed(km.at("inertia").get<double>(), 2)};
      if (gpt2) row.push_back(published(kPublishedCluster, k));
      t.row(row);
      largest = &km;
    }
    doc["exp6c"] = {{"baseline", baseline}, {"k_values", kv}};
    md += "## 6C: heads replaced by their cluster's representative\n\nk-means++ (n_init 10, seed recorded) on the "
          "first 20 PCA scores; each cluster's member nearest its centroid keeps its W_QK, the others get the "
          "representative's original W_QK through the same injection. scikit-learn's RNG cannot be reproduced "
          "here, so the labels differ from the original's; compare inertia and trend, not labels (spec §12 A13). "
          "Labels and representatives are saved in the JSON. The baseline is 6B's.\n\n" +
          t.str() + "\n";
    report::Panel pp = report::line_panel("PPL vs k", report::count_axis("k (clusters)"), log_axis("PPL", false),
                                          {{"clustered", xs, ppls}});
    pp.hlines = {baseline};
    report::Panel pr = report::line_panel("ratio vs k", report::count_axis("k (clusters)"),
                                          log_axis("PPL / baseline", false), {{"ratio", xs, ratios}});
    r.emit_plot({"exp6c_cluster_ppl_" + label, "exp6C: perplexity with clustered heads (" + label + ")", {pp, pr}});
    if (a && largest) cluster_viz(*a, *largest);
  }

  // A second 2-component PCA of S[:, :20] (ratios relative to that 20-D
  // space, spec §6 issue ii); points by layer and by the largest k's labels.
  void cluster_viz(const json& a, const json& km) {
    const analysis::Matrix s = scores_matrix(a, kScoresForClustering, "a/pca");
    if (s.cols < 2 || s.rows < 2) return;
    const analysis::Pca p2 = analysis::pca(s, 2);
    const int64_t H = a.at("n_heads").get<int64_t>();
    const auto labels = km.at("labels").get<std::vector<int64_t>>();
    std::map<int64_t, report::Series> by_layer, by_cluster;
    for (int64_t i = 0; i < s.rows; ++i) {
      for (auto* m : {&by_layer, &by_cluster}) {
        const int64_t key = m == &by_layer ? i / H : labels[static_cast<size_t>(i)];
        auto& ser = (*m)[key];
        ser.label = (m == &by_layer ? "L" : "c") + std::to_string(key);
        ser.x.push_back(p2.scores.at(i, 0));
        ser.y.push_back(p2.scores.at(i, 1));
      }
    }
    auto series = [](const std::map<int64_t, report::Series>& m) {
      std::vector<report::Series> out;
      for (const auto& [k, v] : m) out.push_back(v);
      return out;
    };
    const std::string cols = std::to_string(s.cols);
    const std::string ax = " (" + share(p2.explained_variance_ratio[0], 1) + " / " +
                           share(p2.explained_variance_ratio[1], 1) + " of the " + cols + "-D score space)";
    report::Axis x{"PC1"}, y{"PC2"};
    r.emit_plot({"exp6c_cluster_viz_" + label, "exp6C: heads in the first two components of S[:, :" + cols + "]" + ax,
                 {report::scatter_panel("by layer", x, y, series(by_layer)),
                  report::scatter_panel("by cluster (k = " + std::to_string(km.at("k").get<int64_t>()) + ")", x, y,
                                        series(by_cluster))}});
  }
};

json report_step(platform::Reduce& r) {
  Report rep{r, r.param("label"), json::object(), "", std::nan(""), {}};
  const json* a = r.maybe("a/pca");
  for (const auto& [v, units] : units_by_variant(r)) rep.sums[v] = sum_units(units, v);
  rep.doc["model"] = r.param("model_name", r.param("model"));
  const json prov = r.provenance();
  rep.md = "# exp6: PCA basis of W_QK, perplexity under reconstruction, head clustering (" + rep.label + ")\n\n" +
           platform::random_banner(a ? a->value("provenance", json::object()) : json::object());
  rep.gpt2 = rep.label == "gpt2" && a && a->value("n_heads_total", 0) == 144 &&
             !a->value("provenance", json::object()).value("random_weights", false);
  if (rep.gpt2)
    rep.md += "The \"published\" columns are the original's gpt2 results (spec §6; baseline 29.79, 195 chunks; "
              "6C's clusters came from scikit-learn's RNG).\n\n";
  if (a) rep.part_a(*a);
  rep.baseline_sum();
  const int64_t planned = r.param_int("n_chunks_planned", 0);
  if (!rep.sums.empty()) {
    const auto& b = rep.sums.count("baseline") ? rep.sums.at("baseline") : rep.sums.begin()->second;
    rep.doc["chunks"] = {{"chunk_set", "T (test split)"}, {"max_tokens", r.param_int("max_tokens", 0)},
                         {"chunk_len", r.param_int("chunk_len", 0)}, {"n_chunks", b.n_chunks},
                         {"n_chunks_planned", planned}, {"n_tokens", b.count}};
    rep.md += "Evaluation set: " + std::to_string(b.n_chunks) + " chunks of " +
              std::to_string(r.param_int("chunk_len", 0)) + " tokens of the WikiText-2 test split (chunker T, first " +
              std::to_string(r.param_int("max_tokens", 0)) + " tokens), " + std::to_string(b.count) +
              " predicted tokens; per-variant NLL summed in double over the chunk-range sub-units.\n\n";
    if (b.n_chunks != planned)
      r.out.notes.push_back("exp6: " + std::to_string(b.n_chunks) + " chunks evaluated, " + std::to_string(planned) +
                            " planned (the split is shorter than max_tokens)");
  }
  const auto ks = r.job.params.value("ks", json::array()).get<std::vector<int64_t>>();
  const auto cks = r.job.params.value("cluster_ks", json::array()).get<std::vector<int64_t>>();
  if (!ks.empty()) rep.part_b(a, ks);
  if (!cks.empty()) rep.part_c(a, cks);
  rep.md += r.figures_md() + "\n" + platform::provenance_md(prov);
  const json out = r.emit_json("exp6_" + rep.label, rep.doc);
  r.emit_text("exp6_results_" + rep.label + ".md", rep.md, "text/markdown");
  return out;
}

}  // namespace

double VariantSum::ppl() const { return ppl_of(nll, count); }

VariantSum sum_units(const std::vector<const json*>& units, const std::string& variant) {
  std::vector<std::pair<int64_t, const json*>> sorted;
  for (const json* u : units) sorted.push_back({u->at("chunk_begin").get<int64_t>(), u});
  std::sort(sorted.begin(), sorted.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  VariantSum s;
  int64_t next = 0;
  for (const auto& [begin, u] : sorted) {
    if (begin != next)
      throw std::runtime_error("variant " + variant + ": sub-units " + (begin < next ? "overlap" : "leave a gap") +
                               " at chunk " + std::to_string(std::min(begin, next)));
    // A range past the end of a short split evaluates nothing; it still
    // counts as covered.
    next = u->at("chunk_end").get<int64_t>();
    s.nll += u->at("nll_sum").get<double>();
    s.count += u->at("n_tokens").get<int64_t>();
    s.n_chunks += u->at("n_chunks").get<int64_t>();
  }
  return s;
}

platform::ReduceOutput run_reduce(const JobSpec& job, const platform::ReduceContext& rc) {
  platform::Reduce r(job, rc);
  const std::string step = job.params.value("reduce", std::string());
  if (step == "kmeans")
    r.out.result = kmeans_step(r);
  else if (step == "exp6")
    r.out.result = report_step(r);
  else
    throw std::runtime_error("unknown exp6 reduce step '" + step + "'");
  if (r.out.result.is_object() && !r.out.result.contains("provenance")) r.out.result["provenance"] = r.provenance();
  return std::move(r.out);
}

}  // namespace spt::exp6
