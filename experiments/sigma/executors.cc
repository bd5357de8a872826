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

// Generated checkpoints (experiments/model/testmodel.h) mark config.json.
bool random_weights(const std::string& model_dir) {
  try {
    const json cfg = json::parse(read_file((std::filesystem::path(model_dir) / "config.json").string()));
    return cfg.contains("spt_test_model");
  } catch (const std::exception&) {
    return false;
  }
}

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
    std::vector<bool> reported(jobs.size(), false);
    auto report = [&](size_t i, Outcome o) {
      if (reported[i]) return;
      reported[i] = true;
      done(i, std::move(o));
    };
    std::map<std::string, std::vector<size_t>> by_model;
    for (size_t i = 0; i < jobs.size(); ++i) {
      const json& p = jobs[i].params;
      by_model[p.value("model", std::string()) + "|" + p.value("precision", std::string("fp32"))].push_back(i);
    }
    for (const auto& [key, idx] : by_model) {
      if (ctx.should_stop()) break;
      try {
        run_model(jobs, idx, ctx, report);
      } catch (const PermanentError& e) {
        for (size_t i : idx) report(i, Outcome::failure(e.what(), false));
      } catch (const std::exception& e) {
        for (size_t i : idx) report(i, Outcome::failure(e.what(), true));
      }
    }
    for (size_t i = 0; i < jobs.size(); ++i)
      if (!reported[i]) report(i, Outcome::failure("stopped before this job ran", true));
  }

 private:
  using Report = std::function<void(size_t, Outcome)>;

  struct Model {
    std::shared_ptr<platform::LoadedModel> lm;
    json prov;
    int n_layer = 0, d_model = 0;
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
    if (p0.value("n_layer", m.n_layer) != m.n_layer || p0.value("n_head", info.config.n_head) != info.config.n_head)
      throw PermanentError("model " + p0.value("model", std::string()) + " has " + std::to_string(m.n_layer) + "x" +
                           std::to_string(info.config.n_head) + " heads; the submission planned " +
                           std::to_string(p0.value("n_layer", 0)) + "x" + std::to_string(p0.value("n_head", 0)));
    m.prov = host.provenance(p0, *m.lm, nullptr, ctx);
    m.prov["prompts_sha256"] = platform::prompt_sets().sha256;
    m.prov["random_weights"] = random_weights(info.dir);
    std::lock_guard<std::mutex> g(host.compute_mutex());

    // Profiles of one word (and scan direction) share one batched probe.
    std::map<std::string, std::vector<size_t>> profiles;
    for (size_t i : idx) {
      if (ctx.should_stop()) return;
      const JobSpec& j = jobs[i];
      if (j.kind == kKindDirection) {
        run_guarded(i, report, [&] { return direction(j, m); });
      } else {
        profiles[j.params.value("word", std::string()) + "|" + (j.params.value("forwards", false) ? "f" : "b")]
            .push_back(i);
      }
    }
    // $SPT_SIGMA_BATCH=0: one forward per prompt (for benchmarks).
    const char* batch_env = std::getenv("SPT_SIGMA_BATCH");
    const bool batched = !(batch_env && std::string(batch_env) == "0");
    auto one_by_one = [&](const std::vector<size_t>& group) {
      for (size_t i : group) {
        try {
          run_profiles(jobs, {i}, m, report);
        } catch (const std::exception& e) {
          report(i, Outcome::failure(e.what(), false));
        }
      }
    };
    for (const auto& [key, group] : profiles) {
      if (ctx.should_stop()) return;
      if (!batched) {
        one_by_one(group);
        continue;
      }
      try {
        run_profiles(jobs, group, m, report);
      } catch (const std::exception&) {
        // A prompt without its word (or too long) fails the batched probe:
        // rerun the group job by job so only that job fails.
        one_by_one(group);
      }
    }
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

  static json direction(const JobSpec& j, const Model& m) {
    const auto A = j.params.at("prompts_A").get<std::vector<std::string>>();
    const auto B = j.params.at("prompts_B").get<std::vector<std::string>>();
    if (A.empty() || B.empty()) throw PermanentError("direction " + j.name + ": prompts_A and prompts_B are needed");
    platform::ProbeRequest req;
    req.prompts = A;
    req.prompts.insert(req.prompts.end(), B.begin(), B.end());
    req.word = j.params.at("word").get<std::string>();
    req.forwards = j.params.value("forwards", false);
    const std::string hook = "blocks." + std::to_string(m.n_layer - 1) + ".hook_resid_post";
    req.hooks = {hook};
    const auto res = platform::probe(*m.lm->model, *m.lm->tokenizer, req);
    const auto& read = res.reads.at(hook);
    std::vector<Vec> phi_A, phi_B;
    for (size_t i = 0; i < req.prompts.size(); ++i)
      (i < A.size() ? phi_A : phi_B).push_back(slice(read, i, m.d_model));
    const Direction d = make_direction(phi_A, phi_B);
    std::vector<int> tA(res.target.begin(), res.target.begin() + A.size()), tB(res.target.begin() + A.size(), res.target.end());
    return {{"word", req.word},     {"cos_AB", d.cos_AB},     {"e_A", d.e_A},
            {"e_B", d.e_B},         {"e_diff", d.e_diff},     {"norm_m_A", d.norm_m_A},
            {"norm_m_B", d.norm_m_B}, {"targets_A", tA},      {"targets_B", tB},
            {"d_model", m.d_model}, {"n_layer", m.n_layer},   {"provenance", m.prov}};
  }

  void run_profiles(const std::vector<JobSpec>& jobs, const std::vector<size_t>& group, const Model& m,
                    const Report& report) {
    platform::ProbeRequest req;
    req.word = jobs[group.front()].params.value("word", std::string());
    req.forwards = jobs[group.front()].params.value("forwards", false);
    req.hooks = {platform::kResidDepths};
    for (size_t i : group) req.prompts.push_back(jobs[i].params.at("prompt").get<std::string>());
    const auto res = platform::probe(*m.lm->model, *m.lm->tokenizer, req);
    const auto& read = res.reads.at(platform::kResidDepths);
    const int depths = m.n_layer + 1;
    const size_t width = static_cast<size_t>(depths) * m.d_model;
    for (size_t k = 0; k < group.size(); ++k) {
      const JobSpec& j = jobs[group[k]];
      run_guarded(group[k], report, [&] {
        const Vec phi = slice(read, k, width);
        if (j.inputs.size() != 1) throw PermanentError("profile " + j.name + " needs exactly its direction input");
        const json& dir = j.inputs.front().result;
        const std::string measure = j.params.value("measure", std::string("contrastive"));
        std::vector<double> sigma;
        if (measure == "contrastive")
          sigma = sigma_contrastive(phi, depths, floats(dir, "e_diff"));
        else if (measure == "v1")
          sigma = sigma_v1(phi, depths, floats(dir, "e_A"), floats(dir, "e_B"));
        else
          throw PermanentError("profile " + j.name + ": unknown measure '" + measure + "'");
        json r = {{"word", req.word},
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
