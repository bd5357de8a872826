// exp1 (spec §3): σ(l) of ambiguous words per context condition.
// v1 (legacy): one prompt per meaning, σ = cos(φ, e_A) − cos(φ, e_B),
// targets searched forwards. v2: contrastive σ from 5 + 5 direction
// prompts, words ordered by cos(e_A, e_B).
#include <algorithm>
#include <cmath>

#include "platform/prompts.h"
#include "platform/model_names.h"
#include "report/markdown.h"
#include "sigma/common.h"
#include "sigma/reduce_internal.h"
#include "sigma/science.h"

namespace spt::sigma::detail {

namespace {

struct WordProfiles {
  std::string word;
  double cos_AB = 0;
  std::vector<std::string> labels;
  std::vector<std::vector<double>> sigma;
  json prompts = json::object();  // label → {prompt, sigma, summary…, target_position}
};

WordProfiles read_word(const Ctx& c, const std::string& word, const std::string& dir_name,
                       const std::vector<platform::Condition>& conds, bool v1) {
  WordProfiles w;
  w.word = word;
  w.cos_AB = c.input(dir_name).at("cos_AB").get<double>();
  for (const auto& cond : conds) {
    const std::string name = v1 ? v1prof_job(c.label, word, cond.label) : prof_job(c.label, word, cond.label);
    const json& r = profile(c, name);
    const auto s = dvec(r, "sigma", name);
    const SigmaSummary sum = summarize(s);
    w.labels.push_back(cond.label);
    w.sigma.push_back(s);
    w.prompts[cond.label] = {{"prompt", cond.text},
                             {"sigma", s},
                             {"sigma_final", sum.sigma_final},
                             {"sigma_range", sum.sigma_range},
                             {"max_jump_layer", sum.max_jump_layer},
                             {"max_jump_value", sum.max_jump_value},
                             {"target_position", r.at("target_position")}};
  }
  return w;
}

// σ(l), Δσ(l) per word and all words on one page (v1 and v2 share layouts).
void figures(Ctx& c, const std::string& prefix, const std::vector<WordProfiles>& words) {
  std::vector<report::Panel> all;
  for (const auto& w : words) {
    std::vector<report::Series> s, ds;
    for (size_t i = 0; i < w.labels.size(); ++i) {
      std::vector<double> l, half, d;
      for (size_t k = 0; k < w.sigma[i].size(); ++k) l.push_back(static_cast<double>(k));
      for (size_t k = 0; k + 1 < w.sigma[i].size(); ++k) {
        half.push_back(k + 0.5);
        d.push_back(w.sigma[i][k + 1] - w.sigma[i][k]);
      }
      s.push_back({w.labels[i], l, w.sigma[i], report::Series::Style::linespoints});
      ds.push_back({w.labels[i], half, d, report::Series::Style::linespoints});
    }
    auto p = report::line_panel("σ(l): " + w.word + " (cos(e_A,e_B) = " + report::fixed(w.cos_AB, 3) + ")",
                                depth_axis(), {"σ"}, s);
    p.hlines = {0};
    c.emit_plot({prefix + "sigma_" + w.word + "_" + c.label, "", {p}});
    auto dp = report::line_panel("Δσ across each block: " + w.word, depth_axis(), {"σ(l+1) − σ(l)"}, ds);
    dp.hlines = {0};
    c.emit_plot({prefix + "dsigma_" + w.word + "_" + c.label, "", {dp}});
    p.title = w.word;
    all.push_back(std::move(p));
  }
  c.emit_plot({prefix + "sigma_all_" + c.label, "σ(l) for every word (" + c.label + ")", all});
}

json summary_row(const WordProfiles& w) {
  double range = 0, best = -1, sA = 0, sB = 0;
  int layer = 0;
  std::string cond;
  for (size_t i = 0; i < w.labels.size(); ++i) {
    const json& p = w.prompts.at(w.labels[i]);
    range = std::max(range, p.at("sigma_range").get<double>());
    const double j = p.at("max_jump_value").get<double>();
    if (std::fabs(j) > best) {
      best = std::fabs(j);
      layer = p.at("max_jump_layer").get<int>();
      cond = w.labels[i];
    }
    if (w.labels[i] == "strong_A") sA = p.at("sigma_final").get<double>();
    if (w.labels[i] == "strong_B") sB = p.at("sigma_final").get<double>();
  }
  const double jv = w.prompts.at(cond).at("max_jump_value").get<double>();
  return {{"word", w.word},
          {"cos_AB", w.cos_AB},
          {"sigma_range", range},
          {"sigma_final_strong_A", sA},
          {"sigma_final_strong_B", sB},
          {"delta_sigma", sA - sB},
          {"largest_jump", "L" + std::to_string(layer) + "(" + sgn(jv) + ")"},
          {"largest_jump_layer", layer},
          {"largest_jump_value", jv},
          {"largest_jump_condition", cond}};
}

}  // namespace

json exp1_v1(Ctx& c) {
  const auto& sets = platform::prompt_sets();
  std::vector<WordProfiles> words;
  json doc = {{"model", c.model}, {"n_layers", c.n_layer}, {"version", "v1 (legacy)"},
              {"order_parameter", "cos(phi, e_A) - cos(phi, e_B)"}, {"target_search", "forwards (v1)"}};
  json wj = json::object();
  for (const auto& lw : sets.legacy_v1) {
    words.push_back(read_word(c, lw.word, v1dir_job(c.label, lw.word), lw.conditions, true));
    wj[lw.word] = {{"direction_cos_AB", words.back().cos_AB},
                   {"interpretation_A", lw.interpretation_A},
                   {"interpretation_B", lw.interpretation_B},
                   {"prompt_A", lw.prompt_A},
                   {"prompt_B", lw.prompt_B},
                   {"prompts", words.back().prompts}};
  }
  doc["words"] = wj;
  doc["device"] = device_of(c.provenance());
  figures(c, "", words);
  doc["figures"] = png_names(c);
  return c.emit_json("exp1_" + c.label, doc);
}

json exp1_v2(Ctx& c) {
  const auto& sets = platform::prompt_sets();
  std::vector<WordProfiles> words;
  for (const auto& w : sets.direction_words())
    words.push_back(read_word(c, w, dir_job(c.label, w), sets.experiment_for(w).conditions, false));
  std::stable_sort(words.begin(), words.end(),
                   [](const WordProfiles& a, const WordProfiles& b) { return a.cos_AB < b.cos_AB; });
  json valid = json::array(), wj = json::object(), summary = json::array();
  for (const auto& w : words) {
    const auto& d = sets.direction_for(w.word);
    valid.push_back(w.word);
    wj[w.word] = {{"cos_AB", w.cos_AB},
                  {"interpretation_A", d.interpretation_A},
                  {"interpretation_B", d.interpretation_B},
                  {"prompts", w.prompts}};
    summary.push_back(summary_row(w));
  }
  json doc = {{"model", c.model},     {"n_layers", c.n_layer}, {"method", "contrastive"},
              {"valid_words", valid}, {"words", wj},           {"summary", summary}};
  doc["device"] = device_of(c.provenance());
  figures(c, "v2_", words);
  doc["figures"] = png_names(c);
  return c.emit_json("exp1_v2_" + c.label, doc);
}

namespace {

std::string v2_section(const json& doc) {
  const std::string m = platform::model_label(doc.value("model", std::string("?")));
  std::string s = "## " + m + " (" + std::to_string(doc.value("n_layers", 0)) + " layers)\n\n";
  s += random_banner(doc.value("provenance", json::object()));
  report::Table t({"word", "cos(e_A,e_B)", "σ range", "σ_f(strong_A)", "σ_f(strong_B)", "Δσ", "max |Δσ|"},
                  "lrrrrrl");
  for (const auto& r : doc.at("summary"))
    t.row({r.at("word").get<std::string>(), report::fixed(num(r.at("cos_AB")), 3), report::fixed(num(r.at("sigma_range")), 3),
           sgn(num(r.at("sigma_final_strong_A"))), sgn(num(r.at("sigma_final_strong_B"))),
           report::fixed(num(r.at("delta_sigma")), 3), r.at("largest_jump").get<std::string>()});
  s += t.str() + "\n";
  s += "Words in ascending cos(e_A, e_B). \"L{i}(v)\" is the step from depth i to depth i+1 (across block i), "
       "signed.\n\n";
  return s;
}

std::string v1_section(const json& doc) {
  const std::string m = platform::model_label(doc.value("model", std::string("?")));
  std::string s = "## " + m + " (legacy v1)\n\n" + random_banner(doc.value("provenance", json::object()));
  report::Table t({"word", "condition", "prompt", "σ_final", "σ range", "max jump", "target"}, "lllrrll");
  const auto& sets = platform::prompt_sets();
  for (const auto& lw : sets.legacy_v1)  // file order, not key order
    for (const auto& cond : lw.conditions) {
      const json& p = doc.at("words").at(lw.word).at("prompts").at(cond.label);
      t.row({lw.word, cond.label, cond.text, sgn(num(p.at("sigma_final"))), report::fixed(num(p.at("sigma_range")), 3),
             "L" + std::to_string(p.at("max_jump_layer").get<int>()) + "(" + sgn(num(p.at("max_jump_value"))) + ")",
             std::to_string(p.at("target_position").get<int>())});
    }
  s += t.str() + "\n";
  for (const auto& lw : sets.legacy_v1)
    s += "- " + lw.word + ": cos(e_A, e_B) = " + report::fixed(num(doc.at("words").at(lw.word).at("direction_cos_AB")), 3) +
         "\n";
  return s + "\n";
}

}  // namespace

json exp1_report(Ctx& c) {
  std::string v1, v2;
  json index = json::array();
  for (const auto& in : c.job.inputs) {
    const json& doc = in.result;
    const bool is_v2 = doc.contains("summary");
    (is_v2 ? v2 : v1) += (is_v2 ? v2_section(doc) : v1_section(doc)) + embed_figures(doc) +
                         provenance_md(doc.value("provenance", json::object()));
    index.push_back(in.name);
  }
  if (!v1.empty())
    c.emit_text("exp1_basic.md",
                "# exp1 (v1, legacy): order parameter σ(l) of ambiguous words\n\n"
                "Legacy semantics (spec §3.1): one prompt per meaning defines e_A and e_B; σ(l) = cos(φ(l), e_A) − "
                "cos(φ(l), e_B); the target is the FIRST matching token (v1 searched forwards). Kept only to "
                "reproduce the legacy report.\n\n" +
                    v1,
                "text/markdown");
  if (!v2.empty())
    c.emit_text("exp1_v2_results.md",
                "# exp1 v2: contrastive order parameter σ(l)\n\n"
                "σ(l) = (φ(l)/|φ(l)|)·e_diff with e_diff = (m_A − m_B)/|m_A − m_B| from 5 + 5 direction prompts at "
                "the final depth (spec §2.3, §3.2); prompts BOS-prepended, target found from the end.\n\n" +
                    v2,
                "text/markdown");
  return {{"reports", index}};
}

}  // namespace spt::sigma::detail
