#include "pi/executors.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "model/tokenizer.h"
#include "pi/common.h"
#include "pi/reduce.h"
#include "pi/science.h"
#include "platform/model_host.h"
#include "platform/probe.h"
#include "platform/prompts.h"
#include "platform/reduce_context.h"
#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"
#include "spt/job.h"
#include "spt/util.h"

namespace spt::pi {

namespace {

using nlohmann::json;
using platform::PermanentError;


// θ over the first max_samples positions of chunk 0 (spec §8 C (1), A17):
// the forward runs on those positions only — causal attention makes their
// activations the same as in a forward of the whole chunk (to float
// round-off), and a 48-layer model then caches 500, not 1024, positions.
json wikitext_unit(const JobSpec& j, platform::LoadedModel& lm, ExecContext& ctx) {
  auto& host = platform::shared_model_host();
  const auto key = platform::ChunkKey::from_params(j.params);
  const auto cs = host.chunks_for(key, lm, ctx);
  if (cs->chunks.empty()) throw PermanentError(j.name + ": the test split gives no chunk of " + std::to_string(key.chunk_len) + " tokens");
  const int64_t n = j.params.value("max_samples", int64_t{500});
  const auto& chunk = cs->chunks.front();
  if (n < 1 || n > static_cast<int64_t>(chunk.size()))
    throw PermanentError(j.name + ": max_samples " + std::to_string(n) + " outside 1.." + std::to_string(chunk.size()));
  const int L = lm.model->info().config.n_layer, d = lm.model->info().config.d_model;
  gpt2::RunOptions o;
  o.logits = false;
  o.cache.insert("blocks.0.hook_resid_pre");
  for (int l = 0; l < L; ++l) o.cache.insert(gpt2::hook_name(l, "hook_resid_post"));
  const std::vector<int32_t> ids(chunk.begin(), chunk.begin() + n);
  const auto r = gpt2::run(*lm.model, gpt2::tokens_tensor(ids), o);
  std::vector<at::Tensor> depths = {r.cache.at("blocks.0.hook_resid_pre")[0]};
  for (int l = 0; l < L; ++l) depths.push_back(r.cache.at(gpt2::hook_name(l, "hook_resid_post"))[0]);
  // [T, L+1, d] float32 on the CPU: one sample's depths contiguous.
  const at::Tensor v = at::stack(depths, 1).to(at::kCPU, at::kFloat).contiguous();
  json thetas = json::array();
  for (int64_t t = 0; t < n; ++t)
    thetas.push_back(rotation_angles(v.data_ptr<float>() + t * (L + 1) * d, L + 1, d));
  json prov = host.provenance(j.params, lm, cs.get(), ctx);
  prov["random_weights"] = lm.random_weights;
  return {{"source", "wikitext"}, {"n_layer", L}, {"d_model", d}, {"n_samples", n},
          {"thetas", thetas}, {"provenance", prov}};
}

// θ at the last token of each prompt, tokenised WITHOUT BOS (spec §8 C (2),
// §1.5, A1) — unlike exp1–3, whose prompts carry BOS.
json prompts_unit(const JobSpec& j, platform::LoadedModel& lm, ExecContext& ctx) {
  const int L = lm.model->info().config.n_layer, d = lm.model->info().config.d_model;
  platform::ProbeRequest req;
  req.bos = false;
  req.hooks = {platform::kResidDepths};
  if (!j.params.contains("prompts") || !j.params.at("prompts").is_array() || j.params.at("prompts").empty())
    throw PermanentError(j.name + ": params.prompts must be a non-empty list");
  for (const auto& p : j.params.at("prompts")) {
    req.prompts.push_back(p.at("text").get<std::string>());
    req.words.push_back(p.at("word").get<std::string>());
  }
  const auto res = platform::probe(*lm.model, *lm.tokenizer, req);
  const auto& read = res.reads.at(platform::kResidDepths);
  json out = json::array();
  for (size_t i = 0; i < req.prompts.size(); ++i) {
    if (res.target[i] + 1 != static_cast<int>(res.tokens[i].size()))
      throw PermanentError(j.name + ": the target of prompt '" + req.prompts[i] + "' is not its last token");
    const json& p = j.params.at("prompts")[i];
    out.push_back({{"word", p.at("word")},
                   {"condition", p.at("condition")},
                   {"n_tokens", res.tokens[i].size()},
                   {"thetas", rotation_angles(read.data.data() + i * (L + 1) * d, L + 1, d)}});
  }
  json prov = platform::shared_model_host().provenance(j.params, lm, nullptr, ctx);
  prov["random_weights"] = lm.random_weights;
  prov["prompts_sha256"] = platform::prompt_sets().sha256;
  prov["bos"] = false;
  return {{"source", "prompts"}, {"n_layer", L}, {"d_model", d}, {"prompts", out}, {"provenance", prov}};
}

class RotationExecutor : public Executor {
 public:
  std::vector<std::string> kinds() const override { return {kKindRotation}; }
  std::vector<std::string> precisions() const override { return {"fp32", "tf32", "bf16"}; }
  std::vector<std::string> loaded_models() const override { return platform::shared_model_host().loaded_models(); }

  void run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
           const std::function<void(size_t, Outcome)>& done) override {
    platform::run_grouped(
        jobs, ctx, done,
        [](const JobSpec& j) {
          return j.params.value("model", std::string()) + "|" + j.params.value("precision", std::string("fp32"));
        },
        [&](const std::vector<size_t>& idx, const platform::ReportFn& report) {
          auto& host = platform::shared_model_host();
          auto lm = host.model_for(jobs[idx.front()].params, ctx);
          std::lock_guard<std::mutex> g(host.compute_mutex());
          for (size_t i : idx) {
            if (ctx.should_stop()) return;
            const JobSpec& j = jobs[i];
            const std::string src = j.params.value("source", std::string());
            try {
              if (src == "wikitext")
                report(i, Outcome::success(wikitext_unit(j, *lm, ctx)));
              else if (src == "prompts")
                report(i, Outcome::success(prompts_unit(j, *lm, ctx)));
              else
                report(i, Outcome::failure(j.name + ": unknown source '" + src + "' (wikitext | prompts)", false));
            } catch (const std::invalid_argument& e) {
              // Bad params or prompts (too long, no target): fails anywhere.
              report(i, Outcome::failure(j.name + ": " + e.what(), false));
            }
          }
        });
  }
};

}  // namespace

void register_executors(ExecutorRegistry& reg) {
  reg.add(std::make_unique<RotationExecutor>());
  reg.add(platform::make_reduce_executor({kKindReduce}, run_reduce, "pi", gpt2::torch_version()));
}

}  // namespace spt::pi
