// The exp6 plan (torch-free): parts, model-dependent K lists, the chunk
// ranges of T that make 6B splittable, and bad params.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "exp6/common.h"
#include "platform/plan_builder.h"
#include "plans.h"
#include "spt/plan.h"

namespace spt::plan {
namespace {

using nlohmann::json;

Plan make(const std::string& parts, std::map<std::string, std::string> params = {}) {
  return make_plan({"exp6", parts, std::move(params)});
}

std::map<std::string, std::vector<const JobSpec*>> ppl_by_variant(const Plan& p) {
  std::map<std::string, std::vector<const JobSpec*>> out;
  for (const auto& j : p.jobs)
    if (j.kind == exp6::kKindPpl) out[j.params.at("variant").dump()].push_back(&j);
  return out;
}

TEST(Exp6Plan, KListsFollowTheModel) {
  EXPECT_EQ(exp6::default_ks(144),
            (std::vector<int64_t>{1, 2, 3, 5, 8, 10, 16, 32, 64, 80, 100, 110, 120, 130, 140, 144}));
  EXPECT_EQ(exp6::default_ks(384), (std::vector<int64_t>{1, 2, 3, 5, 8, 10, 16, 32, 64, 128, 384}));
  EXPECT_EQ(exp6::default_ks(8), (std::vector<int64_t>{1, 2, 3, 5, 8}));        // above n_total dropped
  EXPECT_EQ(exp6::default_ks(600).back(), 600);                                  // others end at n_total
  EXPECT_EQ(exp6::default_cluster_ks(144), (std::vector<int64_t>{4, 8, 12, 16, 32, 64}));
  EXPECT_EQ(exp6::default_cluster_ks(12), (std::vector<int64_t>{4, 8}));         // k ≥ n_total skipped
  EXPECT_EQ(t_chunk_count(200000, 1024), 195);  // spec §2.1: T200K
  EXPECT_EQ(t_chunk_count(2048, 1024), 1);      // N − 1024 a multiple of 1024: last chunk dropped
  EXPECT_EQ(t_chunk_count(1024, 1024), 0);
  // 195 chunks in ranges of 13: 15 sub-units covering [0, 195) once.
  const auto rs = chunk_ranges(195, 13);
  ASSERT_EQ(rs.size(), 15u);
  EXPECT_EQ(rs.front().name(), "c000-013");
  EXPECT_EQ(rs.back().begin, 182);
  EXPECT_EQ(rs.back().end, 195);
  EXPECT_EQ(chunk_ranges(5, 13).size(), 1u);
  EXPECT_THROW(chunk_ranges(5, 0), std::invalid_argument);
}

// The comma-list parser exp6, exp7 and exp10 share: order kept, repeats
// dropped, every field (an empty one too) an integer in range.
TEST(ParamLists, CommaListsOfIntegers) {
  EXPECT_EQ(parse_int_list("8,2,8,16", 1, 100), (std::vector<int64_t>{8, 2, 16}));
  EXPECT_FALSE(parse_int_list("", 1, 100));
  EXPECT_FALSE(parse_int_list("1,", 1, 100));
  EXPECT_FALSE(parse_int_list("1,,2", 1, 100));
  EXPECT_FALSE(parse_int_list("12x", 1, 100));
  EXPECT_FALSE(parse_int_list("0,5", 1, 100));
  EXPECT_FALSE(parse_int_list("101", 1, 100));
}

TEST(Exp6Plan, PartBOnT200KSplitsIntoSubUnitsForFourWorkers) {
  const Plan p = make("b");
  EXPECT_EQ(p.parts, "ab");
  const auto v = ppl_by_variant(p);
  EXPECT_EQ(v.size(), 17u);  // baseline + 16 K values (K = 144 is the K = all check)
  for (const auto& [variant, units] : v) {
    EXPECT_GE(units.size(), 4u) << variant;  // every variant alone can keep 4 workers busy
    // The ranges tile [0, 195) once.
    int64_t next = 0;
    for (const auto* j : units) {
      EXPECT_EQ(j->params.at("chunk_begin").get<int64_t>(), next) << j->name;
      next = j->params.at("chunk_end").get<int64_t>();
      EXPECT_EQ(j->params.at("split"), "test");
      EXPECT_EQ(j->params.at("max_tokens"), 200000);
      EXPECT_TRUE(j->deps.empty()) << "6B units need no upstream result";
    }
    EXPECT_EQ(next, 195);
  }
  EXPECT_EQ(p.jobs.back().name, "report");
  EXPECT_TRUE(p.jobs.back().reduce);
  EXPECT_EQ(p.jobs.back().deps.size(), p.jobs.size() - 1);
}

TEST(Exp6Plan, PartCAddsKMeansUnitsAndTheirVariants) {
  const Plan p = make("c", {{"chunks_per_unit", "100"}});
  EXPECT_EQ(p.parts, "ac");
  std::set<std::string> names;
  for (const auto& j : p.jobs) names.insert(j.name);
  for (int k : {4, 8, 12, 16, 32, 64}) {
    const std::string km = "c/kmeans/k" + std::to_string(k);
    ASSERT_TRUE(names.count(km)) << km;
    EXPECT_TRUE(names.count("c/ppl/cluster" + std::to_string(k) + "/c000-100"));
    EXPECT_TRUE(names.count("c/ppl/cluster" + std::to_string(k) + "/c100-195"));
  }
  EXPECT_TRUE(names.count("b/ppl/baseline/c000-100"));  // 6C's baseline is 6B's unit
  EXPECT_FALSE(names.count("b/ppl/k1/c000-100"));
  int64_t base_mem = 0;
  for (const auto& j : p.jobs)
    if (j.name == "b/ppl/baseline/c000-100") base_mem = j.mem_bytes;
  EXPECT_GT(base_mem, 0);
  for (const auto& j : p.jobs) {
    if (j.name.rfind("c/ppl/cluster8/", 0) == 0) {
      EXPECT_EQ(j.deps, std::vector<std::string>{"c/kmeans/k8"});
      EXPECT_GT(j.mem_bytes, base_mem) << "an injected variant holds a second weight copy";
    }
    if (j.name.rfind("c/kmeans/", 0) == 0) {
      EXPECT_EQ(j.mem_bytes, 0) << j.name;  // CPU only
      EXPECT_TRUE(j.model.empty()) << j.name;
    }
  }
}

TEST(Exp6Plan, SmallModelAndCustomLists) {
  const Plan p = make("abc", {{"model", "/m"}, {"n_layer", "2"}, {"n_head", "4"}, {"ks", "1,3,99"},
                              {"max_tokens", "1024"}, {"chunk_len", "64"}, {"chunks_per_unit", "4"}});
  const auto& r = p.jobs.back().params;
  EXPECT_EQ(r.at("ks"), json({1, 3, 8}));          // 99 > 8 skipped, K = all added
  EXPECT_EQ(r.at("cluster_ks"), json({4}));        // 8 ≥ n_total skipped
  EXPECT_EQ(r.at("n_chunks_planned"), 15);
  EXPECT_EQ(ppl_by_variant(p).size(), 5u);         // baseline, k1, k3, k8, cluster4
}

TEST(Exp6Plan, BadParamsAreErrors) {
  EXPECT_THROW(make("x"), PlanError);
  EXPECT_THROW(make("b", {{"ks", "1,zero"}}), PlanError);
  EXPECT_THROW(make("b", {{"chunks_per_unit", "0"}}), PlanError);
  EXPECT_THROW(make("b", {{"max_tokens", "1000"}}), PlanError);  // no chunk of 1024
  EXPECT_THROW(make("b", {{"typo", "1"}}), PlanError);
  EXPECT_THROW(make("b", {{"model", "gpt2,gpt2-medium"}}), PlanError);  // one model per exp6 submission
}

}  // namespace
}  // namespace spt::plan
