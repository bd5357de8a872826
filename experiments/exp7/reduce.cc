#include "exp7/reduce.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include "analysis/pca.h"
#include "exp7/arrays.h"
#include "exp7/common.h"
#include "exp7/science.h"
#include "report/figure.h"
#include "report/markdown.h"
#include "spt/hash.h"

namespace spt::exp7 {

using nlohmann::json;

namespace {

struct Ctx : platform::Reduce {
  using platform::Reduce::Reduce;

  // The capture artifact the input `source` names, read from the store.
  F32Array capture(const std::string& source) const {
    const json& r = input(source);
    if (!r.contains("artifact") || !r.at("artifact").contains("sha256"))
      throw std::runtime_error("input " + source + " names no artifact");
    if (!rc.fetch) throw std::runtime_error("no artifact store to fetch " + source + "'s array from");
    return read_f32(rc.fetch(r.at("artifact").at("sha256").get<std::string>()));
  }

  // Writes μ and the components as an artifact; returns {name, sha256, rows}.
  json emit_basis(const std::string& name, const analysis::Pca& p) {
    F32Array a;
    const int64_t d = p.components.cols, nc = p.components.rows;
    a.shape = {1 + nc, d};
    a.data.reserve(static_cast<size_t>((1 + nc) * d));
    for (double v : p.mean) a.data.push_back(static_cast<float>(v));
    for (double v : p.components.v) a.data.push_back(static_cast<float>(v));
    a.meta = {{"rows", "row 0: mean; rows 1..: components"}, {"job", job.name}};
    std::filesystem::create_directories(rc.out_dir);
    const std::string path = (std::filesystem::path(rc.out_dir) / name).string();
    write_f32(path, a);
    out.files.push_back({name, path, "application/octet-stream"});
    return {{"name", name}, {"sha256", sha256_file(path)}, {"rows", nc}, {"d", d}};
  }

  std::string file_label() const {
    std::string s = param("label", param("model"));
    for (char& ch : s)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.' && ch != '_') ch = '_';
    return s;
  }
};

json step_pca(Ctx& c) {
  const F32Array a = c.capture(c.param("source"));
  const int64_t index = c.param_int("index", -1);
  const analysis::Pca p = analysis::pca(slab(a, index));
  json r = {{"block", c.param_int("block", index)},
            {"what", c.param("what")},
            {"n_samples", a.shape[a.shape.size() - 2]},
            {"d_model", a.shape.back()},
            {"explained_variance_ratio", p.explained_variance_ratio},
            {"thresholds", thresholds_json(p.explained_variance_ratio)}};
  if (c.job.params.value("basis", false))
    r["basis"] = c.emit_basis("exp7b_basis_" + c.file_label() + "_b" + std::to_string(index) + ".f32", p);
  return r;
}

json step_shared(Ctx& c) {
  const F32Array a = c.capture(c.param("source"));
  const int64_t L = slab_count(a), n = a.shape[a.shape.size() - 2];
  const analysis::Pca p = analysis::pca(stacked(a, L));
  json eval = json::object(), skipped = json::array();
  for (const auto& kj : c.job.params.at("recon_ks")) {
    const int64_t k = kj.get<int64_t>();
    if (k > p.components.rows) {
      skipped.push_back(k);
      continue;
    }
    json per = json::object();
    for (int64_t b = 0; b < L; ++b) {
      const Recon r = reconstruction(slab(a, b), p, b * n, k);
      per[std::to_string(b)] = {{"cos_sim", r.cos_sim}, {"l2_error", r.l2_error}, {"relative_l2", r.relative_l2}};
    }
    eval[std::to_string(k)] = per;
  }
  return {{"shared_thresholds", thresholds_json(p.explained_variance_ratio)},
          {"explained_variance_ratio", p.explained_variance_ratio},
          {"eval", eval},
          {"skipped_ks", skipped},
          {"n_samples", L * n},
          {"basis", c.emit_basis("exp7c_basis_" + c.file_label() + "_shared.f32", p)}};
}

std::vector<double> cumulative(const json& ratio) {
  std::vector<double> out;
  double s = 0;
  for (const auto& v : ratio) out.push_back(s += v.get<double>());
  return out;
}

std::vector<double> iota(size_t n, size_t limit = SIZE_MAX) {
  std::vector<double> x;
  for (size_t i = 1; i <= std::min(n, limit); ++i) x.push_back(static_cast<double>(i));
  return x;
}

report::Series curve(const std::string& label, const json& ratio, size_t limit = SIZE_MAX) {
  report::Series s;
  s.label = label;
  s.x = iota(ratio.size(), limit);
  s.y = cumulative(ratio);
  s.y.resize(s.x.size());
  return s;
}

report::Axis frac_axis() {
  report::Axis a;
  a.label = "cumulative explained variance";
  a.unit = report::Unit::percent;
  a.min = 0;
  a.max = 1;
  return a;
}

// 7D: the (variant, chunk range) sub-units summed in double per variant.
struct PplSum {
  double nll = 0;
  int64_t tokens = 0, chunks = 0;
  int64_t k_used = 0;
};

std::map<std::string, PplSum> sum_ppl(const Ctx& c, int64_t* n_chunks_total) {
  std::map<std::string, PplSum> out;
  std::map<std::string, std::set<int64_t>> seen;
  *n_chunks_total = -1;
  for (const auto& [name, r] : c.with_prefix("d/ppl/")) {
    const json& v = r->at("variant");
    const std::string key = v.at("variant").get<std::string>() + "/" + std::to_string(v.at("k").get<int64_t>());
    const int64_t total = r->at("n_chunks_total").get<int64_t>();
    if (*n_chunks_total >= 0 && total != *n_chunks_total)
      throw std::runtime_error("7D sub-units disagree on the chunk count (" + std::to_string(total) + " vs " +
                               std::to_string(*n_chunks_total) + ")");
    *n_chunks_total = total;
    PplSum& s = out[key];
    for (int64_t ch = r->at("chunk_begin").get<int64_t>(); ch < r->at("chunk_end").get<int64_t>(); ++ch)
      if (!seen[key].insert(ch).second)
        throw std::runtime_error("7D: chunk " + std::to_string(ch) + " of " + key + " twice");
    s.nll += r->at("nll_sum").get<double>();
    s.tokens += r->at("n_tokens").get<int64_t>();
    s.chunks += r->at("chunk_end").get<int64_t>() - r->at("chunk_begin").get<int64_t>();
    s.k_used = v.value("k_used", int64_t{0});
  }
  for (const auto& [key, s] : out)
    if (s.chunks != *n_chunks_total)
      throw std::runtime_error("7D: variant " + key + " covers " + std::to_string(s.chunks) + " of " +
                               std::to_string(*n_chunks_total) + " chunks (raise max_tokens/chunks planning?)");
  return out;
}

json step_exp7(Ctx& c) {
  const std::string label = c.param("label");
  const std::string fl = c.file_label();
  const int L = static_cast<int>(c.param_int("n_layer", 0));
  json doc = {{"model", c.param("model_name", c.param("model"))},
              {"n_layers", L},
              {"max_samples", c.param_int("max_samples", 0)}};
  std::string md = "# exp7 — PCA of residual-stream updates Δφ (" + label + ")\n\n";
  int64_t d_model = 0;
  // 7A
  json norms;
  if (const json* a = c.maybe("a/capture")) {
    d_model = a->at("d_model").get<int64_t>();
    norms = a->at("norms");
    json mean = json::object(), sd = json::object();
    for (int b = 0; b < L; ++b) {
      mean[std::to_string(b)] = norms.at("mean").at(b);
      sd[std::to_string(b)] = norms.at("std").at(b);
    }
    doc["exp7a"] = {{"n_samples", a->at("n_samples")},
                    {"d_model", d_model},
                    {"mean_norms", mean},
                    {"std_norms", sd},
                    {"max_abs_dphi_minus_attn_mlp", a->at("max_abs_dphi_minus_attn_mlp")},
                    {"artifact", a->at("artifact")}};
  }
  doc["d_model"] = d_model;
  // 7B
  const auto bp = c.with_prefix("b/pca/");
  std::vector<const json*> blocks(static_cast<size_t>(L), nullptr);
  for (const auto& [rest, r] : bp) blocks.at(std::stoul(rest)) = r;
  if (!bp.empty()) {
    json th = json::object();
    bool all_under = true;
    for (int b = 0; b < L; ++b) {
      if (!blocks[b]) throw std::runtime_error("7B: block " + std::to_string(b) + " missing");
      th[std::to_string(b)] = blocks[b]->at("thresholds");
      all_under = all_under && blocks[b]->at("thresholds").at("0.9").get<int64_t>() < 50;
    }
    doc["exp7b"] = {{"thresholds", th}, {"all_layers_90_under_50", all_under}};
  }
  // 7C
  const json* shared = c.maybe("c/shared");
  if (shared) doc["exp7c"] = {{"shared_thresholds", shared->at("shared_thresholds")}, {"eval", shared->at("eval")}};
  // 7D
  int64_t n_chunks = 0;
  const auto sums = sum_ppl(c, &n_chunks);
  if (!sums.empty()) {
    const auto base_it = sums.find("baseline/0");
    if (base_it == sums.end()) throw std::runtime_error("7D: no baseline sub-units");
    const double base = std::exp(base_it->second.nll / static_cast<double>(base_it->second.tokens));
    json d = {{"baseline", base},
              {"n_chunks", n_chunks},
              {"n_tokens", base_it->second.tokens},
              {"individual", json::object()},
              {"shared", json::object()}};
    for (const auto& [key, s] : sums) {
      const auto slash = key.find('/');
      const std::string kind = key.substr(0, slash);
      if (kind == "baseline") continue;
      const double ppl = std::exp(s.nll / static_cast<double>(s.tokens));
      d[kind][key.substr(slash + 1)] = {{"perplexity", ppl}, {"ratio", ppl / base}, {"k_used", s.k_used}};
    }
    doc["exp7d"] = d;
  }
  // 7E
  const auto ea = c.with_prefix("e/pca/attn/"), em = c.with_prefix("e/pca/mlp/");
  std::vector<const json*> attn(static_cast<size_t>(L), nullptr), mlp(static_cast<size_t>(L), nullptr);
  for (const auto& [rest, r] : ea) attn.at(std::stoul(rest)) = r;
  for (const auto& [rest, r] : em) mlp.at(std::stoul(rest)) = r;
  if (!ea.empty()) {
    json at = json::object(), ft = json::object();
    for (int b = 0; b < L; ++b) {
      if (!attn[b] || !mlp[b]) throw std::runtime_error("7E: block " + std::to_string(b) + " missing");
      at[std::to_string(b)] = attn[b]->at("thresholds");
      ft[std::to_string(b)] = mlp[b]->at("thresholds");
    }
    doc["exp7e"] = {{"attn_thresholds", at}, {"ffn_thresholds", ft}};
  }

  // ---- report tables
  auto k_at = [](const json* r, const char* t) {
    return r ? std::to_string(r->at("thresholds").at(t).get<int64_t>()) : "–";
  };
  report::Table bt({"block", "‖Δφ‖ mean", "‖Δφ‖ std", "K50", "K80", "K90", "K95", "attn K90", "FFN K90"}, "rrrrrrrrr");
  for (int b = 0; b < L; ++b) {
    const bool hn = norms.is_object();
    bt.row({std::to_string(b), hn ? report::fixed(norms.at("mean").at(b).get<double>(), 1) : "–",
            hn ? report::fixed(norms.at("std").at(b).get<double>(), 1) : "–", k_at(blocks[b], "0.5"),
            k_at(blocks[b], "0.8"), k_at(blocks[b], "0.9"), k_at(blocks[b], "0.95"), k_at(attn[b], "0.9"),
            k_at(mlp[b], "0.9")});
  }
  md += "Δφ_b = resid_post_b − resid_pre_b at the first " + std::to_string(c.param_int("max_samples", 0)) +
        " positions of chunk 0 of the test split (position 0 included, spec A17); PCA per block (float64 SVD); "
        "K(t) = components for t of the variance.\n\n## Blocks (7A, 7B, 7E)\n\n" +
        bt.str() + "\n";
  if (doc.contains("exp7b"))
    md += "All blocks K90 < 50: " + std::string(doc["exp7b"]["all_layers_90_under_50"].get<bool>() ? "yes" : "no") +
          ".\n\n";
  if (doc.contains("exp7a"))
    md += "Check Δφ = attn_out + mlp_out: max |difference| = " +
          report::fixed(doc["exp7a"]["max_abs_dphi_minus_attn_mlp"].get<double>() * 1e6, 3) + "·10⁻⁶.\n\n";
  if (shared) {
    const json& st = shared->at("shared_thresholds");
    md += "## Shared PCA (7C)\n\nShared PCA thresholds: 50 % → " + st.at("0.5").dump() + ", 80 % → " +
          st.at("0.8").dump() + ", 90 % → " + st.at("0.9").dump() + ", 95 % → " + st.at("0.95").dump() + ".\n\n";
    report::Table rt({"K", "mean cos", "mean relative L2"}, "rrr");
    for (const auto& [k, per] : shared->at("eval").items()) {
      double cs = 0, rl = 0;
      for (const auto& [b, m] : per.items()) {
        cs += m.at("cos_sim").get<double>();
        rl += m.at("relative_l2").get<double>();
      }
      rt.row({k, report::fixed(cs / per.size(), 3), report::fixed(rl / per.size(), 3)});
    }
    md += "Shared-basis reconstruction (mean over blocks):\n\n" + rt.str() + "\n";
  }
  if (doc.contains("exp7d")) {
    const json& d = doc["exp7d"];
    md += "## Projected perplexity (7D)\n\nEvery block's update projected on the live stream, " +
          std::to_string(n_chunks) + " chunks (" + report::count(d["n_tokens"].get<int64_t>()) +
          " predicted tokens). Baseline " + report::fixed(d["baseline"].get<double>(), 2) + ".\n\n";
    report::Table dt({"K", "individual PPL", "ratio", "shared PPL", "ratio"}, "rrrrr");
    for (const auto& kj : c.job.params.at("ks")) {
      const std::string k = std::to_string(kj.get<int64_t>());
      auto cell = [&](const char* kind, const char* f, int dig) {
        return d[kind].contains(k) ? report::fixed(d[kind][k][f].get<double>(), dig) : "–";
      };
      dt.row({k, cell("individual", "perplexity", 2), cell("individual", "ratio", 2), cell("shared", "perplexity", 2),
              cell("shared", "ratio", 2)});
    }
    md += dt.str() + "\n";
  }

  // ---- figures (spec §7 Outputs)
  if (!bp.empty()) {
    std::vector<report::Series> full, low;
    for (int b = 0; b < L; ++b) {
      full.push_back(curve("block " + std::to_string(b), blocks[b]->at("explained_variance_ratio")));
      low.push_back(curve("block " + std::to_string(b), blocks[b]->at("explained_variance_ratio"), 64));
    }
    report::Plot p{"exp7b_cumvar_per_layer_" + fl, "exp7 B: cumulative variance of Δφ per block (" + label + ")", {}};
    p.panels.push_back(report::line_panel("all components", report::count_axis("components"), frac_axis(), full));
    p.panels.push_back(report::line_panel("K ≤ 64", report::count_axis("components"), frac_axis(), low));
    c.emit_plot(p);
  }
  if (!bp.empty() && shared) {
    std::vector<std::string> cats;
    report::Series k90{"individual K90", {}, {}};
    for (int b = 0; b < L; ++b) {
      cats.push_back(std::to_string(b));
      k90.y.push_back(blocks[b]->at("thresholds").at("0.9").get<double>());
    }
    report::Panel bars =
        report::bar_panel("K90 per block vs shared K90", cats, {k90}, report::count_axis("K90"), "block");
    bars.hlines.push_back(shared->at("shared_thresholds").at("0.9").get<double>());
    std::vector<report::Series> cs = {curve("shared", shared->at("explained_variance_ratio"))};
    for (int b : std::set<int>{0, L / 2, L - 1})
      cs.push_back(curve("block " + std::to_string(b), blocks[b]->at("explained_variance_ratio")));
    report::Plot p{"exp7c_shared_vs_individual_" + fl, "exp7 C: shared vs individual bases (" + label + ")", {}};
    p.panels.push_back(bars);
    p.panels.push_back(report::line_panel("cumulative variance", report::count_axis("components"), frac_axis(), cs));
    c.emit_plot(p);
  }
  if (doc.contains("exp7d")) {
    const json& d = doc["exp7d"];
    report::Axis kx = report::count_axis("K");
    kx.scale = report::Scale::log;
    report::Axis py{"perplexity"}, ry{"PPL / baseline"};
    py.scale = ry.scale = report::Scale::log;
    std::vector<report::Series> ps, rs;
    for (const char* kind : {"individual", "shared"}) {
      report::Series a{kind, {}, {}}, r{kind, {}, {}};
      for (const auto& kj : c.job.params.at("ks")) {
        const std::string k = std::to_string(kj.get<int64_t>());
        if (!d[kind].contains(k)) continue;
        a.x.push_back(kj.get<double>());
        r.x.push_back(kj.get<double>());
        a.y.push_back(d[kind][k]["perplexity"].get<double>());
        r.y.push_back(d[kind][k]["ratio"].get<double>());
      }
      a.style = r.style = report::Series::Style::linespoints;
      ps.push_back(a);
      rs.push_back(r);
    }
    report::Panel pp = report::line_panel("perplexity vs K", kx, py, ps);
    pp.hlines.push_back(d["baseline"].get<double>());
    report::Panel rp = report::line_panel("ratio vs K", kx, ry, rs);
    rp.hlines.push_back(1.0);
    c.emit_plot(report::Plot{"exp7d_ppl_vs_K_" + fl, "exp7 D: projected perplexity (" + label + ")", {pp, rp}});
  }
  if (!ea.empty()) {
    std::vector<std::string> cats;
    report::Series sa{"attn K90", {}, {}}, sf{"FFN K90", {}, {}};
    for (int b = 0; b < L; ++b) {
      cats.push_back(std::to_string(b));
      sa.y.push_back(attn[b]->at("thresholds").at("0.9").get<double>());
      sf.y.push_back(mlp[b]->at("thresholds").at("0.9").get<double>());
    }
    std::vector<report::Series> cs;
    for (int b : std::set<int>{0, L / 2, L - 1}) {
      cs.push_back(curve("attn " + std::to_string(b), attn[b]->at("explained_variance_ratio"), 128));
      cs.push_back(curve("FFN " + std::to_string(b), mlp[b]->at("explained_variance_ratio"), 128));
    }
    report::Plot p{"exp7e_attn_vs_ffn_cumvar_" + fl, "exp7 E: attention vs MLP writes (" + label + ")", {}};
    p.panels.push_back(report::bar_panel("K90 per block", cats, {sa, sf}, report::count_axis("K90"), "block"));
    p.panels.push_back(
        report::line_panel("cumulative variance, K ≤ 128", report::count_axis("components"), frac_axis(), cs));
    c.emit_plot(p);
  }
  doc = c.emit_json("exp7_" + fl, doc);
  if (const std::string banner = platform::random_banner(doc["provenance"]); !banner.empty())
    md.insert(md.find("\n\n") + 2, banner);
  md += "## Figures\n\n" + c.figures_md() + platform::provenance_md(doc["provenance"]);
  c.emit_text("exp7_results_" + fl + ".md", md, "text/markdown");
  return doc;
}

}  // namespace

platform::ReduceOutput run_reduce(const JobSpec& job, const platform::ReduceContext& rc) {
  using Step = json (*)(Ctx&);
  static const std::map<std::string, Step> kSteps = {{"pca", step_pca}, {"shared", step_shared}, {"exp7", step_exp7}};
  const std::string step = job.params.value("reduce", std::string());
  const auto it = kSteps.find(step);
  if (it == kSteps.end()) throw std::runtime_error("unknown exp7 reduce step '" + step + "'");
  Ctx c(job, rc);
  c.out.result = it->second(c);
  if (c.out.result.is_object() && !c.out.result.contains("provenance")) c.out.result["provenance"] = c.provenance();
  return std::move(c.out);
}

}  // namespace spt::exp7
