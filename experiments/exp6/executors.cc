#include "exp6/executors.h"

#include <cstdlib>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>

#include "exp6/common.h"
#include "exp6/reduce.h"
#include "exp6/wqk.h"
#include "platform/hosted_executor.h"
#include "platform/model_host.h"
#include "platform/reduce_context.h"
#include "spt/job.h"
#include "spt/util.h"

namespace spt::exp6 {

namespace {

using nlohmann::json;
using platform::PermanentError;


std::vector<int64_t> ints(const json& j, const char* key, const std::string& from) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_array())
    throw PermanentError(from + " has no array '" + key + "'");
  return j.at(key).get<std::vector<int64_t>>();
}

size_t cache_size() {
  const char* v = std::getenv("SPT_EXP6_VARIANT_CACHE");
  const long n = v && *v ? std::atol(v) : 1;
  return static_cast<size_t>(std::max(1L, n));
}

class ModelExecutor : public platform::HostedExecutor {
 public:
  std::vector<std::string> kinds() const override { return {kKindWeights, kKindPpl}; }

 private:
  // A model's weights units (at one precision) share its W_flat and PCA.
  std::string group_key(const JobSpec& j) const override {
    return j.kind == kKindWeights ? model_key(j.params) : platform::model_data_key(j.params);
  }

  struct Base {  // the model's W_flat and PCA, computed once per model
    std::string key;
    WFlat w;
    analysis::Pca pca;
  };
  struct Cached {
    std::string key;
    std::shared_ptr<gpt2::Model> model;
    json info;  // n_edited, max_abs_error, …
  };
  Base base_;
  std::list<Cached> variants_;  // most recently used first

  static std::string model_key(const json& p) {
    return p.value("model", std::string()) + "|" + p.value("precision", std::string("fp32"));
  }

  const Base& base_for(const json& p, const gpt2::Model& m) {
    const std::string key = model_key(p) + "|" + m.info().sha256;
    if (base_.key != key) {
      base_.w = extract_wflat(m);
      base_.pca = wflat_pca(base_.w);
      base_.key = key;
    }
    return base_;
  }

  void run_group(const std::vector<JobSpec>& jobs, const std::vector<size_t>& idx, ExecContext& ctx,
                 const platform::ReportFn& report) override {
    platform::ModelHost& host = platform::shared_model_host();
    const json& p0 = jobs[idx.front()].params;
    const auto loaded = host.model_for(p0, ctx);
    if (jobs[idx.front()].kind == kKindWeights) {
      json prov = host.provenance(p0, *loaded, nullptr, ctx);
      prov["random_weights"] = loaded->random_weights;
      const json r = weights_result(base_for(p0, *loaded->model), prov);
      for (size_t i : idx) report(i, Outcome::success(r));
      return;
    }
    const platform::ChunkKey k = platform::ChunkKey::from_params(p0);
    const auto& cfg = loaded->model->info().config;
    if (k.chunk_len > cfg.n_ctx)
      throw PermanentError("chunk_len " + std::to_string(k.chunk_len) + " exceeds the model's context " +
                           std::to_string(cfg.n_ctx));
    const auto cs = host.chunks_for(k, *loaded, ctx);
    json prov = host.provenance(p0, *loaded, cs.get(), ctx);
    prov["random_weights"] = loaded->random_weights;
    // Jobs of one variant together, so each variant is injected once.
    std::map<std::string, std::vector<size_t>> by_variant;
    std::vector<std::string> order;
    for (size_t i : idx) {
      const std::string v = jobs[i].params.value("variant", json::object()).dump();
      if (!by_variant.count(v)) order.push_back(v);
      by_variant[v].push_back(i);
    }
    for (const auto& v : order) {
      if (ctx.should_stop()) return;
      const auto& group = by_variant[v];
      Cached model;
      try {
        model = variant_model(jobs[group.front()], *loaded);
      } catch (const std::exception& e) {
        for (size_t i : group) report(i, Outcome::failure(std::string("cannot build the variant: ") + e.what(), false));
        continue;
      }
      for (size_t i : group) {
        if (ctx.should_stop()) return;
        report(i, ppl_unit(jobs[i], *model.model, *cs, model.info, prov));
        if (model.info.contains("variant_cache")) model.info["variant_cache"] = "hit";  // the rest share it
      }
    }
  }

  static json weights_result(const Base& b, const json& prov) {
    const auto& r = b.pca.explained_variance_ratio;
    std::vector<double> cum(r.size());
    double s = 0;
    for (size_t i = 0; i < r.size(); ++i) cum[i] = (s += r[i]);
    json thresholds = json::object();
    for (const char* t : {"0.5", "0.8", "0.9", "0.95"}) {
      const auto k = analysis::components_for(r, std::stod(t));
      thresholds[t] = k ? json(*k) : json(nullptr);
    }
    const int64_t ns = std::min<int64_t>(kScoresForClustering, b.pca.scores.cols);
    json scores = json::array();
    for (int64_t i = 0; i < b.pca.scores.rows; ++i) {
      json row = json::array();
      for (int64_t c = 0; c < ns; ++c) row.push_back(b.pca.scores.at(i, c));
      scores.push_back(std::move(row));
    }
    return {{"n_layers", b.w.n_layer},
            {"n_heads", b.w.n_head},
            {"d_head", b.w.d_head},
            {"n_heads_total", b.w.n_total()},
            {"W_flat_shape", {b.w.w.rows, b.w.w.cols}},
            {"W_flat_sha256", b.w.sha256},
            {"n_components", b.pca.components.rows},
            {"explained_variance_ratio", r},
            {"cumulative_variance", cum},
            {"singular_values", b.pca.singular_values},
            {"thresholds", thresholds},
            {"scores", scores},
            {"n_scores", ns},
            {"provenance", prov}};
  }

  Cached variant_model(const JobSpec& job, const platform::LoadedModel& lm) {
    const json& v = job.params.value("variant", json::object());
    const std::string type = v.value("type", std::string());
    if (type == "baseline") {
      // The shared model, unmodified: an aliasing pointer that owns nothing.
      return {"", std::shared_ptr<gpt2::Model>(std::shared_ptr<void>(), lm.model.get()), json{{"n_edited", 0}}};
    }
    if (type != "wqk_pca" && type != "wqk_cluster")
      throw PermanentError("unknown exp6 variant type '" + type + "' in " + v.dump());
    const int64_t k = v.value("k", int64_t{0});
    const Base& b = base_for(job.params, *lm.model);
    std::string key = model_key(job.params) + "|" + b.w.sha256 + "|" + v.dump();
    std::vector<int64_t> labels, reps;
    if (type == "wqk_cluster") {
      const JobInput* in = nullptr;
      for (const auto& x : job.inputs)
        if (x.result.is_object() && x.result.contains("labels")) in = &x;
      if (!in) throw PermanentError(job.name + ": wqk_cluster needs its k-means input");
      labels = ints(in->result, "labels", in->name);
      reps = ints(in->result, "representatives", in->name);
      key += "|" + json(labels).dump() + json(reps).dump();
    }
    for (auto it = variants_.begin(); it != variants_.end(); ++it)
      if (it->key == key) {
        variants_.splice(variants_.begin(), variants_, it);
        Cached hit = variants_.front();
        hit.info["variant_cache"] = "hit";  // this unit reused an injection
        return hit;
      }
    const auto edits = type == "wqk_pca" ? pca_edits(b.w, b.pca, k) : cluster_edits(b.w, labels, reps);
    // Make room first: a full cache's oldest copy goes before the new one exists.
    while (!variants_.empty() && variants_.size() >= cache_size()) variants_.pop_back();
    EditedModel em = edited_model(*lm.model, edits);
    Cached c{key, std::shared_ptr<gpt2::Model>(std::move(em.model)),
             json{{"n_edited", edits.size()},
                  {"max_abs_wqk_error", em.max_abs_error},
                  {"max_abs_wqk_target", em.max_abs_target},
                  {"W_flat_sha256", b.w.sha256}}};
    variants_.push_front(c);
    c.info["variant_cache"] = "built";
    while (variants_.size() > cache_size()) variants_.pop_back();
    return c;
  }

  static Outcome ppl_unit(const JobSpec& job, gpt2::Model& m, const platform::ChunkSet& cs, const json& info,
                          const json& prov) {
    const int64_t n = static_cast<int64_t>(cs.chunks.size());
    const int64_t a = job.params.value("chunk_begin", int64_t{0});
    const int64_t e = std::min(n, job.params.value("chunk_end", n));  // T may hold fewer chunks than planned
    const int64_t end_asked = job.params.value("chunk_end", int64_t{-1});
    if (a < 0 || end_asked < a)
      return Outcome::failure(job.name + ": bad chunk range [" + std::to_string(a) + ", " + std::to_string(end_asked) + ")",
                              false);
    gpt2::Chunks part;
    for (int64_t c = a; c < e; ++c) part.push_back(cs.chunks[static_cast<size_t>(c)]);
    const gpt2::NllSum s = part.empty() ? gpt2::NllSum{} : m.nll(part, {});
    const json& v = job.params.value("variant", json::object());
    json r = {{"variant", variant_name(v.value("type", std::string()), v.value("k", int64_t{0}))},
              {"variant_params", v},
              {"chunk_begin", a},
              {"chunk_end", std::max(a, e)},
              {"n_chunks", part.size()},
              {"n_chunks_total", n},
              {"nll_sum", s.nll},
              {"n_tokens", s.count},
              {"provenance", prov}};
    for (auto it = info.begin(); it != info.end(); ++it) r[it.key()] = it.value();
    return Outcome::success(std::move(r));
  }
};

}  // namespace

void register_executors(ExecutorRegistry& reg) {
  reg.add(std::make_unique<ModelExecutor>());
  reg.add(platform::make_reduce_executor({kKindReduce}, run_reduce, "exp6", gpt2::torch_version()));
}

}  // namespace spt::exp6
