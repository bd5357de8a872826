// Plans of the σ family (spec §3–§5, §0 units, §11 graph): exp1 (v1, v2),
// exp2 (A, B, C), exp3 (A–D), exp3ef (E, F, G, and the non-binding
// truncated fits T). Torch-free; linked into the coordinator.
//
// Every model of `--model a,b` gets its own units and per-model reduces;
// one report reduce per experiment covers all models, and exp3ef G compares
// the models pairwise. Units shared by several experiments (directions,
// condition profiles, exp3 inside exp3ef) have the same name and params in
// every plan, so a repeat is answered from stored results.
#include "sigma/plan.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "platform/prompts.h"
#include "plans.h"
#include "sigma/common.h"

namespace spt::sigma {

using nlohmann::json;
using plan::Builder;
using plan::ModelBlock;
using plan::ModelRef;
using plan::PlanError;

namespace {

const platform::PromptSets& prompts() { return platform::prompt_sets(); }

}  // namespace

json reduce_params(const ModelBlock& mb, const ModelRef& m, const std::string& step, json extra) {
  json p = plan::with(model_params(mb, m), {{"reduce", step}, {"label", m.label}});
  return plan::with(std::move(p), extra);
}

json report_params(const ModelBlock& mb, const std::string& step, const std::string& parts) {
  json labels = json::array(), names = json::array();
  for (const auto& m : mb.models) {
    labels.push_back(m.label);
    names.push_back(m.name);
  }
  return {{"reduce", step}, {"labels", labels}, {"models", names}, {"precision", mb.precision}, {"parts", parts}};
}

namespace {

// The direction unit of `word` (DIRECTION_PROMPTS, backwards search).
std::string add_direction(Builder& b, const ModelBlock& mb, const ModelRef& m, const std::string& word) {
  const std::string name = dir_job(m.label, word);
  if (b.has(name)) return name;
  const auto& d = prompts().direction_for(word);
  b.model = m.name;
  b.add(name, kKindDirection,
        plan::with(model_params(mb, m),
                   {{"word", word}, {"prompts_A", d.prompts_A}, {"prompts_B", d.prompts_B}, {"forwards", false}}),
        {});
  return name;
}

std::string add_profile(Builder& b, const ModelBlock& mb, const ModelRef& m, const std::string& name,
                        const std::string& dir, const std::string& word, const std::string& prompt,
                        const std::string& measure, bool forwards, bool lens = false) {
  if (b.has(name)) return name;
  json p = plan::with(model_params(mb, m),
                      {{"word", word}, {"prompt", prompt}, {"measure", measure}, {"forwards", forwards}});
  if (lens) p["lens"] = true;
  b.model = m.name;
  b.add(name, kKindProfile, std::move(p), {dir});
  return name;
}

// exp1 v2 / exp2 units: a direction and the 5 condition profiles per word.
std::vector<std::string> add_condition_units(Builder& b, const ModelBlock& mb, const ModelRef& m,
                                             const std::string& word) {
  std::vector<std::string> names = {add_direction(b, mb, m, word)};
  for (const auto& c : prompts().experiment_for(word).conditions)
    names.push_back(add_profile(b, mb, m, prof_job(m.label, word, c.label), names.front(), word, c.text,
                                "contrastive", false));
  return names;
}

std::vector<std::string> add_exp1_v1(Builder& b, const ModelBlock& mb, const ModelRef& m) {
  std::vector<std::string> deps;
  for (const auto& w : prompts().legacy_v1) {
    const std::string dir = v1dir_job(m.label, w.word);
    b.model = m.name;
    b.add(dir, kKindDirection,
          plan::with(model_params(mb, m), {{"word", w.word},
                                            {"prompts_A", {w.prompt_A}},
                                            {"prompts_B", {w.prompt_B}},
                                            {"forwards", true}}),
          {});
    deps.push_back(dir);
    for (const auto& c : w.conditions)
      deps.push_back(add_profile(b, mb, m, v1prof_job(m.label, w.word, c.label), dir, w.word, c.text, "v1", true));
  }
  return deps;
}

}  // namespace

json model_params(const ModelBlock& mb, const ModelRef& m) {
  json p = mb.base(m);
  p.erase("scope");
  return p;
}

std::string add_exp3(Builder& b, const ModelBlock& mb, const ModelRef& m) {
  const std::string name = exp3_job(m.label);
  if (b.has(name)) return name;
  std::vector<std::string> regress;
  for (const auto& g : prompts().gradient) {
    const std::string dir = add_direction(b, mb, m, g.word);
    std::vector<std::string> deps;
    for (char side : {'A', 'B'}) {
      const auto& list = side == 'A' ? g.A : g.B;
      for (size_t i = 0; i < list.size(); ++i)
        deps.push_back(add_profile(b, mb, m, grad_job(m.label, g.word, side, static_cast<int>(i)), dir, g.word,
                                   list[i], "contrastive", false));
    }
    const std::string r = "exp3/" + m.label + "/regress/" + g.word;
    b.model = m.name;
    b.add(r, kKindReduce, reduce_params(mb, m, "exp3_regress", {{"word", g.word}}), deps);
    regress.push_back(r);
  }
  b.add(name, kKindReduce, reduce_params(mb, m, "exp3"), regress, true);
  return name;
}

std::string add_exp3ef(Builder& b, const ModelBlock& mb, const ModelRef& m) {
  const std::string name = exp3ef_job(m.label);
  if (b.has(name)) return name;
  const std::string e3 = add_exp3(b, mb, m);
  b.add(name, kKindReduce, reduce_params(mb, m, "exp3ef"), {e3}, true);
  return name;
}

}  // namespace spt::sigma

namespace spt::plan {

using nlohmann::json;
using spt::sigma::kKindReduce;

namespace {

struct Start {
  Builder b;
  ModelBlock mb;
  std::string parts;
};

Start start(const Request& req, const std::string& exp, const std::string& known, const std::string& def) {
  Start s;
  s.parts = normalise_parts(exp, req.parts, known, def);
  ParamReader p(req);
  s.mb = read_models(p, exp, true);
  p.finish();
  s.b.plan.parts = s.parts;
  s.b.plan.params = json::object();
  s.mb.add_params(s.b.plan.params);
  return s;
}

bool has(const std::string& parts, char c) { return parts.find(c) != std::string::npos; }

}  // namespace

// exp1: parts "1" = v1 (legacy), "2" = v2 (default).
Plan plan_exp1(const Request& req) {
  Request r = req;  // "v1", "v2", "v1v2", "v1,v2" → digits
  r.parts.erase(std::remove_if(r.parts.begin(), r.parts.end(), [](char c) { return c == 'v' || c == 'V'; }),
                r.parts.end());
  Start s = start(r, "exp1", "12", "2");
  std::vector<std::string> docs;
  for (const auto& m : s.mb.models) {
    if (has(s.parts, '1')) {
      const auto deps = sigma::add_exp1_v1(s.b, s.mb, m);
      s.b.add("exp1/" + m.label + "/v1", kKindReduce, sigma::reduce_params(s.mb, m, "exp1_v1"), deps, true);
      docs.push_back("exp1/" + m.label + "/v1");
    }
    if (has(s.parts, '2')) {
      std::vector<std::string> deps;
      for (const auto& w : sigma::prompts().direction_words())
        for (const auto& n : sigma::add_condition_units(s.b, s.mb, m, w)) deps.push_back(n);
      s.b.add("exp1/" + m.label + "/v2", kKindReduce, sigma::reduce_params(s.mb, m, "exp1_v2"), deps, true);
      docs.push_back("exp1/" + m.label + "/v2");
    }
  }
  s.b.add("exp1/report", kKindReduce, sigma::report_params(s.mb, "exp1_report", s.parts), docs, true);
  return std::move(s.b.plan);
}

// exp2: A response, B fits (needs A), C logit lens.
Plan plan_exp2(const Request& req) {
  Start s = start(req, "exp2", "abc", "abc");
  if (has(s.parts, 'b') && !has(s.parts, 'a')) s.parts.insert(s.parts.begin(), 'a');
  s.b.plan.parts = s.parts;
  std::vector<std::string> docs;
  for (const auto& m : s.mb.models) {
    std::vector<std::string> deps;
    for (const auto& w : sigma::prompts().direction_words()) {
      const auto units = sigma::add_condition_units(s.b, s.mb, m, w);
      if (has(s.parts, 'a')) {
        const std::string resp = "exp2/" + m.label + "/response/" + w;
        s.b.add(resp, kKindReduce, sigma::reduce_params(s.mb, m, "exp2_response", {{"word", w}}),
                {units.begin() + 1, units.end()});
        deps.push_back(resp);
        if (has(s.parts, 'b'))
          for (const char* fam : sigma::kExp2Families) {
            const std::string fit = "exp2/" + m.label + "/fit/" + w + "/" + fam;
            s.b.add(fit, kKindReduce, sigma::reduce_params(s.mb, m, "exp2_fit", {{"word", w}, {"family", fam}}),
                    {resp});
            deps.push_back(fit);
          }
      }
      if (has(s.parts, 'c'))
        for (const char* cond : {"strong_A", "strong_B"})
          deps.push_back(sigma::add_profile(s.b, s.mb, m, sigma::lens_job(m.label, w, cond), units.front(), w,
                                            sigma::prompts().condition(w, cond).text, "contrastive", false, true));
    }
    s.b.add("exp2/" + m.label, kKindReduce, sigma::reduce_params(s.mb, m, "exp2", {{"parts", s.parts}}), deps,
            true);
    docs.push_back("exp2/" + m.label);
  }
  s.b.add("exp2/report", kKindReduce, sigma::report_params(s.mb, "exp2_report", s.parts), docs, true);
  return std::move(s.b.plan);
}

// exp3: its parts share every unit (B and C come out of one regression per
// word, D of the per-model reduce), so any part plans all four.
Plan plan_exp3(const Request& req) {
  Start s = start(req, "exp3", "abcd", "abcd");
  s.parts = "abcd";
  s.b.plan.parts = s.parts;
  std::vector<std::string> docs;
  for (const auto& m : s.mb.models) docs.push_back(sigma::add_exp3(s.b, s.mb, m));
  s.b.add("exp3/report", kKindReduce, sigma::report_params(s.mb, "exp3_report", s.parts), docs, true);
  return std::move(s.b.plan);
}

// exp3ef: E+F per model, G across models (needs two or more), T the
// non-binding truncated fits.
Plan plan_exp3ef(const Request& req) {
  const bool asked_g = req.parts.find_first_of("gG") != std::string::npos || req.parts == "all";
  Start s = start(req, "exp3ef", "efgt", "efg");
  if (s.mb.models.size() < 2) {
    if (asked_g && req.parts != "all" && !req.parts.empty())
      throw PlanError("exp3ef: part g compares models; give two or more (--model gpt2,gpt2-medium)");
    s.parts.erase(std::remove(s.parts.begin(), s.parts.end(), 'g'), s.parts.end());
  }
  if (s.parts.find_first_of("ef") == std::string::npos) s.parts = "ef" + s.parts;  // g and t read E+F
  s.b.plan.parts = s.parts;
  std::vector<std::string> docs;
  for (const auto& m : s.mb.models) {
    docs.push_back(sigma::add_exp3ef(s.b, s.mb, m));
    if (has(s.parts, 't')) {
      const std::string t = "exp3ef/" + m.label + "/truncated";
      s.b.add(t, kKindReduce, sigma::reduce_params(s.mb, m, "exp3ef_truncated"), {docs.back()}, true);
      docs.push_back(t);
    }
  }
  if (has(s.parts, 'g')) {
    for (const auto& m : s.mb.models)
      if (m.n_layer < 3)  // the spline needs 4 depths of the finer model; correlations need 3 points
        throw PlanError("exp3ef: part g compares g(l/L) across models and needs n_layer >= 3; " + m.label +
                        " has " + std::to_string(m.n_layer));
    std::vector<std::string> per_model;
    for (const auto& m : s.mb.models) per_model.push_back(sigma::exp3ef_job(m.label));
    s.b.add("exp3ef/cross", kKindReduce, sigma::report_params(s.mb, "exp3ef_cross", s.parts), per_model, true);
    docs.push_back("exp3ef/cross");
  }
  s.b.add("exp3ef/report", kKindReduce, sigma::report_params(s.mb, "exp3ef_report", s.parts), docs, true);
  return std::move(s.b.plan);
}

}  // namespace spt::plan
