// plan_exp6: exp6 (spec §6 A–C) as a job graph. Torch-free; linked into the
// coordinator.
//
// Parts a, b, c ("ab" by default, "all" = "abc"); b and c pull in a (the
// report's variance table, c's PCA scores). Jobs, per model:
//   a/pca                  exp6.weights: W_QK of every head, PCA, K(t), the
//                          first 20 scores (6A; weights only)
//   b/ppl/<v>/cAAA-BBB     exp6.ppl: NLL of variant v over chunks [AAA, BBB)
//                          of T (spec §2.1); v = baseline or kK (6B), the
//                          K = all check is K = n_heads_total
//   c/kmeans/k<k>          exp6.reduce (CPU): k-means++ on a/pca's scores
//   c/ppl/cluster<k>/cAAA-BBB  exp6.ppl with c/kmeans/k<k> as input
//   report                 exp6.reduce: sums the sub-units in double, the
//                          original's JSON, the results markdown, figures
// The intervention travels as data in params: {"type": "baseline"},
// {"type": "wqk_pca", "k": K} (the worker recomputes the PCA from the
// model's processed weights: deterministic, float64) or
// {"type": "wqk_cluster", "k": k} (labels/representatives from its input).
// Sub-units of one variant have equal params but for the chunk range, so
// the coordinator keys and deduplicates each (6C's baseline is 6B's).
#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

#include "exp6/common.h"
#include "platform/plan_builder.h"
#include "plans.h"

namespace spt::plan {

using nlohmann::json;

namespace {

// b and c pull in a.
std::string exp6_parts(const std::string& parts) {
  const std::string out = normalise_parts("exp6", parts, "abc", "ab");
  return out.empty() || out[0] != 'a' ? "a" + out : out;
}

// A comma list of integers in [1, hi]; "" = `def`.
std::vector<int64_t> int_list(ParamReader& p, const std::string& key, const std::vector<int64_t>& def, int64_t hi) {
  const std::string s = p.str(key, "");
  if (s.empty()) return def;
  const auto v = parse_int_list(s, 1, hi);
  if (!v)
    throw PlanError("exp6: " + key + "=" + s + ": expected a comma list of integers in [1, " + std::to_string(hi) +
                    "]");
  return *v;
}

}  // namespace

Plan plan_exp6(const Request& req) {
  const std::string parts = exp6_parts(req.parts);
  auto has = [&](char c) { return parts.find(c) != std::string::npos; };
  ParamReader p(req);
  const ModelBlock mb = read_models(p, "exp6", /*allow_many=*/false);
  DataDefaults dd;
  dd.split = "test";
  dd.max_tokens = 200000;
  const DataBlock db = read_data(p, "exp6", dd);
  const int64_t per_unit = p.integer("chunks_per_unit", 13, 1, 1000000);
  const ModelRef& m = mb.models.front();
  const int64_t n_total = static_cast<int64_t>(m.n_layer) * m.n_head;
  // ks: K values above n_total are skipped (spec), so any positive K parses.
  std::vector<int64_t> ks = int_list(p, "ks", spt::exp6::default_ks(n_total), 1000000);
  ks.erase(std::remove_if(ks.begin(), ks.end(), [&](int64_t k) { return k > n_total; }), ks.end());
  if (std::find(ks.begin(), ks.end(), n_total) == ks.end()) ks.push_back(n_total);  // the K = all check
  std::vector<int64_t> cks = int_list(p, "cluster_ks", spt::exp6::default_cluster_ks(n_total), 1000000);
  cks.erase(std::remove_if(cks.begin(), cks.end(), [&](int64_t k) { return k >= n_total; }), cks.end());
  const int64_t seed = p.integer("seed", static_cast<int64_t>(spt::exp6::kKMeansSeed), 0, INT64_MAX);
  p.finish();
  const int64_t n_chunks = t_chunk_count(db.max_tokens, db.chunk_len);
  if ((has('b') || has('c')) && n_chunks == 0)
    throw PlanError("exp6: max_tokens=" + std::to_string(db.max_tokens) + " gives no chunk of chunk_len=" +
                    std::to_string(db.chunk_len) + " (chunker T needs max_tokens > chunk_len)");
  if (m.n_ctx > 0 && db.chunk_len > m.n_ctx)
    throw PlanError("exp6: chunk_len=" + std::to_string(db.chunk_len) + " exceeds " + m.name + "'s context of " +
                    std::to_string(m.n_ctx));

  Builder b;
  b.plan.parts = parts;
  b.plan.params = {{"dataset", db.dataset},     {"dataset_sha256", db.dataset_sha256}, {"max_tokens", db.max_tokens},
                   {"chunk_len", db.chunk_len}, {"bos", db.bos},                       {"chunks_per_unit", per_unit},
                   {"ks", ks},                  {"cluster_ks", cks},                   {"seed", seed}};
  mb.add_params(b.plan.params);
  b.model = m.name;
  const json base = mb.base(m);
  const json model_data = with(base, db.data_json());
  std::vector<std::string> all;
  auto add = [&](const std::string& name, const char* kind, json params, std::vector<std::string> deps) -> JobSpec& {
    all.push_back(name);
    return b.add(name, kind, std::move(params), std::move(deps));
  };
  // An injected variant holds a second weight copy beside the host's model.
  const int64_t copy_bytes = model_footprint(m.name, m.n_layer, m.n_head, mb.precision, 0).weights;
  auto ppl_units = [&](const std::string& prefix, const json& variant, const std::vector<std::string>& deps) {
    const std::string vname = spt::exp6::variant_name(variant.at("type"), variant.value("k", int64_t{0}));
    for (const ChunkRange& r : chunk_ranges(n_chunks, per_unit)) {
      JobSpec& j = add(prefix + vname + "/" + r.name(), spt::exp6::kKindPpl,
                       with(model_data, {{"variant", variant}, {"chunk_begin", r.begin}, {"chunk_end", r.end}}), deps);
      if (variant.at("type") != "baseline") j.mem_bytes += copy_bytes;
    }
  };
  auto reduce = [&](const std::string& step, json extra) {
    return with(with(base, {{"reduce", step}, {"label", m.label}}), extra);
  };

  add("a/pca", spt::exp6::kKindWeights, base, {});
  if (has('b') || has('c')) ppl_units("b/ppl/", {{"type", "baseline"}}, {});
  for (int64_t k : has('b') ? ks : std::vector<int64_t>{}) ppl_units("b/ppl/", {{"type", "wqk_pca"}, {"k", k}}, {});
  for (int64_t k : has('c') ? cks : std::vector<int64_t>{}) {
    const std::string km = "c/kmeans/k" + std::to_string(k);
    JobSpec& j = add(km, spt::exp6::kKindReduce,
                     reduce("kmeans", {{"k", k}, {"seed", seed}, {"n_init", spt::exp6::kKMeansInits},
                                       {"n_scores", spt::exp6::kScoresForClustering}}),
                     {"a/pca"});
    j.model.clear();  // CPU only: any worker, no model memory
    j.mem_bytes = 0;
    ppl_units("c/ppl/", {{"type", "wqk_cluster"}, {"k", k}}, {km});
  }
  b.add("report", spt::exp6::kKindReduce,
        reduce("exp6", {{"parts", parts},
                        {"model_name", m.name},
                        {"ks", has('b') ? json(ks) : json::array()},
                        {"cluster_ks", has('c') ? json(cks) : json::array()},
                        {"n_chunks_planned", n_chunks},
                        {"split", db.split},
                        {"max_tokens", db.max_tokens},
                        {"chunk_len", db.chunk_len}}),
        all, /*reduce=*/true);
  return std::move(b.plan);
}

}  // namespace spt::plan
