#include "exp10/executors.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>

#include "exp10/common.h"
#ifdef SPT_EXP10_GEN
#include "exp10/phase3.h"
#endif
#include "exp10/reduce.h"
#include "exp10/variants.h"
#include "platform/hosted_executor.h"
#include "platform/model_host.h"
#include "platform/reduce_context.h"
#include "spt/gpt2.h"
#include "spt/job.h"
#include "spt/util.h"

namespace spt::exp10 {

using nlohmann::json;

namespace {

// A failure that retrying elsewhere cannot fix (bad params, bad inputs).
using Permanent = platform::PermanentError;
using platform::ChunkKey;
using platform::ChunkSet;
using platform::LoadedModel;

std::string env_or(const char* k, const std::string& def) {
  const char* v = std::getenv(k);
  return v && *v ? v : def;
}

class ModelExecutor : public platform::HostedExecutor {
 public:
  std::vector<std::string> kinds() const override { return {kKindPpl, kKindMeans}; }

 private:
  void run_group(const std::vector<JobSpec>& jobs, const std::vector<size_t>& idx, ExecContext& ctx,
                 const platform::ReportFn& report) override {
    platform::ModelHost& host = platform::shared_model_host();
    const json& p0 = jobs[idx.front()].params;
    const std::shared_ptr<LoadedModel> loaded = host.model_for(p0, ctx);
    const LoadedModel& m = *loaded;
    const auto& cfg = m.model->info().config;
    const ChunkKey k = ChunkKey::from_params(p0);
    if (k.chunk_len > cfg.n_ctx)
      throw Permanent("chunk_len " + std::to_string(k.chunk_len) + " exceeds the model's context " +
                      std::to_string(cfg.n_ctx));
    const std::shared_ptr<const ChunkSet> chunk_set = host.chunks_for(k, m, ctx);
    const ChunkSet& cs = *chunk_set;
    const json prov = host.provenance(p0, m, &cs, ctx);

    // Means jobs: one capture each.
    std::vector<size_t> ppl_jobs;
    for (size_t i : idx) {
      if (jobs[i].kind != kKindMeans) {
        ppl_jobs.push_back(i);
        continue;
      }
      if (ctx.should_stop()) return;
      const auto sums = m.model->head_z_sums(cs.chunks);
      HeadMeans hm;
      hm.n_layer = cfg.n_layer;
      hm.n_head = cfg.n_head;
      hm.d_head = cfg.d_head;
      hm.values.resize(sums.sum.size());
      for (size_t j = 0; j < sums.sum.size(); ++j)
        hm.values[j] = static_cast<float>(sums.sum[j] / static_cast<double>(sums.count));
      json r = means_to_json(hm, sums.count);
      r["chunks"] = jobs[i].params.value("chunks", std::string());
      r["n_chunks"] = cs.chunks.size();
      r["provenance"] = prov;
      report(i, Outcome::success(std::move(r)));
    }

    // PPL jobs: resolve variants; failures and skips are reported at once.
    struct Item {
      size_t job;
      ResolvedVariant rv;
    };
    std::vector<Item> items;
    for (size_t i : ppl_jobs) {
      try {
        ResolvedVariant rv = resolve_variant(jobs[i]);
        if (rv.skipped) {
          report(i, Outcome::success(json{{"skipped", true}, {"reason", rv.skip_reason}, {"variant", rv.describe}}));
          continue;
        }
        items.push_back({i, std::move(rv)});
      } catch (const std::exception& e) {
        report(i, Outcome::failure(std::string("cannot build the variant: ") + e.what(), false));
      }
    }
    // Variants sharing a first touched layer share the most prefix work.
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      return a.rv.variant.min_layer() < b.rv.variant.min_layer();
    });
    const bool fuse_env = env_or("SPT_EXP10_FUSE", "1") != "0";
    // A sub-batch is reported as a whole, so bound its work: at most
    // SPT_EXP10_FUSE_MAX variants and SPT_EXP10_FUSE_TOKENS variant-tokens
    // (V2K: 48 variants per call; the full split: a few).
    const int64_t token_budget = std::max<int64_t>(1, std::atoll(env_or("SPT_EXP10_FUSE_TOKENS", "1048576").c_str()));
    const size_t max_batch = static_cast<size_t>(
        std::max<int64_t>(1, std::min<int64_t>(std::atoi(env_or("SPT_EXP10_FUSE_MAX", "48").c_str()),
                                               token_budget / std::max<int64_t>(1, cs.total_tokens))));
    size_t pos = 0;
    while (pos < items.size()) {
      if (ctx.should_stop()) return;
      const bool fuse = fuse_env && jobs[items[pos].job].params.value("fuse", true);
      size_t end = pos + 1;
      if (fuse)
        while (end < items.size() && end - pos < max_batch && jobs[items[end].job].params.value("fuse", true)) ++end;
      std::vector<gpt2::NllSum> sums;
      if (fuse) {
        std::vector<gpt2::Variant> vs;
        for (size_t i = pos; i < end; ++i) vs.push_back(items[i].rv.variant);
        sums = m.model->nll_many(cs.chunks, vs);
      } else {
        sums.push_back(m.model->nll(cs.chunks, items[pos].rv.variant));
      }
      for (size_t i = pos; i < end; ++i) {
        const JobSpec& job = jobs[items[i].job];
        const auto& s = sums[i - pos];
        const double ppl = ppl_of(s.nll, static_cast<double>(s.count));
        json r = {{"ppl", round_to(ppl, 4)},
                  {"nll_sum", s.nll},
                  {"n_tokens", s.count},
                  {"n_chunks", cs.chunks.size()},
                  {"total_tokens", cs.total_tokens},
                  {"chunks", job.params.value("chunks", std::string())},
                  {"variant", items[i].rv.describe},
                  {"fused", fuse && end - pos > 1},
                  {"provenance", prov}};
        if (job.params.value("chunks", std::string()) == "v2k")
          for (const auto& in : job.inputs)
            if (in.result.is_object() && in.result.contains("baseline_ppl")) {
              const double b = in.result.at("baseline_ppl").get<double>();
              r["delta_ppl"] = round_to((ppl - b) / b, 6);
              break;
            }
        if (!std::isfinite(ppl)) {
          report(items[i].job, Outcome::failure("perplexity is not finite (" + std::to_string(ppl) + ")", true));
          continue;
        }
        report(items[i].job, Outcome::success(std::move(r)));
      }
      pos = end;
    }
  }

};

}  // namespace

void register_executors(ExecutorRegistry& reg) {
  reg.add(std::make_unique<ModelExecutor>());
#ifdef SPT_EXP10_GEN
  reg.add(make_gen_executor());  // exp10.gen: Phase 3 generation units
#endif
  reg.add(platform::make_reduce_executor({kKindReduce}, run_reduce, "exp10", gpt2::torch_version()));
}

}  // namespace spt::exp10
