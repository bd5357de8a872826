// The σ family's plans: units per spec §0, job names shared across
// experiments (content reuse), multi-model fan-out, refused submissions.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "sigma/common.h"
#include "spt/plan.h"

namespace spt::plan {
namespace {

using nlohmann::json;

Plan make(const std::string& exp, const std::string& parts, std::map<std::string, std::string> p = {}) {
  return make_plan({exp, parts, std::move(p)});
}

int count(const Plan& p, const std::string& kind) {
  int n = 0;
  for (const auto& j : p.jobs) n += j.kind == kind;
  return n;
}

std::map<std::string, const JobSpec*> by_name(const Plan& p) {
  std::map<std::string, const JobSpec*> m;
  for (const auto& j : p.jobs) m[j.name] = &j;
  return m;
}

TEST(SigmaPlan, Exp1V2HasNineDirectionsAndFortyFiveProfiles) {
  const Plan p = make("exp1", "");
  EXPECT_EQ(p.parts, "2");
  EXPECT_EQ(count(p, sigma::kKindDirection), 9);
  EXPECT_EQ(count(p, sigma::kKindProfile), 45);
  const auto m = by_name(p);
  ASSERT_TRUE(m.count("gpt2/dir/bank"));
  const JobSpec& prof = *m.at("gpt2/prof/bank/strong_A");
  EXPECT_EQ(prof.deps, std::vector<std::string>{"gpt2/dir/bank"});
  EXPECT_EQ(prof.params.at("prompt"), "After checking her savings account balance she left the bank");
  EXPECT_EQ(prof.params.at("n_layer"), 12);
  EXPECT_EQ(prof.model, "gpt2");
  EXPECT_EQ(m.at("gpt2/dir/bank")->params.at("prompts_A").size(), 5u);
  EXPECT_TRUE(m.at("exp1/gpt2/v2")->reduce);
  EXPECT_EQ(m.at("exp1/gpt2/v2")->deps.size(), 54u);
  EXPECT_EQ(p.jobs.back().name, "exp1/report");
}

TEST(SigmaPlan, Exp1V1IsLegacyForwardsSearch) {
  const Plan p = make("exp1", "v1");
  EXPECT_EQ(p.parts, "1");
  const auto m = by_name(p);
  ASSERT_TRUE(m.count("gpt2/v1dir/bat"));
  EXPECT_EQ(m.at("gpt2/v1dir/bat")->params.at("prompts_A").size(), 1u);
  EXPECT_TRUE(m.at("gpt2/v1dir/bat")->params.at("forwards").get<bool>());
  EXPECT_EQ(m.at("gpt2/v1prof/bat/weak_B")->params.at("measure"), "v1");
  EXPECT_EQ(count(p, sigma::kKindProfile), 15);
  EXPECT_EQ(make("exp1", "v1,v2").parts, "12");
  EXPECT_EQ(make("exp1", "all").parts, "12");
}

TEST(SigmaPlan, Exp2UnitsAndPartsClosure) {
  const Plan p = make("exp2", "");
  EXPECT_EQ(p.parts, "abc");
  const auto m = by_name(p);
  int fits = 0, lens = 0;
  for (const auto& j : p.jobs) {
    fits += j.name.find("/fit/") != std::string::npos;
    lens += j.name.find("/lens/") != std::string::npos;
  }
  EXPECT_EQ(fits, 36);  // (word, family) CPU units
  EXPECT_EQ(lens, 18);
  EXPECT_TRUE(m.at("gpt2/lens/rock/strong_B")->params.at("lens").get<bool>());
  EXPECT_EQ(make("exp2", "b").parts, "ab");
  EXPECT_THROW(make("exp2", "x"), PlanError);
}

TEST(SigmaPlan, SharedUnitsAreIdenticalAcrossExperiments) {
  // Same name and params → same content key on the coordinator.
  const Plan p1 = make("exp1", "v2"), p2 = make("exp2", "abc"), p3 = make("exp3", ""), pf = make("exp3ef", "");
  const auto e1 = by_name(p1), e2 = by_name(p2), e3 = by_name(p3), ef = by_name(pf);
  for (const char* n : {"gpt2/dir/rock", "gpt2/prof/rock/weak_A"}) {
    ASSERT_TRUE(e1.count(n) && e2.count(n)) << n;
    EXPECT_EQ(e1.at(n)->params, e2.at(n)->params) << n;
    EXPECT_EQ(e1.at(n)->deps, e2.at(n)->deps) << n;
  }
  EXPECT_EQ(e1.at("gpt2/dir/rock")->params, e3.at("gpt2/dir/rock")->params);
  for (const auto& [name, job] : e3)
    if (name != "exp3/report") {
      ASSERT_TRUE(ef.count(name)) << name;
      EXPECT_EQ(ef.at(name)->params, job->params) << name;
    }
}

TEST(SigmaPlan, Exp3Units) {
  const Plan p = make("exp3", "b");
  EXPECT_EQ(p.parts, "abcd");
  EXPECT_EQ(count(p, sigma::kKindDirection), 4);
  EXPECT_EQ(count(p, sigma::kKindProfile), 80);
  const auto m = by_name(p);
  // The duplicated first prompt is kept on both sides (A22).
  EXPECT_EQ(m.at("gpt2/grad/rock/A/0")->params.at("prompt"), m.at("gpt2/grad/rock/B/0")->params.at("prompt"));
  EXPECT_EQ(m.at("exp3/gpt2/regress/rock")->deps.size(), 20u);
}

TEST(SigmaPlan, Exp3efMultiModelFansOutWithACrossModelReduce) {
  const Plan p = make("exp3ef", "", {{"model", "gpt2,gpt2-medium"}});
  EXPECT_EQ(p.parts, "efg");
  const auto m = by_name(p);
  ASSERT_TRUE(m.count("exp3ef/gpt2") && m.count("exp3ef/gpt2-medium") && m.count("exp3ef/cross"));
  EXPECT_EQ(m.at("exp3ef/cross")->deps, (std::vector<std::string>{"exp3ef/gpt2", "exp3ef/gpt2-medium"}));
  EXPECT_EQ(m.at("gpt2-medium/dir/rock")->params.at("n_layer"), 24);
  EXPECT_EQ(m.at("gpt2-medium/dir/rock")->model, "gpt2-medium");
  EXPECT_FALSE(m.at("gpt2-medium/dir/rock")->params.contains("scope"));
  EXPECT_EQ(count(p, sigma::kKindProfile), 160);
  // Units of one model are the same jobs as when it is submitted alone.
  const Plan medium = make("exp3ef", "", {{"model", "gpt2-medium"}});
  const auto alone = by_name(medium);
  EXPECT_EQ(alone.at("gpt2-medium/grad/bass/B/3")->params, m.at("gpt2-medium/grad/bass/B/3")->params);
}

TEST(SigmaPlan, Exp3efWithOneModelDropsGUnlessAskedFor) {
  EXPECT_EQ(make("exp3ef", "").parts, "ef");
  EXPECT_EQ(make("exp3ef", "eft").parts, "eft");
  EXPECT_THROW(make("exp3ef", "g"), PlanError);
  try {
    make("exp3ef", "efg");
    FAIL();
  } catch (const PlanError& e) {
    EXPECT_NE(std::string(e.what()).find("two or more"), std::string::npos);
  }
}

TEST(SigmaPlan, CrossModelComparisonNeedsThreeLayers) {
  EXPECT_THROW(make("exp3ef", "efg", {{"model", "/m/a,/m/b"}, {"n_layer", "2,4"}, {"n_head", "2,2"}}), PlanError);
  EXPECT_NO_THROW(make("exp3ef", "efg", {{"model", "/m/a,/m/b"}, {"n_layer", "3,4"}, {"n_head", "2,2"}}));
}

TEST(SigmaPlan, BadModelsAreRefused) {
  EXPECT_THROW(make("exp1", "", {{"model", "gpt2,gpt2"}}), PlanError);
  EXPECT_THROW(make("exp1", "", {{"model", "/tmp/some-folder"}}), PlanError);  // dims unknown
  EXPECT_THROW(make("exp2", "", {{"precision", "fp16"}}), PlanError);
  EXPECT_THROW(make("exp3", "", {{"modle", "gpt2"}}), PlanError);
}

}  // namespace
}  // namespace spt::plan
