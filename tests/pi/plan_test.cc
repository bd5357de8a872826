// The π family's plans: exp3ef pulled in through the job graph, units
// shared with the σ family and between exp8 C and exp9 B under the same
// names and params (content reuse), defaults, refused submissions.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "pi/common.h"
#include "sigma/common.h"
#include "spt/plan.h"

namespace spt::plan {
namespace {

using nlohmann::json;

Plan make(const std::string& exp, const std::string& parts, std::map<std::string, std::string> p = {}) {
  return make_plan({exp, parts, std::move(p)});
}

std::map<std::string, const JobSpec*> by_name(const Plan& p) {
  std::map<std::string, const JobSpec*> m;
  for (const auto& j : p.jobs) m[j.name] = &j;
  return m;
}

int count(const Plan& p, const std::string& kind) {
  int n = 0;
  for (const auto& j : p.jobs) n += j.kind == kind;
  return n;
}

TEST(PiPlan, Exp8DefaultsToTheTwoExp3efModelsAndReadsExp3efThroughTheGraph) {
  const Plan p = make("exp8", "");
  EXPECT_EQ(p.parts, "abc");
  const auto m = by_name(p);
  for (const char* lab : {"gpt2", "gpt2-medium"}) {
    const std::string L = lab;
    ASSERT_TRUE(m.count("exp8/" + L)) << L;
    const auto& deps = m.at("exp8/" + L)->deps;
    EXPECT_EQ(deps, (std::vector<std::string>{"exp3ef/" + L, L + "/rot/wikitext", L + "/rot/prompts"}));
    ASSERT_TRUE(m.count("exp3ef/" + L));  // the σ family's unit, same name as in an exp3ef plan
    const JobSpec& wt = *m.at(L + "/rot/wikitext");
    EXPECT_EQ(wt.kind, pi::kKindRotation);
    EXPECT_EQ(wt.params.at("split"), "test");
    EXPECT_EQ(wt.params.at("max_samples"), 500);  // A18: the published run
    EXPECT_EQ(wt.params.at("max_tokens"), 200000);
    const JobSpec& pr = *m.at(L + "/rot/prompts");
    EXPECT_EQ(pr.params.at("prompts").size(), 45u);
    EXPECT_EQ(wt.model, L);  // affinity
  }
  ASSERT_TRUE(m.count("exp8/report"));
  EXPECT_EQ(m.at("exp8/report")->deps, (std::vector<std::string>{"exp8/gpt2", "exp8/gpt2-medium"}));
}

TEST(PiPlan, Exp8PartCAloneNeedsNoExp3) {
  const Plan p = make("exp8", "c", {{"model", "gpt2"}, {"max_samples", "200"}});
  EXPECT_EQ(p.parts, "c");
  EXPECT_EQ(count(p, sigma::kKindProfile), 0);
  EXPECT_EQ(count(p, pi::kKindRotation), 2);
  EXPECT_EQ(by_name(p).at("gpt2/rot/wikitext")->params.at("max_samples"), 200);
}

// Units the σ family also plans carry identical params, so the coordinator's
// content keys answer them from stored results.
TEST(PiPlan, SharedUnitsHaveTheSameParamsAsInTheirOwnPlans) {
  const Plan e3 = make("exp3ef", "ef", {{"model", "gpt2"}});
  const Plan e8 = make("exp8", "ab", {{"model", "gpt2"}});
  const Plan e9 = make("exp9", "a", {{"model", "gpt2"}, {"exp3ef", "none"}});
  const auto m3 = by_name(e3), m8 = by_name(e8), m9 = by_name(e9);
  int shared9 = 0;
  for (const auto& [name, j] : m3) {
    if (m8.count(name)) EXPECT_EQ(m8.at(name)->params, j->params) << name;
    if (m9.count(name)) {
      EXPECT_EQ(m9.at(name)->params, j->params) << name;
      EXPECT_EQ(m9.at(name)->deps, j->deps) << name;
      ++shared9;
    }
  }
  EXPECT_EQ(shared9, 4 + 80);  // exp9 A with exp3ef=none: the directions and gradient profiles only
  EXPECT_FALSE(m9.count("exp3ef/gpt2"));
  EXPECT_FALSE(m9.count("exp3/gpt2"));
  // exp8 C and exp9 B share the rotation unit.
  const Plan p8 = make("exp8", "c", {{"model", "gpt2"}}), p9 = make("exp9", "b", {{"model", "gpt2"}});
  const auto c8 = by_name(p8), b9 = by_name(p9);
  ASSERT_TRUE(b9.count("gpt2/rot/wikitext"));
  EXPECT_EQ(c8.at("gpt2/rot/wikitext")->params, b9.at("gpt2/rot/wikitext")->params);
}

TEST(PiPlan, Exp9DefaultsToFourModelsWithExp3efFromTheGraph) {
  const Plan p = make("exp9", "");
  EXPECT_EQ(p.parts, "abc");
  const auto m = by_name(p);
  const std::vector<std::string> labels = {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"};
  std::vector<std::string> a_jobs;
  for (const auto& L : labels) {
    ASSERT_TRUE(m.count("exp9/" + L + "/a")) << L;
    const auto& deps = m.at("exp9/" + L + "/a")->deps;
    EXPECT_EQ(deps.front(), "exp3ef/" + L);
    EXPECT_EQ(deps.size(), 1u + 4 + 80);
    EXPECT_EQ(m.at("exp9/" + L + "/c")->deps, std::vector<std::string>{"exp9/" + L + "/a"});
    a_jobs.push_back("exp9/" + L + "/a");
  }
  EXPECT_EQ(m.at("exp9/convergence")->deps, a_jobs);
  EXPECT_EQ(m.at("exp9/b")->deps.size(), 4u);
  EXPECT_EQ(m.at("gpt2-xl/rot/wikitext")->params.at("n_layer"), 48);
  const auto& rd = m.at("exp9/report")->deps;
  EXPECT_EQ(rd.front(), "exp9/convergence");
  EXPECT_EQ(rd.back(), "exp9/b");
  EXPECT_EQ(p.params.at("model"), "gpt2,gpt2-medium,gpt2-large,gpt2-xl");
}

TEST(PiPlan, Exp9PartCPlansPartA) {
  const Plan p = make("exp9", "c", {{"model", "gpt2"}});
  const auto m = by_name(p);
  EXPECT_TRUE(m.count("exp9/gpt2/a"));
  EXPECT_FALSE(m.count("exp9/convergence"));
  EXPECT_FALSE(m.count("exp9/b"));
  EXPECT_EQ(m.at("exp9/report")->deps, std::vector<std::string>{"exp9/gpt2/c"});
}

TEST(PiPlan, BadSubmissionsAreRefusedWithAReason) {
  auto msg = [](const std::string& exp, const std::string& parts, std::map<std::string, std::string> p) {
    try {
      make(exp, parts, std::move(p));
    } catch (const PlanError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(msg("exp9", "ad", {}).find("unknown part 'd'"), std::string::npos);
  EXPECT_NE(msg("exp9", "a", {{"exp3ef", "maybe"}}).find("exp3ef=maybe"), std::string::npos);
  EXPECT_NE(msg("exp8", "c", {{"model", "gpt2"}, {"max_samples", "2000"}}).find("max_samples"), std::string::npos);
  EXPECT_NE(msg("exp8", "a", {{"exp3ef", "none"}}).find("exp3ef"), std::string::npos);  // not an exp8 param
  EXPECT_NE(msg("exp8", "a", {{"model", "./m"}}).find("n_layer"), std::string::npos);
}

}  // namespace
}  // namespace spt::plan
