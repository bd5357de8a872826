// plan_exp10: parts, dependency closure, step lists, parameter checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "exp10/common.h"
#include "sigma/common.h"
#include "spt/plan.h"

namespace spt::plan {
namespace {

Plan make(const std::string& parts, std::map<std::string, std::string> params = {}) {
  return make_plan({"exp10", parts, std::move(params)});
}

std::map<std::string, const JobSpec*> by_name(const Plan& p) {
  std::map<std::string, const JobSpec*> m;
  for (const auto& j : p.jobs) m[j.name] = &j;
  return m;
}

int count_prefix(const Plan& p, const std::string& prefix) {
  return static_cast<int>(std::count_if(p.jobs.begin(), p.jobs.end(),
                                        [&](const JobSpec& j) { return j.name.rfind(prefix, 0) == 0; }));
}

// σ family jobs (the exp3 + exp3ef sub-graph 10D reads g(l/L) from).
bool is_sigma(const JobSpec& j) { return j.kind.rfind("sigma.", 0) == 0; }
int count_sigma(const Plan& p) { return static_cast<int>(std::count_if(p.jobs.begin(), p.jobs.end(), is_sigma)); }

TEST(Exp10Steps, PublishedListsForGpt2) {
  using spt::exp10::step_list;
  using spt::exp10::Steps;
  const auto c = step_list(Steps::c, 144);
  EXPECT_EQ(c.size(), 21u);
  EXPECT_EQ(c.front(), 0);
  EXPECT_EQ(c.back(), 144);
  EXPECT_TRUE(std::count(c.begin(), c.end(), 43));
  EXPECT_EQ(step_list(Steps::fine, 132).size(), 19u);
  EXPECT_EQ(step_list(Steps::fine, 126).size(), 18u);
  EXPECT_EQ(step_list(Steps::fine, 126)[16], 120);
  const auto v4 = step_list(Steps::v4, 132);
  EXPECT_EQ(v4, (std::vector<int>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 132}));
  // Clipped to tiny models, always ending with the total.
  EXPECT_EQ(step_list(Steps::c, 8), (std::vector<int>{0, 5, 8}));
  EXPECT_EQ(step_list(Steps::fine, 4), (std::vector<int>{0, 4}));
  EXPECT_EQ(step_list(Steps::fine, 5), (std::vector<int>{0, 5}));
  EXPECT_EQ(step_list(Steps::v4, 4), (std::vector<int>{0, 4}));
}

TEST(Exp10Plan, DefaultIsAbcdForGpt2) {
  const Plan p = make("");
  EXPECT_EQ(p.parts, "abcd");
  const auto m = by_name(p);
  EXPECT_EQ(count_prefix(p, "a/head/"), 144);
  EXPECT_EQ(count_prefix(p, "c/step/"), 20);
  ASSERT_TRUE(m.count("a/baseline") && m.count("a/reduce") && m.count("c/reduce") && m.count("exp10/report"));
  // 168 exp10 jobs plus the σ sub-graph (exp3 + exp3ef of gpt2) for 10D.
  ASSERT_TRUE(m.count("exp3ef/gpt2") && m.count("exp3/gpt2"));
  // 4 gradient words × (direction + 20 profiles + regression) + exp3 + exp3ef.
  EXPECT_EQ(count_sigma(p), 4 * (1 + 20 + 1) + 2);
  EXPECT_EQ(p.jobs.size(), 1u + 144 + 1 + 20 + 1 + 1 + count_sigma(p));
  EXPECT_EQ(m.at("exp10/report")->deps, (std::vector<std::string>{"a/reduce", "c/reduce", "exp3ef/gpt2"}));
  EXPECT_EQ(m.at("exp10/report")->params.at("exp3ef"), "graph");
  for (const auto& j : p.jobs) {
    EXPECT_EQ(j.model, "gpt2") << j.name;
    if (is_sigma(j)) continue;
    EXPECT_EQ(j.params.at("n_layer"), 12);
    EXPECT_EQ(j.params.at("max_tokens"), 2048);
    EXPECT_EQ(j.reduce, j.kind == std::string(spt::exp10::kKindReduce)) << j.name;
  }
  EXPECT_EQ(m.at("a/head/L0H8")->params.at("variant").at("heads"), nlohmann::json::parse("[[0,8]]"));
  EXPECT_EQ(m.at("c/step/43")->deps, (std::vector<std::string>{"a/reduce"}));
  EXPECT_EQ(m.at("a/reduce")->deps.size(), 145u);
  EXPECT_EQ(p.params.at("precision"), "fp32");
}

// 10D's g(l/L) comes through the graph: the sub-graph is exactly the one an
// exp3ef submission of the same model plans (names, params, deps), whatever
// exp10's own params, so the coordinator's content keys reuse its results.
TEST(Exp10Plan, Exp3efSubGraphIsTheSigmaOne) {
  const Plan ef = make_plan({"exp3ef", "ef", {}});
  std::map<std::string, const JobSpec*> want;
  for (const auto& j : ef.jobs)
    if (j.name != "exp3ef/report") want[j.name] = &j;
  for (const Plan& p : {make("abcd"), make("a", {{"max_tokens", "512"}, {"chunk_len", "128"}, {"bos", "1"},
                                                 {"fuse", "0"}, {"dataset", "/data/wiki.test.raw"}})}) {
    EXPECT_EQ(count_sigma(p), static_cast<int>(want.size()));
    const auto m = by_name(p);
    for (const auto& [name, j] : want) {
      ASSERT_TRUE(m.count(name)) << name;
      EXPECT_EQ(m.at(name)->kind, j->kind) << name;
      EXPECT_EQ(m.at(name)->model, j->model) << name;  // with kind, params, deps: the content key
      EXPECT_EQ(m.at(name)->params, j->params) << name;
      EXPECT_EQ(m.at(name)->deps, j->deps) << name;
      EXPECT_EQ(m.at(name)->reduce, j->reduce) << name;
    }
    // σ units come before the report that reads them.
    size_t ef_at = 0, report_at = 0;
    for (size_t i = 0; i < p.jobs.size(); ++i) {
      if (p.jobs[i].name == "exp3ef/gpt2") ef_at = i;
      if (p.jobs[i].name == "exp10/report") report_at = i;
    }
    EXPECT_LT(ef_at, report_at);
    EXPECT_EQ(p.jobs.front().name, "a/baseline");
  }
  // Every part pulls in A, so every exp10 plan has the report and one sub-graph.
  EXPECT_EQ(count_sigma(make("v")), static_cast<int>(want.size()));
}

TEST(Exp10Plan, Exp3efNoneOrBadValue) {
  const Plan p = make("", {{"exp3ef", "none"}});
  EXPECT_EQ(p.jobs.size(), 168u);
  EXPECT_EQ(count_sigma(p), 0);
  const auto m = by_name(p);
  EXPECT_EQ(m.at("exp10/report")->deps, (std::vector<std::string>{"a/reduce", "c/reduce"}));
  EXPECT_EQ(m.at("exp10/report")->params.at("exp3ef"), "none");
  EXPECT_EQ(make("", {{"exp3ef", "graph"}}).jobs.size(), make("").jobs.size());
  // The old file parameter is gone: a path or artifact is refused, saying why.
  for (const char* bad : {"exp3ef_gpt2.json", "sha256:0123", "", "Graph"}) {
    try {
      make("", {{"exp3ef", bad}});
      ADD_FAILURE() << "exp3ef=" << bad << " accepted";
    } catch (const PlanError& e) {
      EXPECT_NE(std::string(e.what()).find("job graph"), std::string::npos) << e.what();
    }
  }
}

TEST(Exp10Plan, PartsPullInWhatTheyRead) {
  EXPECT_EQ(make("c").parts, "ac");
  EXPECT_EQ(make("g").parts, "acg");
  EXPECT_EQ(make("f").parts, "aef");
  EXPECT_EQ(make("l").parts, "aeijkl");
  EXPECT_EQ(make("v").parts, "aeijkv");
  EXPECT_EQ(make("all").parts, "abcdefghijklvp");
  EXPECT_EQ(make("p").parts, "aeijkp");  // Phase 3 reads J's best_ranking, K for comparison
  EXPECT_EQ(make("DCBA").parts, "abcd");
  EXPECT_THROW(make("ax"), PlanError);
  EXPECT_THROW(make("aq"), PlanError);
}

TEST(Exp10Plan, UnitsPerPartForGpt2) {
  const Plan p = make("all");
  EXPECT_EQ(count_prefix(p, "e/head/"), 144);
  EXPECT_EQ(count_prefix(p, "f/step/"), 18);
  EXPECT_EQ(count_prefix(p, "g/step/"), 18);
  EXPECT_EQ(count_prefix(p, "i/head/"), 396);
  EXPECT_EQ(count_prefix(p, "k/best/"), 18);
  EXPECT_EQ(count_prefix(p, "k/mixed/"), 18);
  EXPECT_EQ(count_prefix(p, "v/top/"), 10);
  EXPECT_EQ(count_prefix(p, "v/step/"), 11);
  const auto m = by_name(p);
  for (const char* n : {"means/v2k", "means/vfull", "h/joint_zero", "h/joint_mean", "h/step/all", "j/reduce",
                        "l/reduce", "v/reduce", "v/top1_mean", "exp10b/report", "exp10c/report"})
    EXPECT_TRUE(m.count(n)) << n;
  EXPECT_EQ(m.at("v/baseline")->params.at("max_tokens"), 999999);
  EXPECT_EQ(m.at("v/baseline")->params.at("chunks"), "vfull");
  EXPECT_EQ(m.at("e/head/L3H4")->deps, (std::vector<std::string>{"means/v2k"}));
  // Every dependency names an earlier job (make_plan checks it too).
  std::set<std::string> seen;
  for (const auto& j : p.jobs) {
    for (const auto& d : j.deps) EXPECT_TRUE(seen.count(d)) << j.name << " -> " << d;
    seen.insert(j.name);
  }
}

TEST(Exp10Plan, TinyModelClipsSteps) {
  const Plan p = make("all", {{"model", "/models/tiny"}, {"n_layer", "2"}, {"n_head", "4"}, {"chunk_len", "64"},
                              {"max_tokens", "256"}, {"v_max_tokens", "512"},
                              {"p_prompt_len", "32"}, {"p1_prompt_len", "16"}});
  const auto m = by_name(p);
  EXPECT_EQ(count_prefix(p, "a/head/"), 8);
  EXPECT_TRUE(m.count("c/step/5") && m.count("c/step/8"));
  EXPECT_EQ(count_prefix(p, "c/step/"), 2);
  EXPECT_EQ(count_prefix(p, "f/step/"), 1);
  EXPECT_TRUE(m.count("f/step/4"));
  EXPECT_EQ(count_prefix(p, "h/step/"), 1);  // only "all"
  EXPECT_EQ(count_prefix(p, "i/head/"), 12);
  EXPECT_EQ(count_prefix(p, "v/top/"), 8);
  EXPECT_TRUE(m.count("v/step/4"));
  for (const auto& j : p.jobs) EXPECT_EQ(j.model, "/models/tiny");
}

// ---- Phase 3 (part p, spec §10.4 P1–P4)

TEST(Exp10PlanP, UnitsAndConditionsForGpt2) {
  const Plan p = make("p");
  const auto m = by_name(p);
  EXPECT_EQ(count_prefix(p, "p/speed/"), 3);
  EXPECT_EQ(count_prefix(p, "p/refine/"), 60);
  EXPECT_EQ(count_prefix(p, "p/best/"), 60);
  EXPECT_EQ(count_prefix(p, "p/ppl/"), 12);
  ASSERT_TRUE(m.count("p/reduce") && m.count("j/reduce") && m.count("k/reduce"));
  EXPECT_EQ(m.at("p/reduce")->deps.size(), 2u + 3 + 60 + 60 + 12);
  EXPECT_TRUE(m.at("p/reduce")->reduce);
  // P1: exclusive timing units, the spec's lengths, VFULL chunk 0.
  for (const char* c : {"baseline", "relu_30", "relu_70"}) {
    const JobSpec& j = *m.at(std::string("p/speed/") + c);
    EXPECT_TRUE(j.exclusive) << c;
    EXPECT_EQ(j.kind, spt::exp10::kKindGen);
    EXPECT_EQ(j.params.at("prompt_len"), 64);
    EXPECT_EQ(j.params.at("new_tokens"), 128);
    EXPECT_EQ(j.params.at("runs"), 10);
    EXPECT_EQ(j.params.at("prompt_index"), 0);
    EXPECT_EQ(j.params.at("chunks"), "vfull");
    EXPECT_EQ(j.params.at("max_tokens"), 999999);
  }
  int exclusive = 0;
  for (const auto& j : p.jobs) exclusive += j.exclusive;
  EXPECT_EQ(exclusive, 3);  // nothing else is exclusive
  // Conditions: relu on the first 30 / 70 heads of J's best ranking.
  EXPECT_EQ(m.at("p/speed/baseline")->params.at("variant"), nlohmann::json({{"type", "clean"}}));
  EXPECT_TRUE(m.at("p/speed/baseline")->deps.empty());
  const auto& v70 = m.at("p/refine/relu_70/19")->params.at("variant");
  EXPECT_EQ(v70.at("order"), "j_best");
  EXPECT_EQ(v70.at("op"), "relu");
  EXPECT_EQ(v70.at("n"), 70);
  EXPECT_EQ(m.at("p/refine/relu_70/19")->deps, (std::vector<std::string>{"j/reduce"}));
  EXPECT_EQ(m.at("p/refine/relu_30/0")->params.at("variant").at("n"), 30);
  // P2: 3 iterations of 64 tokens after a 128-token prompt of chunk i.
  const auto& r = m.at("p/refine/baseline/7")->params;
  EXPECT_EQ(r.at("prompt_index"), 7);
  EXPECT_EQ(r.at("prompt_len"), 128);
  EXPECT_EQ(r.at("new_tokens"), 64);
  EXPECT_EQ(r.at("iterations"), 3);
  EXPECT_FALSE(m.at("p/refine/baseline/7")->exclusive);
  // P3: 5 candidates at T = 0.8, seeds recorded, all different, and a pure
  // function of (condition, prompt, candidate).
  std::set<uint64_t> seeds;
  for (const auto& j : p.jobs)
    if (j.name.rfind("p/best/", 0) == 0) {
      EXPECT_EQ(j.params.at("candidates"), 5);
      EXPECT_DOUBLE_EQ(j.params.at("temperature").get<double>(), 0.8);
      ASSERT_EQ(j.params.at("seeds").size(), 5u);
      for (const auto& s : j.params.at("seeds")) seeds.insert(s.get<uint64_t>());
    }
  EXPECT_EQ(seeds.size(), 300u);
  EXPECT_EQ(m.at("p/best/relu_30/4")->params.at("seeds")[2].get<uint64_t>(), spt::exp10::p3_seed(0, "relu_30", 4, 2));
  EXPECT_EQ(make("p").jobs.size(), p.jobs.size());
  const Plan again = make("p"), seeded = make("p", {{"p3_seed", "1"}});
  EXPECT_EQ(by_name(again).at("p/best/relu_30/4")->params.at("seeds"),
            m.at("p/best/relu_30/4")->params.at("seeds"));  // deterministic
  EXPECT_NE(by_name(seeded).at("p/best/relu_30/4")->params.at("seeds"),
            m.at("p/best/relu_30/4")->params.at("seeds"));
  // P4: exp10.ppl over chunker V at n = 128..1024, 50,000 tokens.
  for (int n : {128, 256, 512, 1024}) {
    const JobSpec& j = *m.at("p/ppl/" + std::to_string(n) + "/relu_70");
    EXPECT_EQ(j.kind, spt::exp10::kKindPpl);
    EXPECT_EQ(j.params.at("chunk_len"), n);
    EXPECT_EQ(j.params.at("max_tokens"), 50000);
    EXPECT_EQ(j.params.at("variant").at("n"), 70);
  }
  EXPECT_EQ(p.params.at("p4_max_tokens"), 50000);
  EXPECT_FALSE(make("a").params.contains("p4_max_tokens"));  // other parts' params unchanged
  // Several models: each graph under its label, P1 still exclusive.
  const Plan two = make("p", {{"model", "gpt2,gpt2-medium"}});
  const auto mm = by_name(two);
  ASSERT_TRUE(mm.count("gpt2-medium/p/speed/relu_70") && mm.count("gpt2/p/reduce"));
  EXPECT_TRUE(mm.at("gpt2-medium/p/speed/relu_70")->exclusive);
  EXPECT_EQ(mm.at("gpt2-medium/p/speed/relu_70")->deps, (std::vector<std::string>{"gpt2-medium/j/reduce"}));
  EXPECT_EQ(mm.at("gpt2-medium/p/speed/relu_70")->params.at("scope"), "gpt2-medium/");
}

TEST(Exp10PlanP, TinyModelClipsConditionsAndLengths) {
  const Plan p = make("p", {{"model", "/models/tiny"}, {"n_layer", "2"}, {"n_head", "4"}, {"chunk_len", "64"},
                            {"max_tokens", "256"}, {"v_max_tokens", "768"}, {"p1_prompt_len", "8"},
                            {"p1_new_tokens", "8"}, {"p1_runs", "2"}, {"p_prompt_len", "16"},
                            {"p_new_tokens", "8"}, {"p_prompts", "3"}, {"p3_candidates", "4"},
                            {"p4_max_tokens", "512"}, {"p4_chunk_lens", "32,64"}});
  const auto m = by_name(p);
  EXPECT_EQ(count_prefix(p, "p/refine/"), 9);
  EXPECT_EQ(count_prefix(p, "p/best/"), 9);
  EXPECT_EQ(count_prefix(p, "p/ppl/"), 6);
  // Only 4 layer-1+ heads: relu_30 and relu_70 both take all 4, and say so.
  EXPECT_EQ(m.at("p/speed/relu_70")->params.at("variant").at("n"), 4);
  EXPECT_EQ(m.at("p/speed/relu_70")->params.at("n_linear"), 4);
  EXPECT_EQ(m.at("p/speed/relu_70")->params.at("n_linear_nominal"), 70);
  EXPECT_EQ(m.at("p/refine/baseline/2")->params.at("n_ctx_needed"), 16 + 3 * 8);
  EXPECT_EQ(m.at("p/best/baseline/2")->params.at("seeds").size(), 4u);
  EXPECT_EQ(m.at("p/ppl/32/baseline")->params.at("chunk_len"), 32);
}

TEST(Exp10PlanP, LengthsAreValidatedAgainstTheContext) {
  // gpt2: n_ctx 1024. 128 + 3 * 300 > 1024.
  EXPECT_THROW(make("p", {{"p_new_tokens", "300"}}), PlanError);
  EXPECT_NO_THROW(make("p", {{"p_new_tokens", "298"}}));  // 128 + 894 = 1022
  EXPECT_THROW(make("p", {{"p1_new_tokens", "961"}}), PlanError);  // 64 + 961
  EXPECT_NO_THROW(make("p", {{"p1_new_tokens", "960"}}));
  // P4 skips chunk lengths beyond the context; all beyond is an error.
  const Plan p = make("p", {{"p4_chunk_lens", "512,2048"}});
  EXPECT_EQ(count_prefix(p, "p/ppl/"), 3);
  EXPECT_THROW(make("p", {{"p4_chunk_lens", "2048"}}), PlanError);
  EXPECT_THROW(make("p", {{"p4_chunk_lens", "12x"}}), PlanError);
  // Prompts are the first tokens of VFULL chunks: not longer than a chunk.
  EXPECT_THROW(make("p", {{"chunk_len", "100"}}), PlanError);
  EXPECT_THROW(make("p", {{"p3_temperature", "0"}}), PlanError);
  EXPECT_THROW(make("p", {{"p_prompt", "3"}}), PlanError);  // typo
  EXPECT_THROW(make("p", {{"model", "/m"}, {"n_layer", "1"}, {"n_head", "4"}}), PlanError);
  // Unknown context (a folder): checked by the executor at run time.
  EXPECT_NO_THROW(make("p", {{"model", "/m"}, {"n_layer", "2"}, {"n_head", "4"}, {"p_new_tokens", "5000"}}));
}

TEST(Exp10Plan, RejectsBadParams) {
  EXPECT_THROW(make("a", {{"model", "/models/tiny"}}), PlanError);  // dims unknown
  EXPECT_THROW(make("a", {{"n_layer", "24"}}), PlanError);          // contradicts gpt2
  EXPECT_THROW(make("a", {{"precision", "fp16"}}), PlanError);
  EXPECT_THROW(make("a", {{"chunk_len", "2048"}}), PlanError);      // > gpt2's context
  EXPECT_THROW(make("a", {{"max_token", "10"}}), PlanError);        // typo: unknown param
  EXPECT_THROW(make("a", {{"bos", "2"}}), PlanError);
  EXPECT_THROW(make("a", {{"model_sha256", "xyz"}}), PlanError);
  EXPECT_THROW(make("f", {{"model", "/m"}, {"n_layer", "1"}, {"n_head", "4"}}), PlanError);
  EXPECT_NO_THROW(make("a", {{"model", "gpt2-medium"}, {"precision", "bf16"}}));
  EXPECT_EQ(make("a", {{"model", "gpt2-xl"}, {"exp3ef", "none"}}).jobs.size(), 1u + 48 * 25 + 1 + 1);
}

TEST(Exp10Plan, FuseSwitchReachesPplJobsOnly) {
  const Plan p = make("a", {{"fuse", "0"}});
  for (const auto& j : p.jobs)
    if (j.kind == std::string(spt::exp10::kKindPpl))
      EXPECT_EQ(j.params.at("fuse"), false);
    else
      EXPECT_FALSE(j.params.contains("fuse"));
  EXPECT_FALSE(make("a").jobs.front().params.contains("fuse"));
}

// An uploaded model (sha256:<hex>) keeps the name it was submitted under:
// every job carries model_label, so reports are exp10_results_<name>.md, not
// after the digest. Other models' job params are unchanged (no model_label).
TEST(Exp10Plan, UploadedModelKeepsItsNameInFileLabels) {
  const std::string sha = "sha256:" + std::string(64, 'a');
  const Plan p = make("a", {{"model", sha}, {"model_label", "my-model"}, {"n_layer", "2"}, {"n_head", "2"}});
  ASSERT_FALSE(p.jobs.empty());
  for (const auto& j : p.jobs) {
    if (is_sigma(j)) continue;
    EXPECT_EQ(j.params.value("model_label", std::string()), "my-model") << j.name;
  }
  for (const auto& j : make("a").jobs) EXPECT_FALSE(j.params.contains("model_label")) << j.name;
}

// --model a,b: one graph per model, each under "<label>/" and scoped to it;
// a single model keeps plain names and params (no scope). The σ sub-graph
// is never scoped: its names already carry the label (exp3ef/<label>).
TEST(Exp10Plan, SeveralModelsFanOutUnderTheirLabels) {
  const std::string sha(64, 'c');
  const Plan p = make("ae", {{"model", "gpt2,/m/tiny"}, {"n_layer", ",2"}, {"n_head", ",4"},
                             {"model_sha256", "," + sha}});
  const Plan one = make("ae");
  const Plan tiny = make("ae", {{"model", "/m/tiny"}, {"n_layer", "2"}, {"n_head", "4"}, {"model_sha256", sha}});
  EXPECT_EQ(p.jobs.size(), one.jobs.size() + tiny.jobs.size());
  const auto m = by_name(p);
  for (const auto& [label, single] : {std::pair<std::string, const Plan*>{"gpt2/", &one}, {"tiny/", &tiny}})
    for (const auto& j : single->jobs) {
      if (is_sigma(j)) {
        ASSERT_TRUE(m.count(j.name)) << j.name;
        EXPECT_EQ(m.at(j.name)->params, j.params) << j.name;
        EXPECT_EQ(m.at(j.name)->deps, j.deps) << j.name;
        continue;
      }
      ASSERT_TRUE(m.count(label + j.name)) << label + j.name;
      const JobSpec& got = *m.at(label + j.name);
      EXPECT_EQ(got.kind, j.kind);
      EXPECT_EQ(got.model, j.model);
      std::vector<std::string> deps;
      for (const auto& d : j.deps) deps.push_back(d.rfind("exp3ef/", 0) == 0 ? d : label + d);
      EXPECT_EQ(got.deps, deps) << got.name;
      EXPECT_EQ(got.params.at("scope"), label);
      auto params = got.params;
      params.erase("scope");
      EXPECT_EQ(params, j.params) << got.name;
      EXPECT_FALSE(j.params.contains("scope"));
    }
  EXPECT_EQ(m.at("gpt2/exp10/report")->deps.back(), "exp3ef/gpt2");
  EXPECT_EQ(m.at("tiny/exp10/report")->deps.back(), "exp3ef/tiny");
  EXPECT_EQ(p.params.at("model"), "gpt2,/m/tiny");
  EXPECT_EQ(p.params.at("n_layer"), "12,2");
  EXPECT_EQ(one.params.at("n_layer"), 12);
}

TEST(Exp10Plan, RejectsBadModelLists) {
  EXPECT_THROW(make("a", {{"model", "gpt2,gpt2"}}), PlanError);                      // twice
  EXPECT_THROW(make("a", {{"model", "gpt2,/m"}}), PlanError);                        // /m: dims unknown
  EXPECT_THROW(make("a", {{"model", "gpt2,/m"}, {"n_layer", "2"}}), PlanError);      // list length
  EXPECT_THROW(make("a", {{"model", "gpt2,/a/m,/b/m"}, {"n_layer", ",2,2"}, {"n_head", ",2,2"}}),
               PlanError);                                                           // labels collide
  EXPECT_THROW(make("a", {{"model", "gpt2,distilgpt2"}, {"n_layer", "12,7"}}), PlanError);  // contradicts
  EXPECT_THROW(make("a", {{"model", "gpt2,distilgpt2"}, {"model_sha256", "x,"}}), PlanError);
  EXPECT_NO_THROW(make("a", {{"model", "gpt2,distilgpt2"}}));
  EXPECT_NO_THROW(make("a", {{"model", "gpt2,/m"}, {"n_layer", "12,2"}, {"n_head", ",3"}}));
}

}  // namespace
}  // namespace spt::plan
