#include "sigma/executors.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "model/tokenizer.h"
#include "platform/model_host.h"
#include "platform/probe.h"
#include "platform/prompts.h"
#include "platform/reduce_context.h"
#include "sigma/common.h"
#include "sigma/reduce.h"
#include "sigma/science.h"
#include "spt/job.h"
#include "spt/util.h"

namespace spt::sigma {

namespace {

using nlohmann::json;
using platform::PermanentError;


Vec floats(const json& j, const char* key) {
  if (!j.contains(key) || !j.at(key).is_array()) throw PermanentError(std::string("direction input lacks ") + key);
  return j.at(key).get<Vec>();
}

// Rows [i*width, (i+1)*width) of a probe read.
Vec slice(const platform::ProbeRead& r, size_t i, size_t width) {
  const auto* p = r.data.data() + i * width;
  return Vec(p, p + width);
}

json lens_json(const std::vector<platform::LensTop>& tops) {
  json layers = json::array();
  for (const auto& t : tops) {
    json top3 = json::array();
    for (size_t i = 0; i < 3 && i < t.tokens.size(); ++i) top3.push_back(t.tokens[i]);
    layers.push_back({{"top1", t.tokens.front()},
                      {"top1_id", t.ids.front()},
                      {"top1_prob", t.probs.front()},
                      {"top3", top3},
                      {"top5", t.tokens},
                      {"top5_probs", t.probs}});
  }
  return layers;
}

class ProbeExecutor : public Executor {
 public:
  std::vector<std::string> kinds() const override { return {kKindDirection, kKindProfile}; }
  std::vector<std::string> precisions() const override { return {"fp32", "tf32", "bf16"}; }
  std::vector<std::string> loaded_models() const override { return platform::shared_model_host().loaded_models(); }

  void run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
           const std::function<void(size_t, Outcome)>& done) override {
    platform::run_grouped(
        jobs, ctx, done,
        [](const JobSpec& j) {
          return j.params.value("model", std::string()) + "|" + j.params.value("precision", std::string("fp32"));
        },
        [&](const std::vector<size_t>& idx, const platform::ReportFn& report) { run_model(jobs, idx, ctx, report); });
  }

 private:
  using Report = platform::ReportFn;

  struct Model {
    std::shared_ptr<platform::LoadedModel> lm;
    json prov;
    int n_layer = 0, d_model = 0;
    bool batched = true;
  };

  void run_model(const std::vector<JobSpec>& jobs, const std::vector<size_t>& idx, ExecContext& ctx,
                 const Report& report) {
    auto& host = platform::shared_model_host();
    const json& p0 = jobs[idx.front()].params;
    Model m;
    m.lm = host.model_for(p0, ctx);
    const auto& info = m.lm->model->info();
    m.n_layer = info.config.n_layer;
    m.d_model = info.config.d_model;
    m.prov = host.provenance(p0, *m.lm, nullptr, ctx);
    m.prov["prompts_sha256"] = platform::prompt_sets().sha256;
    m.prov["random_weights"] = m.lm->random_weights;
    std::lock_guard<std::mutex> g(host.compute_mutex());

    // Jobs of one kind and scan direction share one batched probe, whatever
    // their words: many prompts of the model per forward. $SPT_SIGMA_BATCH=0
    // runs every prompt in a forward of its own (for benchmarks).
    const char* batch_env = std::getenv("SPT_SIGMA_BATCH");
    m.batched = !(batch_env && std::string(batch_env) == "0");
    std::map<std::pair<std::string, bool>, std::vector<size_t>> groups;
    for (size_t i : idx) groups[{jobs[i].kind, jobs[i].params.value("forwards", false)}].push_back(i);
    for (const auto& [key, group] : groups) {
      if (ctx.should_stop()) return;
      const std::vector<size_t> valid = check_prompts(jobs, group, m, report);
      auto run_group = [&, kind = key.first](const std::vector<size_t>& g) {
        kind == kKindDirection ? run_directions(jobs, g, m, report) : run_profiles(jobs, g, m, report);
      };
      if (m.batched) {
        if (!valid.empty()) run_group(valid);
      } else {
        for (size_t i : valid) run_group({i});
      }
    }
  }

  // A job whose prompts cannot be probed (no target word, longer than the
  // context, missing params) fails at once and for good: it would fail on
  // any worker. Tokenising alone finds them (a probe without hooks runs no
  // forward), so one bad job never takes its batch down, and whatever fails
  // later in the batched forward (memory, device) stays retryable.
  std::vector<size_t> check_prompts(const std::vector<JobSpec>& jobs, const std::vector<size_t>& group, const Model& m,
                                    const Report& report) const {
    std::vector<size_t> valid;
    for (size_t i : group) {
      try {
        const json& p = jobs[i].params;
        auto req = request(m, p.value("forwards", false), {});
        req.word = p.at("word").get<std::string>();
        if (jobs[i].kind == kKindDirection) {
          for (const char* side : {"prompts_A", "prompts_B"}) {
            const auto v = p.at(side).get<std::vector<std::string>>();
            if (v.empty()) throw PermanentError(jobs[i].name + ": " + side + " is empty");
            req.prompts.insert(req.prompts.end(), v.begin(), v.end());
          }
        } else {
          req.prompts = {p.at("prompt").get<std::string>()};
          if (jobs[i].inputs.size() != 1) throw PermanentError(jobs[i].name + " needs exactly its direction input");
        }
        platform::probe(*m.lm->model, *m.lm->tokenizer, req);
        valid.push_back(i);
      } catch (const std::exception& e) {
        report(i, Outcome::failure(e.what(), false));
      }
    }
    return valid;
  }

  static platform::ProbeRequest request(const Model& m, bool forwards, std::vector<std::string> hooks) {
    platform::ProbeRequest req;
    req.forwards = forwards;
    req.hooks = std::move(hooks);
    if (!m.batched) req.budget_bytes = 1;  // the probe then runs one prompt per forward
    return req;
  }

  // Runs one job's computation. Inputs and prompts are fixed by the plan
  // and the model is loaded, so a failure here would repeat anywhere:
  // it fails the job without a retry.
  template <typename F>
  static void run_guarded(size_t i, const Report& report, F&& f) {
    try {
      report(i, Outcome::success(f()));
    } catch (const std::exception& e) {
      report(i, Outcome::failure(e.what(), false));
    }
  }

  // Direction units (§2.3): the final-depth residual at the target of
  // every A and B prompt, averaged per side.
  void run_directions(const std::vector<JobSpec>& jobs, const std::vector<size_t>& group, const Model& m,
                      const Report& report) {
    const std::string hook = "blocks." + std::to_string(m.n_layer - 1) + ".hook_resid_post";
    auto req = request(m, jobs[group.front()].params.value("forwards", false), {hook});
    std::vector<size_t> first;  // first prompt of each job in the request
    for (size_t i : group) {
      first.push_back(req.prompts.size());
      const std::string word = jobs[i].params.at("word").get<std::string>();
      for (const char* side : {"prompts_A", "prompts_B"})
        for (const auto& p : jobs[i].params.at(side).get<std::vector<std::string>>()) {
          req.prompts.push_back(p);
          req.words.push_back(word);
        }
    }
    const auto res = platform::probe(*m.lm->model, *m.lm->tokenizer, req);
    const auto& read = res.reads.at(hook);
    for (size_t k = 0; k < group.size(); ++k)
      run_guarded(group[k], report, [&] {
        const JobSpec& j = jobs[group[k]];
        const size_t nA = j.params.at("prompts_A").size(), nB = j.params.at("prompts_B").size();
        std::vector<Vec> phi_A, phi_B;
        std::vector<int> tA, tB;
        for (size_t p = 0; p < nA + nB; ++p) {
          (p < nA ? phi_A : phi_B).push_back(slice(read, first[k] + p, m.d_model));
          (p < nA ? tA : tB).push_back(res.target[first[k] + p]);
        }
        const Direction d = make_direction(phi_A, phi_B);
        return json{{"word", req.words[first[k]]}, {"cos_AB", d.cos_AB},       {"e_A", d.e_A},
                    {"e_B", d.e_B},                {"e_diff", d.e_diff},       {"norm_m_A", d.norm_m_A},
                    {"norm_m_B", d.norm_m_B},      {"targets_A", tA},          {"targets_B", tB},
                    {"d_model", m.d_model},        {"n_layer", m.n_layer},     {"provenance", m.prov}};
      });
  }

  void run_profiles(const std::vector<JobSpec>& jobs, const std::vector<size_t>& group, const Model& m,
                    const Report& report) {
    auto req = request(m, jobs[group.front()].params.value("forwards", false), {platform::kResidDepths});
    for (size_t i : group) {
      req.prompts.push_back(jobs[i].params.at("prompt").get<std::string>());
      req.words.push_back(jobs[i].params.at("word").get<std::string>());
    }
    const auto res = platform::probe(*m.lm->model, *m.lm->tokenizer, req);
    const auto& read = res.reads.at(platform::kResidDepths);
    const int depths = m.n_layer + 1;
    const size_t width = static_cast<size_t>(depths) * m.d_model;
    for (size_t k = 0; k < group.size(); ++k) {
      const JobSpec& j = jobs[group[k]];
      run_guarded(group[k], report, [&] {
        const Vec phi = slice(read, k, width);
        const json& dir = j.inputs.front().result;
        const std::string measure = j.params.value("measure", std::string("contrastive"));
        std::vector<double> sigma;
        if (measure == "contrastive")
          sigma = sigma_contrastive(phi, depths, floats(dir, "e_diff"));
        else if (measure == "v1")
          sigma = sigma_v1(phi, depths, floats(dir, "e_A"), floats(dir, "e_B"));
        else
          throw PermanentError("profile " + j.name + ": unknown measure '" + measure + "'");
        json r = {{"word", req.words[k]},
                  {"prompt", req.prompts[k]},
                  {"measure", measure},
                  {"sigma", sigma},
                  {"target_position", res.target[k]},
                  {"n_tokens", res.tokens[k].size()},
                  {"provenance", m.prov}};
        if (j.params.value("lens", false))
          r["lens"] = {
              {"uncorrected", lens_json(platform::logit_lens(*m.lm->model, *m.lm->tokenizer, phi, depths, false, 5))},
              {"corrected", lens_json(platform::logit_lens(*m.lm->model, *m.lm->tokenizer, phi, depths, true, 5))}};
        return r;
      });
    }
  }
};

}  // namespace

void register_executors(ExecutorRegistry& reg) {
  reg.add(std::make_unique<ProbeExecutor>());
  reg.add(platform::make_reduce_executor({kKindReduce}, run_reduce, "sigma", gpt2::torch_version()));
}

}  // namespace spt::sigma
