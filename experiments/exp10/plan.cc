// plan_exp10: the exp10 family (spec §10 A–D, exp10b E–H, exp10c I–L,
// exp10d V1–V5) as one job graph. Torch-free; linked into the coordinator.
//
// Parts are letters a–l, v and p ("abcd" by default, "all" for every one);
// each part pulls in what it reads (spec §11): c,b,d → a; e → a + head means;
// f → e; g → a, c; h → a, e; i → a, e; j → i, e; k → j; l → k;
// v → a, e, j, k; p → j, k (Phase 3: exp10.gen units for P1–P3, P1's
// planned exclusive, exp10.ppl units for P4). Map jobs are single PPL evaluations (kind exp10.ppl) or
// head-mean captures (exp10.means); every result the next stage needs
// travels as a dependency input, and jobs whose variant depends on upstream
// results (C's order from A's ranking, F from E, K from J, …) carry a
// symbolic variant that the executor resolves against those inputs when it
// runs (experiments/exp10/variants.h). Reduce jobs (exp10.reduce) produce
// the original's JSON files, reports and figures.
//
// Several models (--model a,b; platform/plan_builder.h) give one such graph
// per model, its job names and deps under "<label>/" and its params scoped
// to it; a single model's graph has plain names, exactly as always.
//
// 10D's correlation with g(l/L) reads exp3ef through the graph (spec §11:
// exp3 → exp3ef → exp10 D): with exp3ef=graph (default) each model's
// exp10/report depends on the σ family's exp3ef/<label>, whose sub-graph
// (sigma/plan.h) has the same names and params as in an exp3ef submission,
// so the coordinator answers it from stored results when it has run before.
// σ job names carry the model label and are never scoped.
#include <algorithm>
#include <functional>
#include <set>

#include "exp10/common.h"
#include "platform/plan_builder.h"
#include "plans.h"
#include "sigma/plan.h"

namespace spt::plan {

namespace {

using nlohmann::json;
using spt::exp10::HeadId;

const std::string kAllParts = "abcdefghijklvp";

std::string normalise_parts(std::string parts) {
  if (parts.empty()) parts = "abcd";
  if (parts == "all") parts = kAllParts;
  std::set<char> want;
  for (char c : parts) {
    const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (l == ',' || l == ' ') continue;
    if (kAllParts.find(l) == std::string::npos)
      throw PlanError(std::string("exp10: unknown part '") + c +
                      "' (parts are letters a-l, v and p, e.g. \"abcd\", or \"all\")");
    want.insert(l);
  }
  // Close under "needs" until nothing changes (spec §11).
  const std::vector<std::pair<char, std::string>> needs = {
      {'b', "a"}, {'c', "a"}, {'d', "a"}, {'e', "a"}, {'f', "e"}, {'g', "ac"}, {'h', "ae"},
      {'i', "ae"}, {'j', "ie"}, {'k', "j"}, {'l', "k"}, {'v', "aejk"}, {'p', "jk"}};
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

json heads_json(const std::vector<HeadId>& hs) {
  json a = json::array();
  for (const auto& h : hs) a.push_back({h.layer, h.head});
  return a;
}

// Phase 3 (part p) lengths and counts (spec §10.4 defaults).
struct PParams {
  int64_t p1_prompt_len = 64, p1_new_tokens = 128, p1_runs = 10;
  int64_t prompt_len = 128, new_tokens = 64, iterations = 3, prompts = 20;
  int64_t candidates = 5, p3_seed = 0, p4_max_tokens = 50000;
  double temperature = 0.8;
  std::vector<int64_t> p4_lens = {128, 256, 512, 1024};

  json as_params() const {
    return {{"p1_prompt_len", p1_prompt_len}, {"p1_new_tokens", p1_new_tokens}, {"p1_runs", p1_runs},
            {"p_prompt_len", prompt_len},     {"p_new_tokens", new_tokens},     {"p_iterations", iterations},
            {"p_prompts", prompts},           {"p3_candidates", candidates},   {"p3_temperature", temperature},
            {"p3_seed", p3_seed},             {"p4_max_tokens", p4_max_tokens}, {"p4_chunk_lens", p4_lens}};
  }
};

std::vector<int64_t> parse_lens(const std::string& s) {
  const auto v = parse_int_list(s, 2, 1000000);
  if (!v) throw PlanError("exp10: p4_chunk_lens=" + s + ": a comma list of chunk lengths in [2, 1000000]");
  return *v;
}

// One model's exp10 graph; every job name and dep is prefixed with `P`
// ("" for a single-model plan, "<label>/" otherwise).
// `add_g_source` adds the σ sub-graph exp10/report reads g(l/L) from and
// returns its job name ("" = none); called only when the report is planned.
void add_model_jobs(Builder& b, const std::string& parts, const std::string& P, const json& base, const json& data,
                    int L, int H, int64_t v_max_tokens, const std::string& exp3ef,
                    const std::function<std::string()>& add_g_source, bool fuse, const PParams& pp, int n_ctx) {
  auto has_part = [&](char c) { return parts.find(c) != std::string::npos; };
  auto N = [&](const std::string& name) { return P + name; };
  const json v2k = with(with(base, data), {{"chunks", "v2k"}});
  const json vfull = with(with(base, data), {{"chunks", "vfull"}, {"max_tokens", v_max_tokens}});
  json ppl_v2k = v2k, ppl_vfull = vfull;
  if (!fuse) ppl_v2k["fuse"] = ppl_vfull["fuse"] = false;
  auto variant = [](const json& chunkset, json v) { return with(chunkset, {{"variant", std::move(v)}}); };
  auto reducer = [&](const std::string& what, json extra = json::object()) {
    return with(with(with(base, data), {{"reduce", what}, {"parts", parts}, {"v_max_tokens", v_max_tokens}}),
                extra);
  };

  // Every part set includes part a, one job per head: refuse an oversized
  // model before its head lists are built (the job budget, plans.h).
  plan_room(int64_t{L} * H);
  const auto heads = spt::exp10::all_heads(L, H);
  const auto heads_l1 = spt::exp10::all_heads(L, H, 1);
  const int n_all = L * H, n_l1 = (L - 1) * H;
  using spt::exp10::step_list;
  using spt::exp10::Steps;

  // ---- exp10 A–D
  if (has_part('a')) {
    std::vector<std::string> deps = {N("a/baseline")};
    b.add(N("a/baseline"), spt::exp10::kKindPpl, variant(ppl_v2k, {{"type", "clean"}}), {});
    for (const auto& h : heads) {
      const std::string n = N("a/head/") + spt::exp10::head_name(h);
      b.add(n, spt::exp10::kKindPpl, variant(ppl_v2k, {{"type", "heads"}, {"op", "zero"}, {"heads", heads_json({h})}}),
            {});
      deps.push_back(n);
    }
    b.add(N("a/reduce"), spt::exp10::kKindReduce, reducer("a"), deps, true);
  }
  if (has_part('c')) {
    std::vector<std::string> deps = {N("a/reduce")};
    for (int n : step_list(Steps::c, n_all)) {
      if (n == 0) continue;
      const std::string name = N("c/step/") + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl,
            variant(ppl_v2k, {{"type", "cumulative"}, {"order", "zero_all"}, {"n", n}, {"op", "zero"}}),
            {N("a/reduce")});
      deps.push_back(name);
    }
    b.add(N("c/reduce"), spt::exp10::kKindReduce, reducer("c"), deps, true);
  }
  if (has_part('a') || has_part('b') || has_part('c') || has_part('d')) {
    std::vector<std::string> deps = b.present({N("a/reduce"), N("c/reduce")});
    // The σ units go right before the report that reads them (A's and C's
    // jobs keep their places; the σ units have no deps, so they are ready
    // from the start anyway).
    const std::string g_source = add_g_source();
    if (!g_source.empty()) deps.push_back(g_source);
    b.add(N("exp10/report"), spt::exp10::kKindReduce, reducer("exp10", {{"exp3ef", exp3ef}}), deps, true);
  }

  // ---- exp10b E–H
  const bool need_means = has_part('e') || has_part('f') || has_part('h');
  if (need_means) b.add(N("means/v2k"), spt::exp10::kKindMeans, v2k, {});
  if (has_part('e')) {
    std::vector<std::string> deps = {N("a/reduce")};
    for (const auto& h : heads) {
      const std::string n = N("e/head/") + spt::exp10::head_name(h);
      b.add(n, spt::exp10::kKindPpl,
            variant(with(ppl_v2k, {{"means", "means/v2k"}}),
                    {{"type", "heads"}, {"op", "mean"}, {"heads", heads_json({h})}}),
            {N("means/v2k")});
      deps.push_back(n);
    }
    b.add(N("e/reduce"), spt::exp10::kKindReduce, reducer("e"), deps, true);
  }
  if (has_part('f')) {
    std::vector<std::string> deps = {N("e/reduce")};
    for (int n : step_list(Steps::fine, n_l1)) {
      if (n == 0) continue;
      const std::string name = N("f/step/") + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl,
            variant(with(ppl_v2k, {{"means", "means/v2k"}}),
                    {{"type", "cumulative"}, {"order", "mean_l0prot"}, {"n", n}, {"op", "mean"}}),
            {N("e/reduce"), N("means/v2k")});
      deps.push_back(name);
    }
    b.add(N("f/reduce"), spt::exp10::kKindReduce, reducer("f"), deps, true);
  }
  if (has_part('g')) {
    std::vector<std::string> deps = {N("a/reduce")};
    for (int n : step_list(Steps::fine, n_l1)) {
      if (n == 0) continue;
      const std::string name = N("g/step/") + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl,
            variant(ppl_v2k, {{"type", "cumulative"}, {"order", "zero_l0prot"}, {"n", n}, {"op", "zero"}}),
            {N("a/reduce")});
      deps.push_back(name);
    }
    b.add(N("g/reduce"), spt::exp10::kKindReduce, reducer("g"), deps, true);
  }
  if (has_part('h')) {
    const json ppl_m = with(ppl_v2k, {{"means", "means/v2k"}});
    std::vector<std::string> deps = {N("a/reduce"), N("e/reduce")};
    b.add(N("h/joint_zero"), spt::exp10::kKindPpl, variant(ppl_v2k, {{"type", "harmful_joint"}, {"op", "zero"}}),
          {N("a/reduce")});
    b.add(N("h/joint_mean"), spt::exp10::kKindPpl, variant(ppl_m, {{"type", "harmful_joint"}, {"op", "mean"}}),
          {N("a/reduce"), N("means/v2k")});
    deps.push_back(N("h/joint_zero"));
    deps.push_back(N("h/joint_mean"));
    // The number of heads left after the harmful ones is known only at run
    // time: plan every step below the layer-1+ total plus "all"; steps past
    // the real total report themselves as skipped.
    for (int n : step_list(Steps::fine, n_l1)) {
      if (n == 0 || n == n_l1) continue;
      const std::string name = N("h/step/") + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl, variant(ppl_m, {{"type", "harmful_first"}, {"n", n}}),
            {N("a/reduce"), N("e/reduce"), N("means/v2k")});
      deps.push_back(name);
    }
    b.add(N("h/step/all"), spt::exp10::kKindPpl, variant(ppl_m, {{"type", "harmful_first"}, {"n", -1}}),
          {N("a/reduce"), N("e/reduce"), N("means/v2k")});
    deps.push_back(N("h/step/all"));
    b.add(N("h/reduce"), spt::exp10::kKindReduce, reducer("h"), deps, true);
  }
  if (has_part('e') || has_part('f') || has_part('g') || has_part('h'))
    b.add(N("exp10b/report"), spt::exp10::kKindReduce, reducer("exp10b"),
          b.present({N("a/reduce"), N("c/reduce"), N("e/reduce"), N("f/reduce"), N("g/reduce"), N("h/reduce")}),
          true);

  // ---- exp10c I–L
  if (has_part('i')) {
    std::vector<std::string> deps = {N("a/reduce"), N("e/reduce")};
    for (const auto& h : heads_l1)
      for (const auto& m : spt::exp10::linear_methods()) {
        const std::string n = N("i/head/") + spt::exp10::head_name(h) + "/" + m;
        b.add(n, spt::exp10::kKindPpl, variant(ppl_v2k, {{"type", "heads"}, {"op", m}, {"heads", heads_json({h})}}),
              {});
        deps.push_back(n);
      }
    b.add(N("i/reduce"), spt::exp10::kKindReduce, reducer("i"), deps, true);
  }
  if (has_part('j'))
    b.add(N("j/reduce"), spt::exp10::kKindReduce, reducer("j"), {N("i/reduce"), N("e/reduce")}, true);
  if (has_part('k')) {
    std::vector<std::string> deps = {N("a/reduce"), N("j/reduce")};
    for (const char* which : {"best", "mixed"})
      for (int n : step_list(Steps::fine, n_l1)) {
        if (n == 0) continue;
        const std::string name = N("k/") + which + "/" + std::to_string(n);
        b.add(name, spt::exp10::kKindPpl,
              variant(ppl_v2k, {{"type", "cumulative"},
                                {"order", std::string("j_") + which},
                                {"n", n},
                                {"op", which}}),
              {N("j/reduce")});
        deps.push_back(name);
      }
    b.add(N("k/reduce"), spt::exp10::kKindReduce, reducer("k"), deps, true);
  }
  if (has_part('l'))
    b.add(N("l/reduce"), spt::exp10::kKindReduce, reducer("l"), {N("k/reduce"), N("a/reduce")}, true);
  if (has_part('i') || has_part('j') || has_part('k') || has_part('l'))
    b.add(N("exp10c/report"), spt::exp10::kKindReduce, reducer("exp10c"),
          b.present({N("a/reduce"), N("e/reduce"), N("f/reduce"), N("i/reduce"), N("j/reduce"), N("k/reduce"),
                     N("l/reduce")}),
          true);

  // ---- exp10d V1–V5 (full validation split)
  if (has_part('v')) {
    const json ppl_m = with(ppl_vfull, {{"means", "means/vfull"}});
    std::vector<std::string> deps = {N("a/reduce"), N("e/reduce"), N("j/reduce"), N("k/reduce"), N("v/baseline")};
    b.add(N("means/vfull"), spt::exp10::kKindMeans, vfull, {});
    b.add(N("v/baseline"), spt::exp10::kKindPpl, variant(ppl_vfull, {{"type", "clean"}}), {});
    for (int r = 1; r <= std::min(10, n_all); ++r) {
      const std::string name = N("v/top/") + std::to_string(r);
      b.add(name, spt::exp10::kKindPpl, variant(ppl_vfull, {{"type", "top_zero"}, {"rank", r}}), {N("a/reduce")});
      deps.push_back(name);
    }
    // V3: the top head's zero-ablation is v/top/1; its mean-ablation:
    b.add(N("v/top1_mean"), spt::exp10::kKindPpl, variant(ppl_m, {{"type", "top_mean"}}),
          {N("a/reduce"), N("means/vfull")});
    deps.push_back(N("v/top1_mean"));
    for (int n : step_list(Steps::v4, n_l1)) {
      if (n == 0) continue;
      const std::string name = N("v/step/") + std::to_string(n);
      b.add(name, spt::exp10::kKindPpl,
            variant(ppl_vfull, {{"type", "cumulative"}, {"order", "j_best"}, {"n", n}, {"op", "relu"}}),
            {N("j/reduce")});
      deps.push_back(name);
    }
    b.add(N("v/reduce"), spt::exp10::kKindReduce, reducer("v"), deps, true);
  }

  // ---- exp10d P1–P4 (Phase 3, spec §10.4)
  if (has_part('p')) {
    // Conditions: clean, and the first 30 / 70 heads of J's best_ranking
    // (layers 1+) with relu, clipped to the heads the model has (A24).
    struct Cond {
      std::string name;
      int nominal, n;
      json variant;
      std::vector<std::string> deps;
    };
    std::vector<Cond> conds;
    for (const auto& c : spt::exp10::p_conditions()) {
      Cond k{c.name, c.n_linear, std::min(c.n_linear, n_l1), {{"type", "clean"}}, {}};
      if (c.n_linear > 0) {
        k.variant = {{"type", "cumulative"}, {"order", "j_best"}, {"n", k.n}, {"op", "relu"}};
        k.deps = {N("j/reduce")};
      }
      conds.push_back(std::move(k));
    }
    auto cond_params = [&](const json& from, const Cond& c) {
      return with(from, {{"variant", c.variant},
                         {"condition", c.name},
                         {"n_linear", c.n},
                         {"n_linear_nominal", c.nominal},
                         {"n_ctx_needed", 0}});
    };
    std::vector<std::string> deps = {N("j/reduce"), N("k/reduce")};
    // P1: timing, alone on a warmed device.
    for (const auto& c : conds) {
      const std::string name = N("p/speed/") + c.name;
      json prm = cond_params(vfull, c);
      prm.update({{"task", "speed"},
                  {"prompt_index", 0},
                  {"prompt_len", pp.p1_prompt_len},
                  {"new_tokens", pp.p1_new_tokens},
                  {"runs", pp.p1_runs},
                  {"warmup_runs", 1},
                  {"n_ctx_needed", pp.p1_prompt_len + pp.p1_new_tokens}});
      b.add(name, spt::exp10::kKindGen, prm, c.deps).exclusive = true;
      deps.push_back(name);
    }
    // P2: self-refinement, one unit per (condition, prompt).
    for (const auto& c : conds)
      for (int64_t i = 0; i < pp.prompts; ++i) {
        const std::string name = N("p/refine/") + c.name + "/" + std::to_string(i);
        json prm = cond_params(vfull, c);
        prm.update({{"task", "refine"},
                    {"prompt_index", i},
                    {"prompt_len", pp.prompt_len},
                    {"new_tokens", pp.new_tokens},
                    {"iterations", pp.iterations},
                    {"n_ctx_needed", pp.prompt_len + pp.iterations * pp.new_tokens}});
        b.add(name, spt::exp10::kKindGen, prm, c.deps);
        deps.push_back(name);
      }
    // P3: best-of-N, one unit per (condition, prompt); every candidate's
    // seed is planned (and so recorded) here (A10).
    for (const auto& c : conds)
      for (int64_t i = 0; i < pp.prompts; ++i) {
        const std::string name = N("p/best/") + c.name + "/" + std::to_string(i);
        json seeds = json::array();
        for (int64_t k = 0; k < pp.candidates; ++k)
          seeds.push_back(spt::exp10::p3_seed(static_cast<uint64_t>(pp.p3_seed), c.name, static_cast<int>(i),
                                              static_cast<int>(k)));
        json prm = cond_params(vfull, c);
        prm.update({{"task", "best_of_n"},
                    {"prompt_index", i},
                    {"prompt_len", pp.prompt_len},
                    {"new_tokens", pp.new_tokens},
                    {"candidates", pp.candidates},
                    {"temperature", pp.temperature},
                    {"seeds", seeds},
                    {"n_ctx_needed", pp.prompt_len + pp.new_tokens}});
        b.add(name, spt::exp10::kKindGen, prm, c.deps);
        deps.push_back(name);
      }
    // P4: PPL over chunker V at each chunk length (n > n_ctx skipped).
    for (int64_t n : pp.p4_lens) {
      if (n_ctx > 0 && n > n_ctx) continue;
      const json cs = with(with(base, data), {{"chunks", "p4_n" + std::to_string(n)},
                                              {"max_tokens", pp.p4_max_tokens},
                                              {"chunk_len", n}});
      for (const auto& c : conds) {
        const std::string name = N("p/ppl/") + std::to_string(n) + "/" + c.name;
        json prm = with(fuse ? cs : with(cs, {{"fuse", false}}), {{"variant", c.variant}, {"condition", c.name}});
        b.add(name, spt::exp10::kKindPpl, prm, c.deps);
        deps.push_back(name);
      }
    }
    b.add(N("p/reduce"), spt::exp10::kKindReduce, reducer("p", pp.as_params()), deps, true);
  }
}

}  // namespace

Plan plan_exp10(const Request& req) {
  const std::string parts = normalise_parts(req.parts);
  auto has_part = [&](char c) { return parts.find(c) != std::string::npos; };

  ParamReader p(req);
  const ModelBlock mb = read_models(p, "exp10", /*allow_many=*/true);
  const DataBlock db = read_data(p, "exp10");
  const int64_t v_max_tokens = p.integer("v_max_tokens", 999999, 2, 1000000000);
  const std::string exp3ef = p.str("exp3ef", "graph");
  const int64_t fuse = p.integer("fuse", 1, 0, 1);
  PParams pp;
  pp.p1_prompt_len = p.integer("p1_prompt_len", pp.p1_prompt_len, 1, 1000000);
  pp.p1_new_tokens = p.integer("p1_new_tokens", pp.p1_new_tokens, 1, 1000000);
  pp.p1_runs = p.integer("p1_runs", pp.p1_runs, 1, 10000);
  pp.prompt_len = p.integer("p_prompt_len", pp.prompt_len, 1, 1000000);
  pp.new_tokens = p.integer("p_new_tokens", pp.new_tokens, 1, 1000000);
  pp.iterations = p.integer("p_iterations", pp.iterations, 1, 100);
  pp.prompts = p.integer("p_prompts", pp.prompts, 1, 100000);
  pp.candidates = p.integer("p3_candidates", pp.candidates, 1, 1000);
  pp.temperature = p.real("p3_temperature", pp.temperature, 1e-6, 100.0);
  pp.p3_seed = p.integer("p3_seed", pp.p3_seed, 0, (int64_t{1} << 53) - 1);
  pp.p4_max_tokens = p.integer("p4_max_tokens", pp.p4_max_tokens, 2, 1000000000);
  pp.p4_lens = parse_lens(p.str("p4_chunk_lens", "128,256,512,1024"));
  p.finish();
  if (exp3ef != "graph" && exp3ef != "none")
    throw PlanError("exp10: exp3ef=" + exp3ef +
                    ": takes \"graph\" (default) or \"none\"; 10D's correlation with g(l/L) now comes from the "
                    "job graph: the plan includes exp3 + exp3ef for the same model, reused from stored results "
                    "when already computed (no file is passed any more)");

  for (const auto& m : mb.models) {
    if (m.n_ctx > 0 && db.chunk_len > m.n_ctx)
      throw PlanError("exp10: chunk_len=" + std::to_string(db.chunk_len) + " exceeds " + m.name +
                      "'s context of " + std::to_string(m.n_ctx));
    if (has_part('p')) {
      // Lengths against the context (known models; otherwise the executor
      // checks at run time) and against the prompt source, VFULL's chunks.
      auto check = [&](const std::string& what, int64_t need) {
        if (m.n_ctx > 0 && need > m.n_ctx)
          throw PlanError("exp10: part p: " + what + " = " + std::to_string(need) + " exceeds " + m.name +
                          "'s context of " + std::to_string(m.n_ctx) + "; lower those params");
      };
      check("p1_prompt_len + p1_new_tokens", pp.p1_prompt_len + pp.p1_new_tokens);
      check("p_prompt_len + p_iterations * p_new_tokens", pp.prompt_len + pp.iterations * pp.new_tokens);
      for (const auto& [what, len] : {std::pair<const char*, int64_t>{"p1_prompt_len", pp.p1_prompt_len},
                                      {"p_prompt_len", pp.prompt_len}})
        if (len > db.chunk_len)
          throw PlanError(std::string("exp10: part p: ") + what + "=" + std::to_string(len) +
                          " exceeds chunk_len=" + std::to_string(db.chunk_len) +
                          " (prompts are the first tokens of VFULL chunks)");
      bool any_p4 = false;
      for (int64_t n : pp.p4_lens) any_p4 |= m.n_ctx <= 0 || n <= m.n_ctx;
      if (!any_p4) throw PlanError("exp10: part p: every p4_chunk_lens value exceeds " + m.name + "'s context");
    }
    if (m.n_layer < 2)
      for (char c : std::string("fghijklvp"))
        if (has_part(c))
          throw PlanError(std::string("exp10: part ") + c + " works on layers 1..L-1 and needs n_layer >= 2");
  }

  Builder b;
  b.plan.parts = parts;
  b.plan.params = {{"dataset", db.dataset},       {"dataset_sha256", db.dataset_sha256},
                   {"max_tokens", db.max_tokens}, {"chunk_len", db.chunk_len},
                   {"v_max_tokens", v_max_tokens}, {"bos", db.bos},
                   {"exp3ef", exp3ef},            {"fuse", fuse}};
  if (has_part('p')) b.plan.params.update(pp.as_params());
  mb.add_params(b.plan.params);
  for (const auto& m : mb.models) {
    b.model = m.name;
    // exp3 + exp3ef of this model; their params are the model block only
    // (sigma::model_params), never exp10's, so content keys match an exp3ef run.
    auto add_g_source = [&]() -> std::string {
      return exp3ef == "graph" ? spt::sigma::add_exp3ef(b, mb, m) : std::string();
    };
    add_model_jobs(b, parts, mb.prefix(m), mb.base(m), db.data_json(), m.n_layer, m.n_head, v_max_tokens, exp3ef,
                   add_g_source, fuse != 0, pp, m.n_ctx);
  }
  return std::move(b.plan);
}

}  // namespace spt::plan
