// plan_exp10: the exp10 family (spec §10 A–D, exp10b E–H, exp10c I–L,
// exp10d V1–V5) as one job graph. Torch-free; linked into the coordinator.
//
// Parts are letters a–l and v ("abcd" by default, "all" for every one);
// each part pulls in what it reads (spec §11): c,b,d → a; e → a + head means;
// f → e; g → a, c; h → a, e; i → a, e; j → i, e; k → j; l → k;
// v → a, e, j, k. Map jobs are single PPL evaluations (kind exp10.ppl) or
// head-mean captures (exp10.means); every result the next stage needs
// travels as a dependency input, and jobs whose variant depends on upstream
// results (C's order from A's ranking, F from E, K from J, …) carry a
// symbolic variant that the executor resolves against those inputs when it
// runs (experiments/exp10/variants.h). Reduce jobs (exp10.reduce) produce
// the original's JSON files, reports and figures.
#include <algorithm>
#include <set>

#include "exp10/common.h"
#include "plans.h"

namespace spt::plan {

namespace {

using nlohmann::json;
using spt::exp10::HeadId;

const std::string kAllParts = "abcdefghijklv";

std::string normalise_parts(std::string parts) {
  if (parts.empty()) parts = "abcd";
  if (parts == "all") parts = kAllParts;
  std::set<char> want;
  for (char c : parts) {
    const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (l == ',' || l == ' ') continue;
    if (kAllParts.find(l) == std::string::npos)
      throw PlanError(std::string("exp10: unknown part '") + c + "' (parts are letters a-l and v, e.g. \"abcd\", or \"all\")");
    want.insert(l);
  }
  // Close under "needs" until nothing changes (spec §11).
  const std::vector<std::pair<char, std::string>> needs = {
      {'b', "a"}, {'c', "a"}, {'d', "a"}, {'e', "a"}, {'f', "e"}, {'g', "ac"}, {'h', "ae"},
      {'i', "ae"}, {'j', "ie"}, {'k', "j"}, {'l', "k"}, {'v', "aejk"}};
  for (bool changed = true; changed;) {
    changed = false;
    for (const auto& [p, deps] : needs)
      if (want.count(p))
        for (char d : deps) changed |= want.insert(d).second;
  }
  std::string out;
  for (char c : kAllParts)
    if (want.count(c)) out += c;
  return out;
}

struct Builder {
  Plan plan;
  std::set<std::string> names;
  std::string model;

  JobSpec& add(const std::string& name, const char* kind, json params, std::vector<std::string> deps,
               bool reduce = false) {
    JobSpec j;
    j.name = name;
    j.kind = kind;
    j.params = std::move(params);
    j.deps = std::move(deps);
    j.model = model;
    j.reduce = reduce;
    names.insert(name);
    plan.jobs.push_back(std::move(j));
    return plan.jobs.back();
  }
  bool has(const std::string& name) const { return names.count(name) > 0; }
  // The subset of `deps` that exist in this plan.
  std::vector<std::string> present(std::initializer_list<std::string> deps) const {
    std::vector<std::string> out;
    for (const auto& d : deps)
      if (has(d)) out.push_back(d);
    return out;
  }
};

json with(json base, const json& extra) {
  for (auto it = extra.begin(); it != extra.end(); ++it) base[it.key()] = it.value();
  return base;
}

json heads_json(const std::vector<HeadId>& hs) {
  json a = json::array();
  for (const auto& h : hs) a.push_back({h.layer, h.head});
  return a;
}

}  // namespace

Plan plan_exp10(const Request& req) {
  const std::string parts = normalise_parts(req.parts);
  auto has_part = [&](char c) { return parts.find(c) != std::string::npos; };

  ParamReader p(req);
  const std::string model = p.str("model", "gpt2");
  if (model.empty()) throw PlanError("exp10: param model must not be empty");
  const std::string model_sha = p.str("model_sha256", "");
  const auto* known = spt::exp10::known_model(model);
  const int64_t n_layer = p.integer("n_layer", known ? known->n_layer : 0, 0, 4096);
  const int64_t n_head = p.integer("n_head", known ? known->n_head : 0, 0, 4096);
  const std::string dataset = p.str("dataset", "wikitext-2-raw");
  const std::string dataset_sha = p.str("dataset_sha256", "");
  const std::string precision = p.str("precision", "fp32");
  const int64_t max_tokens = p.integer("max_tokens", 2048, 2, 1000000000);
  const int64_t chunk_len = p.integer("chunk_len", 1024, 2, 1000000);
  const int64_t v_max_tokens = p.integer("v_max_tokens", 999999, 2, 1000000000);
  const int64_t bos = p.integer("bos", 0, 0, 1);
  const std::string exp3ef = p.str("exp3ef", "");
  const int64_t fuse = p.integer("fuse", 1, 0, 1);
  p.finish();

  if (n_layer < 1 || n_head < 1)
    throw PlanError("exp10: model '" + model +
                    "' is not a known name (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2); give "
                    "n_layer and n_head (spt-client reads them from a local folder's config.json)");
  if (known && (n_layer != known->n_layer || n_head != known->n_head))
    throw PlanError("exp10: " + model + " has n_layer=" + std::to_string(known->n_layer) + ", n_head=" +
                    std::to_string(known->n_head) + "; the params say " + std::to_string(n_layer) + " x " +
                    std::to_string(n_head));
  if (precision != "fp32" && precision != "tf32" && precision != "bf16")
    throw PlanError("exp10: precision must be fp32, tf32 or bf16 (got '" + precision + "')");
  if (known && chunk_len > known->n_ctx)
    throw PlanError("exp10: chunk_len=" + std::to_string(chunk_len) + " exceeds " + model + "'s context of " +
                    std::to_string(known->n_ctx));
  if (n_layer < 2)
    for (char c : std::string("fghijklv"))
      if (has_part(c))
        throw PlanError(std::string("exp10: part ") + c + " works on layers 1..L-1 and needs n_layer >= 2");
  for (const auto* sha : {&model_sha, &dataset_sha})
    if (!sha->empty() && (sha->size() != 64 || sha->find_first_not_of("0123456789abcdef") != std::string::npos))
      throw PlanError("exp10: a *_sha256 param must be 64 lower-case hex digits");

  Builder b;
  b.model = model;
  b.plan.parts = parts;
  b.plan.params = {{"model", model},           {"model_sha256", model_sha}, {"n_layer", n_layer},
                   {"n_head", n_head},         {"dataset", dataset},        {"dataset_sha256", dataset_sha},
                   {"precision", precision},   {"max_tokens", max_tokens},  {"chunk_len", chunk_len},
                   {"v_max_tokens", v_max_tokens}, {"bos", bos},            {"exp3ef", exp3ef},
                   {"fuse", fuse}};

  const int L = static_cast<int>(n_layer), H = static_cast<int>(n_head);
  json base = {{"model", model}, {"precision", precision}, {"n_layer", L}, {"n_head", H}};
  if (!model_sha.empty()) base["model_sha256"] = model_sha;
  json data = {{"dataset", dataset}, {"max_tokens", max_tokens}, {"chunk_len", chunk_len}, {"bos", bos}};
  if (!dataset_sha.empty()) data["dataset_sha256"] = dataset_sha;
  const json v2k = with(with(base, data), {{"chunks", "v2k"}});
  const json vfull = with(with(base, data), {{"chunks", "vfull"}, {"max_tokens", v_max_tokens}});
  json ppl_v2k = v2k, ppl_vfull = vfull;
  if (!fuse) ppl_v2k["fuse"] = ppl_vfull["fuse"] = false;
  auto variant = [](const json& chunkset, json v) { return with(chunkset, {{"variant", std::move(v)}}); };
  auto reducer = [&](const std::string& what, json extra = json::object()) {
    return with(with(with(base, data), {{"reduce", what}, {"parts", parts}, {"v_max_tokens", v_max_tokens}}),
                extra);
  };

  const auto heads = spt::exp10::all_heads(L, H);
  const auto heads_l1 = spt::exp10::all_heads(L, H, 1);
  const int n_all = L * H, n_l1 = (L - 1) * H;
  using spt::exp10::step_list;
  using spt::exp10::Steps;

  // ---- exp10 A–D
  if (has_part('a')) {
    std::vector<std::string> deps = {"a/baseline"};
    b.add("a/baseline", spt::exp10::kKindPpl, variant(ppl_v2k, {{"type", "clean"}}), {});
    for (const auto& h : heads) {
      const std::string n = "a/head/" + spt::exp10::head_name(h);
      b.add(n, spt::exp10::kKindPpl, variant(ppl_v2k, {{"type", "heads"}, {"op", "zero"}, {"heads", heads_json({h})}}),
            {});
      deps.push_back(n);
    }
    b.add("a/reduce", spt::exp10::kKindReduce, reducer("a"), deps, true);
  }
  if (has_part('c')) {
    std::vector<std::string> deps = {"a/reduce"};
    for (int n : step_list(Steps::c, n_all)) {
      if (n == 0) continue;
      const std::string name = "c/step/" + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl,
            variant(ppl_v2k, {{"type", "cumulative"}, {"order", "zero_all"}, {"n", n}, {"op", "zero"}}),
            {"a/reduce"});
      deps.push_back(name);
    }
    b.add("c/reduce", spt::exp10::kKindReduce, reducer("c"), deps, true);
  }
  if (has_part('a') || has_part('b') || has_part('c') || has_part('d'))
    b.add("exp10/report", spt::exp10::kKindReduce, reducer("exp10", {{"exp3ef", exp3ef}}),
          b.present({"a/reduce", "c/reduce"}), true);

  // ---- exp10b E–H
  const bool need_means = has_part('e') || has_part('f') || has_part('h');
  if (need_means) b.add("means/v2k", spt::exp10::kKindMeans, v2k, {});
  if (has_part('e')) {
    std::vector<std::string> deps = {"a/reduce"};
    for (const auto& h : heads) {
      const std::string n = "e/head/" + spt::exp10::head_name(h);
      b.add(n, spt::exp10::kKindPpl,
            variant(with(ppl_v2k, {{"means", "means/v2k"}}),
                    {{"type", "heads"}, {"op", "mean"}, {"heads", heads_json({h})}}),
            {"means/v2k"});
      deps.push_back(n);
    }
    b.add("e/reduce", spt::exp10::kKindReduce, reducer("e"), deps, true);
  }
  if (has_part('f')) {
    std::vector<std::string> deps = {"e/reduce"};
    for (int n : step_list(Steps::fine, n_l1)) {
      if (n == 0) continue;
      const std::string name = "f/step/" + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl,
            variant(with(ppl_v2k, {{"means", "means/v2k"}}),
                    {{"type", "cumulative"}, {"order", "mean_l0prot"}, {"n", n}, {"op", "mean"}}),
            {"e/reduce", "means/v2k"});
      deps.push_back(name);
    }
    b.add("f/reduce", spt::exp10::kKindReduce, reducer("f"), deps, true);
  }
  if (has_part('g')) {
    std::vector<std::string> deps = {"a/reduce"};
    for (int n : step_list(Steps::fine, n_l1)) {
      if (n == 0) continue;
      const std::string name = "g/step/" + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl,
            variant(ppl_v2k, {{"type", "cumulative"}, {"order", "zero_l0prot"}, {"n", n}, {"op", "zero"}}),
            {"a/reduce"});
      deps.push_back(name);
    }
    b.add("g/reduce", spt::exp10::kKindReduce, reducer("g"), deps, true);
  }
  if (has_part('h')) {
    const json ppl_m = with(ppl_v2k, {{"means", "means/v2k"}});
    std::vector<std::string> deps = {"a/reduce", "e/reduce"};
    b.add("h/joint_zero", spt::exp10::kKindPpl, variant(ppl_v2k, {{"type", "harmful_joint"}, {"op", "zero"}}),
          {"a/reduce"});
    b.add("h/joint_mean", spt::exp10::kKindPpl, variant(ppl_m, {{"type", "harmful_joint"}, {"op", "mean"}}),
          {"a/reduce", "means/v2k"});
    deps.push_back("h/joint_zero");
    deps.push_back("h/joint_mean");
    // The number of heads left after the harmful ones is known only at run
    // time: plan every step below the layer-1+ total plus "all"; steps past
    // the real total report themselves as skipped.
    for (int n : step_list(Steps::fine, n_l1)) {
      if (n == 0 || n == n_l1) continue;
      const std::string name = "h/step/" + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl, variant(ppl_m, {{"type", "harmful_first"}, {"n", n}}),
            {"a/reduce", "e/reduce", "means/v2k"});
      deps.push_back(name);
    }
    b.add("h/step/all", spt::exp10::kKindPpl, variant(ppl_m, {{"type", "harmful_first"}, {"n", -1}}),
          {"a/reduce", "e/reduce", "means/v2k"});
    deps.push_back("h/step/all");
    b.add("h/reduce", spt::exp10::kKindReduce, reducer("h"), deps, true);
  }
  if (has_part('e') || has_part('f') || has_part('g') || has_part('h'))
    b.add("exp10b/report", spt::exp10::kKindReduce, reducer("exp10b"),
          b.present({"a/reduce", "c/reduce", "e/reduce", "f/reduce", "g/reduce", "h/reduce"}), true);

  // ---- exp10c I–L
  if (has_part('i')) {
    std::vector<std::string> deps = {"a/reduce", "e/reduce"};
    for (const auto& h : heads_l1)
      for (const auto& m : spt::exp10::linear_methods()) {
        const std::string n = "i/head/" + spt::exp10::head_name(h) + "/" + m;
        b.add(n, spt::exp10::kKindPpl, variant(ppl_v2k, {{"type", "heads"}, {"op", m}, {"heads", heads_json({h})}}),
              {});
        deps.push_back(n);
      }
    b.add("i/reduce", spt::exp10::kKindReduce, reducer("i"), deps, true);
  }
  if (has_part('j')) b.add("j/reduce", spt::exp10::kKindReduce, reducer("j"), {"i/reduce", "e/reduce"}, true);
  if (has_part('k')) {
    std::vector<std::string> deps = {"a/reduce", "j/reduce"};
    for (const char* which : {"best", "mixed"})
      for (int n : step_list(Steps::fine, n_l1)) {
        if (n == 0) continue;
        const std::string name = std::string("k/") + which + "/" + std::to_string(n);
        b.add(name, spt::exp10::kKindPpl,
              variant(ppl_v2k, {{"type", "cumulative"},
                                {"order", std::string("j_") + which},
                                {"n", n},
                                {"op", which}}),
              {"j/reduce"});
        deps.push_back(name);
      }
    b.add("k/reduce", spt::exp10::kKindReduce, reducer("k"), deps, true);
  }
  if (has_part('l')) b.add("l/reduce", spt::exp10::kKindReduce, reducer("l"), {"k/reduce", "a/reduce"}, true);
  if (has_part('i') || has_part('j') || has_part('k') || has_part('l'))
    b.add("exp10c/report", spt::exp10::kKindReduce, reducer("exp10c"),
          b.present({"a/reduce", "e/reduce", "f/reduce", "i/reduce", "j/reduce", "k/reduce", "l/reduce"}), true);

  // ---- exp10d V1–V5 (full validation split)
  if (has_part('v')) {
    const json ppl_m = with(ppl_vfull, {{"means", "means/vfull"}});
    std::vector<std::string> deps = {"a/reduce", "e/reduce", "j/reduce", "k/reduce", "v/baseline"};
    b.add("means/vfull", spt::exp10::kKindMeans, vfull, {});
    b.add("v/baseline", spt::exp10::kKindPpl, variant(ppl_vfull, {{"type", "clean"}}), {});
    for (int r = 1; r <= std::min(10, n_all); ++r) {
      const std::string name = "v/top/" + std::to_string(r);
      b.add(name, spt::exp10::kKindPpl, variant(ppl_vfull, {{"type", "top_zero"}, {"rank", r}}), {"a/reduce"});
      deps.push_back(name);
    }
    // V3: the top head's zero-ablation is v/top/1; its mean-ablation:
    b.add("v/top1_mean", spt::exp10::kKindPpl, variant(ppl_m, {{"type", "top_mean"}}), {"a/reduce", "means/vfull"});
    deps.push_back("v/top1_mean");
    for (int n : step_list(Steps::v4, n_l1)) {
      if (n == 0) continue;
      const std::string name = "v/step/" + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl,
            variant(ppl_vfull, {{"type", "cumulative"}, {"order", "j_best"}, {"n", n}, {"op", "relu"}}),
            {"j/reduce"});
      deps.push_back(name);
    }
    b.add("v/reduce", spt::exp10::kKindReduce, reducer("v"), deps, true);
  }
  return std::move(b.plan);
}

}  // namespace spt::plan
