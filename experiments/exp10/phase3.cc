// exp10.gen: the generation units of exp10d Phase 3 (spec §10.4 P1–P3).
// See phase3.h for the params and results.
#include "exp10/phase3.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>

#include "exp10/common.h"
#include "exp10/reduce.h"
#include "exp10/variants.h"
#include "platform/hosted_executor.h"
#include "platform/model_host.h"
#include "spt/gpt2.h"
#include "spt/job.h"
#include "spt/util.h"

namespace spt::exp10 {

using nlohmann::json;

namespace {

using Permanent = platform::PermanentError;
using platform::ChunkKey;
using platform::ChunkSet;
using platform::LoadedModel;

json timing(const std::vector<double>& t, int new_tokens) {
  double mu = 0, var = 0;
  for (double x : t) mu += x / static_cast<double>(t.size());
  for (double x : t) var += (x - mu) * (x - mu) / static_cast<double>(t.size());
  json a = json::array();
  for (double x : t) a.push_back(x);
  return {{"times_s", a},
          {"mean_time", mu},
          {"std_time", std::sqrt(var)},
          {"tokens_per_sec", new_tokens / mu},
          {"latency_ms", mu / new_tokens * 1000.0}};
}

json scored(const gpt2::NllSum& s) {
  return {{"nll_sum", s.nll}, {"n_tokens", s.count}, {"ppl", round_to(ppl_of(s.nll, static_cast<double>(s.count)), 4)}};
}

json ids(const std::vector<int32_t>& t) { return json(t); }

json run_one(const JobSpec& job, gpt2::Model& model, const ChunkSet& cs, const std::string& device_desc,
             ExecContext& ctx) {
  const json& p = job.params;
  const auto& cfg = model.info().config;
  const std::string task = p.value("task", std::string());
  const int prompt_len = p.value("prompt_len", 0), new_tokens = p.value("new_tokens", 0);
  const int64_t need = p.value("n_ctx_needed", int64_t{0});
  if (need > cfg.n_ctx) {
    const std::string which = task == "speed" ? "p1_prompt_len + p1_new_tokens"
                                              : task == "refine" ? "p_prompt_len + p_iterations * p_new_tokens"
                                                                 : "p_prompt_len + p_new_tokens";
    throw Permanent(job.name + ": " + which + " = " + std::to_string(need) + " exceeds the model's context of " +
                    std::to_string(cfg.n_ctx) + "; lower those params");
  }
  const int idx = p.value("prompt_index", 0);
  if (idx < 0 || static_cast<size_t>(idx) >= cs.chunks.size())
    throw Permanent(job.name + ": prompt " + std::to_string(idx) + " needs chunk " + std::to_string(idx) +
                    " of VFULL, which has " + std::to_string(cs.chunks.size()) +
                    " chunks; lower p_prompts or raise v_max_tokens");
  const auto& chunk = cs.chunks[static_cast<size_t>(idx)];
  if (prompt_len < 1 || static_cast<size_t>(prompt_len) > chunk.size())
    throw Permanent(job.name + ": prompt_len " + std::to_string(prompt_len) + " is not within chunk " +
                    std::to_string(idx) + "'s " + std::to_string(chunk.size()) + " tokens");
  if (new_tokens < 1) throw Permanent(job.name + ": new_tokens must be >= 1");
  const std::vector<int32_t> prompt(chunk.begin(), chunk.begin() + prompt_len);

  ResolvedVariant rv;
  try {
    rv = resolve_variant(job);
  } catch (const std::exception& e) {
    throw Permanent(std::string("cannot build the variant: ") + e.what());
  }
  if (rv.skipped) throw Permanent(job.name + ": variant skipped: " + rv.skip_reason);
  const gpt2::Variant& v = rv.variant;
  const bool kv = p.value("kv_cache", false);

  json r = {{"task", task},
            {"condition", p.value("condition", std::string())},
            {"n_linear", p.value("n_linear", 0)},
            {"variant", rv.describe},
            {"prompt_index", idx},
            {"prompt_len", prompt_len},
            {"new_tokens", new_tokens},
            {"device", device_desc}};

  if (task == "speed") {
    const int runs = std::max(1, p.value("runs", 10)), warm = std::max(0, p.value("warmup_runs", 1));
    auto time_path = [&](bool kv_path, std::vector<int32_t>& toks) {
      gpt2::GenerateOptions o;
      o.max_new_tokens = new_tokens;
      o.kv_cache = kv_path;
      for (int w = 0; w < warm; ++w) toks = gpt2::generate(model, prompt, v, o).tokens;
      std::vector<double> t;
      for (int i = 0; i < runs; ++i) {
        if (ctx.should_stop()) throw std::runtime_error("stopped");
        // generate() copies each step's logits to the CPU: every step ends
        // with a device synchronisation, so the clock sees all the work.
        const auto t0 = std::chrono::steady_clock::now();
        toks = gpt2::generate(model, prompt, v, o).tokens;
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return timing(t, new_tokens);
    };
    std::vector<int32_t> full_toks, kv_toks;
    const json full = time_path(false, full_toks);
    r.update(full);
    r["kv_cache"] = false;
    r["runs"] = runs;
    r["warmup_runs"] = warm;
    r["tokens"] = ids(full_toks);
    json kvt = time_path(true, kv_toks);
    kvt.erase("times_s");
    r["kv_cache_timing"] = kvt;
    r["kv_cache_same_tokens"] = kv_toks == full_toks;
  } else if (task == "refine") {
    const int iters = p.value("iterations", 3);
    std::vector<int32_t> seq = prompt;
    json it = json::array();
    for (int k = 1; k <= iters; ++k) {
      if (ctx.should_stop()) throw std::runtime_error("stopped");
      gpt2::GenerateOptions o;
      o.max_new_tokens = new_tokens;
      o.kv_cache = kv;
      const auto g = gpt2::generate(model, seq, v, o);
      seq.insert(seq.end(), g.tokens.begin(), g.tokens.end());
      // A11: the unmodified model scores every token after the prompt.
      json row = scored(gpt2::score_tail(model, seq, prompt_len));
      row["iteration"] = k;
      row["length"] = seq.size();
      it.push_back(row);
    }
    r["iterations"] = it;
    r["kv_cache"] = kv;
    r["tokens"] = ids(std::vector<int32_t>(seq.begin() + prompt_len, seq.end()));
  } else if (task == "best_of_n") {
    const double temp = p.value("temperature", 0.8);
    const json& seeds = p.at("seeds");
    if (static_cast<int>(seeds.size()) != p.value("candidates", static_cast<int>(seeds.size())))
      throw Permanent(job.name + ": seeds and candidates disagree");
    json cands = json::array();
    int k = 0;
    for (const auto& sj : seeds) {
      if (ctx.should_stop()) throw std::runtime_error("stopped");
      gpt2::GenerateOptions o;
      o.max_new_tokens = new_tokens;
      o.temperature = temp;
      o.seed = sj.get<uint64_t>();
      o.kv_cache = kv;
      const auto g = gpt2::generate(model, prompt, v, o);
      std::vector<int32_t> seq = prompt;
      seq.insert(seq.end(), g.tokens.begin(), g.tokens.end());
      json row = scored(gpt2::score_tail(model, seq, prompt_len));
      row["candidate"] = k++;
      row["seed"] = g.seed;
      row["tokens"] = ids(g.tokens);
      cands.push_back(row);
    }
    r["candidates"] = cands;
    r["temperature"] = temp;
    r["kv_cache"] = kv;
  } else {
    throw Permanent(job.name + ": unknown exp10.gen task '" + task + "' (speed, refine, best_of_n)");
  }
  return r;
}

class GenExecutor : public platform::HostedExecutor {
 public:
  std::vector<std::string> kinds() const override { return {kKindGen}; }

 private:
  void run_group(const std::vector<JobSpec>& jobs, const std::vector<size_t>& idx, ExecContext& ctx,
                 const platform::ReportFn& report) override {
    platform::ModelHost& host = platform::shared_model_host();
    const json& p0 = jobs[idx.front()].params;
    const std::shared_ptr<LoadedModel> loaded = host.model_for(p0, ctx);
    const std::shared_ptr<const ChunkSet> cs = host.chunks_for(ChunkKey::from_params(p0), *loaded, ctx);
    const json prov = host.provenance(p0, *loaded, cs.get(), ctx);
    const std::string dev = prov.value("device", ctx.device);  // the host described it
    for (size_t i : idx) {
      if (ctx.should_stop()) return;
      try {
        json r = run_one(jobs[i], *loaded->model, *cs, dev, ctx);
        r["chunks"] = jobs[i].params.value("chunks", std::string());
        r["provenance"] = prov;
        report(i, Outcome::success(std::move(r)));
      } catch (const Permanent& e) {
        report(i, Outcome::failure(e.what(), false));
      } catch (const std::invalid_argument& e) {  // generate/score_tail: bad lengths or tokens
        report(i, Outcome::failure(e.what(), false));
      }
    }
  }
};

}  // namespace

std::unique_ptr<Executor> make_gen_executor() { return std::make_unique<GenExecutor>(); }

}  // namespace spt::exp10
