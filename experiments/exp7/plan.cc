// The exp7 plan (contract in exp7/plan.h).
#include "exp7/plan.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>
#include <sstream>

#include "exp7/common.h"
#include "plans.h"
#include "platform/plan_builder.h"

namespace spt::plan {

using nlohmann::json;

namespace {

constexpr const char* kParts = "abcde";

std::string exp7_parts(const std::string& parts) {
  const std::string given = normalise_parts("exp7", parts, kParts, kParts);
  std::set<char> want(given.begin(), given.end());
  if (want.count('d')) want.insert({'b', 'c'});
  if (want.count('b') || want.count('c')) want.insert('a');
  std::string out;
  for (char c : std::string(kParts))
    if (want.count(c)) out += c;
  return out;
}

std::vector<int64_t> int_list(ParamReader& p, const std::string& key, const std::string& def) {
  const std::string s = p.str(key, def);
  if (s.empty()) throw PlanError("exp7: " + key + " is empty");
  const auto v = parse_int_list(s, 1, 100000);
  if (!v) throw PlanError("exp7: " + key + "=" + s + ": expected a comma list of integers in [1, 100000]");
  return *v;
}

}  // namespace

Plan plan_exp7(const Request& req) {
  const std::string parts = exp7_parts(req.parts);
  auto has = [&](char c) { return parts.find(c) != std::string::npos; };
  ParamReader p(req);
  const ModelBlock mb = read_models(p, "exp7", /*allow_many=*/true);
  DataDefaults dd;
  dd.split = "test";
  dd.max_tokens = 200000;
  const DataBlock db = read_data(p, "exp7", dd);
  const int64_t max_samples = p.integer("max_samples", 1000, 1, 100000);
  const int64_t per_unit = p.integer("chunks_per_unit", 13, 1, 1000000);
  const std::vector<int64_t> ks = int_list(p, "ks", "8,16,32,64,128,256,512,768");
  const std::vector<int64_t> recon_ks = int_list(p, "recon_ks", "8,16,32,64,128,256");
  p.finish();
  const int64_t n_chunks = t_chunk_count(db.max_tokens, db.chunk_len);
  if (has('d') && n_chunks == 0)
    throw PlanError("exp7: max_tokens=" + std::to_string(db.max_tokens) + " gives no chunk of chunk_len=" +
                    std::to_string(db.chunk_len) + " (chunker T needs max_tokens > chunk_len)");

  Builder b;
  b.plan.parts = parts;
  b.plan.params = {{"dataset", db.dataset},
                   {"dataset_sha256", db.dataset_sha256},
                   {"max_tokens", db.max_tokens},
                   {"chunk_len", db.chunk_len},
                   {"bos", db.bos},
                   {"max_samples", max_samples},
                   {"chunks_per_unit", per_unit},
                   {"ks", ks},
                   {"recon_ks", recon_ks}};
  mb.add_params(b.plan.params);
  for (const auto& m : mb.models) {
    if (m.n_ctx > 0 && db.chunk_len > m.n_ctx)
      throw PlanError("exp7: chunk_len=" + std::to_string(db.chunk_len) + " exceeds " + m.name + "'s context of " +
                      std::to_string(m.n_ctx));
    b.model = m.name;
    const std::string pre = mb.prefix(m);
    const json base = mb.base(m);
    const json model_data = with(base, db.data_json());
    auto reduce = [&](const std::string& step, json extra) {
      return with(with(base, {{"reduce", step}, {"label", m.label}}), extra);
    };
    std::vector<std::string> all;
    auto add = [&](const std::string& name, const char* kind, json params, std::vector<std::string> deps) {
      JobSpec& j = b.add(pre + name, kind, std::move(params), std::move(deps));
      // CPU PCA units carry the model params (scope, labels) but load no model.
      if (j.kind == exp7::kKindReduce) j.mem_bytes = 0;
      all.push_back(pre + name);
    };
    std::vector<std::string> block_pcas;
    if (has('a'))
      add("a/capture", exp7::kKindCapture,
          with(model_data, {{"max_samples", max_samples}, {"points", exp7::kPointsDphi}, {"label", m.label}}), {});
    for (int l = 0; has('b') && l < m.n_layer; ++l) {
      add("b/pca/" + std::to_string(l), exp7::kKindReduce,
          reduce("pca", {{"source", "a/capture"}, {"index", l}, {"block", l}, {"what", "dphi"}, {"basis", true}}),
          {pre + "a/capture"});
      block_pcas.push_back(all.back());
    }
    if (has('c'))
      add("c/shared", exp7::kKindReduce, reduce("shared", {{"source", "a/capture"}, {"recon_ks", recon_ks}}),
          {pre + "a/capture"});
    if (has('d')) {
      auto ppl_units = [&](const std::string& variant, int64_t k, const std::vector<std::string>& deps) {
        const std::string vname = variant == "baseline" ? variant : variant + "/" + std::to_string(k);
        for (const ChunkRange& r : chunk_ranges(n_chunks, per_unit))
          add("d/ppl/" + vname + "/" + r.name(), exp7::kKindPpl,
              with(model_data, {{"variant", variant}, {"k", k}, {"chunk_begin", r.begin}, {"chunk_end", r.end}}),
              deps);
      };
      ppl_units("baseline", 0, {});
      for (int64_t k : ks) ppl_units("individual", k, block_pcas);
      for (int64_t k : ks) ppl_units("shared", k, {pre + "c/shared"});
    }
    if (has('e')) {
      add("e/capture", exp7::kKindCapture,
          with(model_data, {{"max_samples", max_samples}, {"points", exp7::kPointsAttnMlp}, {"label", m.label}}), {});
      // The capture holds [attn, mlp] × blocks: slab index = part·L + block.
      for (int part = 0; part < 2; ++part)
        for (int l = 0; l < m.n_layer; ++l) {
          const std::string what = part == 0 ? "attn" : "mlp";
          add("e/pca/" + what + "/" + std::to_string(l), exp7::kKindReduce,
              reduce("pca", {{"source", "e/capture"},
                             {"index", part * m.n_layer + l},
                             {"block", l},
                             {"what", what},
                             {"basis", false}}),
              {pre + "e/capture"});
        }
    }
    b.add(pre + "report", exp7::kKindReduce,
          reduce("exp7", {{"parts", parts},
                          {"model_name", m.name},
                          {"max_samples", max_samples},
                          {"ks", ks},
                          {"recon_ks", recon_ks},
                          {"n_chunks_planned", n_chunks}}),
          all, /*reduce=*/true);
  }
  return std::move(b.plan);
}

}  // namespace spt::plan
