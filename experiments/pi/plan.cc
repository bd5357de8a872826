// Plans of the π family (spec §8, §9, §11): exp8 (A, B, C) and exp9 (A, B,
// C). Torch-free; linked into the coordinator.
//
// exp8 A/B and exp9 A read exp3ef through the job graph: the plan holds the
// σ family's exp3 + exp3ef units of each model under their own names and
// params (sigma/plan.h), so a model whose exp3ef is stored is answered from
// the store and only the π reduces run. exp8 C and exp9 B share the
// rotation unit <m>/rot/wikitext (same params in both plans).
#include <algorithm>
#include <cctype>
#include <set>

#include "pi/common.h"
#include "platform/prompts.h"
#include "plans.h"
#include "sigma/common.h"
#include "sigma/plan.h"

namespace spt::plan {

namespace {

using nlohmann::json;
using spt::pi::kKindReduce;
using spt::pi::kKindRotation;

std::string parts_of(const std::string& exp, const std::string& parts) {
  return normalise_parts(exp, parts, "abc", "abc");
}

bool has(const std::string& parts, char c) { return parts.find(c) != std::string::npos; }

struct Start {
  Builder b;
  ModelBlock mb;
  DataBlock db;
  std::string parts;
  int64_t max_samples = 500;
  std::string exp3ef = "graph";
};

// Reads the model block (default `models`), the test-split data block and
// max_samples (A18: 500, the published run).
Start start(const Request& req, const std::string& exp, const std::string& models, bool exp3ef_param) {
  Request r = req;
  if (!r.params.count("model")) r.params["model"] = models;
  Start s;
  s.parts = parts_of(exp, r.parts);
  ParamReader p(r);
  s.mb = read_models(p, exp, true);
  DataDefaults dd;  // chunker T over the first 200,000 test tokens (T200K)
  dd.split = "test";
  dd.max_tokens = 200000;
  s.db = read_data(p, exp, dd);
  s.max_samples = p.integer("max_samples", 500, 1, 1000000);
  if (exp3ef_param) {
    s.exp3ef = p.str("exp3ef", "graph");
    if (s.exp3ef != "graph" && s.exp3ef != "none")
      throw PlanError(exp + ": exp3ef=" + s.exp3ef +
                      " (graph: reuse/compute exp3ef through the job graph; none: measure from exp3's units with "
                      "exp9's h fallbacks)");
  }
  p.finish();
  for (const auto& m : s.mb.models) {
    if (m.n_ctx > 0 && s.max_samples > m.n_ctx)
      throw PlanError(exp + ": max_samples " + std::to_string(s.max_samples) + " exceeds " + m.label +
                      "'s context of " + std::to_string(m.n_ctx) + " positions (chunk 0 only)");
    if (s.max_samples > s.db.chunk_len)
      throw PlanError(exp + ": max_samples " + std::to_string(s.max_samples) + " exceeds chunk_len " +
                      std::to_string(s.db.chunk_len));
  }
  s.b.plan.parts = s.parts;
  s.b.plan.params = json::object();
  s.mb.add_params(s.b.plan.params);
  s.b.plan.params["max_samples"] = s.max_samples;
  if (exp3ef_param) s.b.plan.params["exp3ef"] = s.exp3ef;
  return s;
}

using sigma::reduce_params;

// σ's report params plus the models' layer counts.
json report_params(const ModelBlock& mb, const std::string& step, const std::string& parts, json extra = {}) {
  json layers = json::array();
  for (const auto& m : mb.models) layers.push_back(m.n_layer);
  json p = sigma::report_params(mb, step, parts);
  p["n_layers"] = layers;
  return extra.is_object() ? with(p, extra) : p;
}

std::string add_rot_wikitext(Start& s, const ModelRef& m) {
  const std::string name = pi::rot_wikitext_job(m.label);
  if (s.b.has(name)) return name;
  s.b.model = m.name;
  s.b.add(name, kKindRotation,
          with(with(sigma::model_params(s.mb, m), s.db.data_json()),
               {{"source", "wikitext"}, {"max_samples", s.max_samples}}),
          {});
  return name;
}

std::string add_rot_prompts(Start& s, const ModelRef& m) {
  const std::string name = pi::rot_prompts_job(m.label);
  if (s.b.has(name)) return name;
  json prompts = json::array();
  for (const auto& e : platform::prompt_sets().experiment)
    for (const auto& c : e.conditions) prompts.push_back({{"word", e.word}, {"condition", c.label}, {"text", c.text}});
  s.b.model = m.name;
  s.b.add(name, kKindRotation, with(sigma::model_params(s.mb, m), {{"source", "prompts"}, {"prompts", prompts}}), {});
  return name;
}

// exp3's direction and gradient-profile units of every gradient word, under
// the σ family's names and with its params (the same units as inside exp3,
// so stored ones are reused); returns their names.
std::vector<std::string> add_gradient_units(Builder& b, const ModelBlock& mb, const ModelRef& m) {
  std::vector<std::string> names;
  const auto& ps = platform::prompt_sets();
  for (const auto& g : ps.gradient) {
    const std::string dir = sigma::dir_job(m.label, g.word);
    if (!b.has(dir)) {
      const auto& d = ps.direction_for(g.word);
      b.model = m.name;
      b.add(dir, sigma::kKindDirection,
            with(sigma::model_params(mb, m),
                 {{"word", g.word}, {"prompts_A", d.prompts_A}, {"prompts_B", d.prompts_B}, {"forwards", false}}),
            {});
    }
    names.push_back(dir);
    for (char side : {'A', 'B'}) {
      const auto& list = side == 'A' ? g.A : g.B;
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string n = sigma::grad_job(m.label, g.word, side, static_cast<int>(i));
        if (!b.has(n)) {
          b.model = m.name;
          b.add(n, sigma::kKindProfile,
                with(sigma::model_params(mb, m),
                     {{"word", g.word}, {"prompt", list[i]}, {"measure", "contrastive"}, {"forwards", false}}),
                {dir});
        }
        names.push_back(n);
      }
    }
  }
  return names;
}

}  // namespace

// exp8: A erf width vs 1/√π, B π models vs exp3ef's fits (both per model,
// from exp3ef), C rotation angles (WikiText test chunk 0 and the prompts).
// Default models gpt2,gpt2-medium (the two exp3ef models of the original).
Plan plan_exp8(const Request& req) {
  Start s = start(req, "exp8", "gpt2,gpt2-medium", false);
  std::vector<std::string> docs;
  for (const auto& m : s.mb.models) {
    std::vector<std::string> deps;
    if (has(s.parts, 'a') || has(s.parts, 'b')) deps.push_back(sigma::add_exp3ef(s.b, s.mb, m));
    if (has(s.parts, 'c')) {
      deps.push_back(add_rot_wikitext(s, m));
      deps.push_back(add_rot_prompts(s, m));
    }
    s.b.add(pi::exp8_job(m.label), kKindReduce, reduce_params(s.mb, m, "exp8", {{"parts", s.parts}}), deps, true);
    docs.push_back(pi::exp8_job(m.label));
  }
  s.b.add("exp8/report", kKindReduce, report_params(s.mb, "exp8_report", s.parts), docs, true);
  return std::move(s.b.plan);
}

// exp9: A σ_free per model and its convergence in 1/L, B Θ scaling with
// depth, C cos_pi_0p vs erf vs sin_pi_1p per model (needs A's g_mean).
// Default models gpt2, gpt2-medium, gpt2-large, gpt2-xl.
Plan plan_exp9(const Request& req) {
  Start s = start(req, "exp9", "gpt2,gpt2-medium,gpt2-large,gpt2-xl", true);
  std::vector<std::string> report_deps, per_a, rot;
  for (const auto& m : s.mb.models) {
    if (has(s.parts, 'a') || has(s.parts, 'c')) {
      std::vector<std::string> deps;
      if (s.exp3ef == "graph") deps.push_back(sigma::add_exp3ef(s.b, s.mb, m));
      for (const auto& n : add_gradient_units(s.b, s.mb, m)) deps.push_back(n);
      s.b.add(pi::exp9a_job(m.label), kKindReduce, reduce_params(s.mb, m, "exp9_a", {{"exp3ef", s.exp3ef}}), deps,
              true);
      per_a.push_back(pi::exp9a_job(m.label));
    }
    if (has(s.parts, 'b')) rot.push_back(add_rot_wikitext(s, m));
    if (has(s.parts, 'c')) {
      s.b.add(pi::exp9c_job(m.label), kKindReduce, reduce_params(s.mb, m, "exp9_c"), {pi::exp9a_job(m.label)}, true);
      report_deps.push_back(pi::exp9c_job(m.label));
    }
  }
  if (has(s.parts, 'a')) {
    s.b.add("exp9/convergence", kKindReduce, report_params(s.mb, "exp9_convergence", s.parts), per_a, true);
    report_deps.insert(report_deps.begin(), "exp9/convergence");
  }
  if (has(s.parts, 'b')) {
    s.b.add("exp9/b", kKindReduce, report_params(s.mb, "exp9_b", s.parts), rot, true);
    report_deps.push_back("exp9/b");
  }
  s.b.add("exp9/report", kKindReduce, report_params(s.mb, "exp9_report", s.parts), report_deps, true);
  return std::move(s.b.plan);
}

}  // namespace spt::plan
