// The exp10 reduce steps and variant resolution on synthetic upstream
// results (no model needed): rounding, stable rankings, cumulative tables,
// thresholds, statistics, layer statistics, exp3ef correlation, provenance,
// reports and figures.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "analysis/stats.h"
#include "exp10/common.h"
#include "exp10/reduce.h"
#include "exp10/variants.h"
#include "spt/util.h"

namespace spt::exp10 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A 3-layer x 4-head model with chosen PPLs (baseline 20).
const double kBase = 20.0;
const double kHeadPpl[3][4] = {{30, 20, 19.9, 25}, {20, 21, 20.1, 19.9}, {20.2, 22, 20, 20.4}};

json ppl_result(double ppl, const std::string& device = "cpu", const std::string& data = "/data/wiki.valid.raw") {
  const int64_t n = 1000;
  return {{"ppl", round_to(ppl, 4)},
          {"nll_sum", std::log(ppl) * n},
          {"n_tokens", n},
          {"n_chunks", 2},
          {"total_tokens", 1002},
          {"provenance", {{"model_sha256", "m1"}, {"data_sha256", "d1"}, {"code_version", "v"}, {"device", device}, {"data_file", data}}}};
}

json base_params(const std::string& reduce) {
  return {{"model", "/models/tiny"}, {"n_layer", 3},  {"n_head", 4},        {"reduce", reduce},
          {"max_tokens", 2048},      {"chunk_len", 1024}, {"parts", "abcd"}};
}

class ReduceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spt_exp10_reduce_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    rc_.out_dir = dir_.string();
    rc_.device = "cpu";
    rc_.worker = "test";
  }
  void TearDown() override {
    if (!std::getenv("SPT_TEST_KEEP")) fs::remove_all(dir_);
  }

  JobSpec job(const std::string& name, json params, std::vector<JobInput> inputs = {}) {
    JobSpec j;
    j.name = name;
    j.kind = kKindReduce;
    j.params = std::move(params);
    j.inputs = std::move(inputs);
    return j;
  }

  json exp10a() {
    std::vector<JobInput> in = {{"a/baseline", kKindPpl, ppl_result(kBase, "cuda:0 H100", data_)}};
    for (int l = 0; l < 3; ++l)
      for (int h = 0; h < 4; ++h)
        in.push_back({"a/head/" + head_name(l, h), kKindPpl, ppl_result(kHeadPpl[l][h], "cpu", data_)});
    return run_reduce(job("a/reduce", base_params("a"), in), rc_).result;
  }

  fs::path dir_;
  ReduceContext rc_;
  std::string data_ = "/data/wiki.valid.raw";
};

TEST_F(ReduceTest, Exp10aRoundsAndKeepsLayerMajorOrder) {
  const json a = exp10a();
  EXPECT_EQ(a.at("baseline_ppl"), 20.0);
  EXPECT_NEAR(a.at("baseline_ppl_exact").get<double>(), 20.0, 1e-12);
  ASSERT_EQ(a.at("results").size(), 12u);
  EXPECT_EQ(a.at("results")[0].at("delta_ppl"), 0.5);
  EXPECT_EQ(a.at("results")[2].at("delta_ppl"), -0.005);  // 19.9/20 − 1 rounded to 6 dp
  EXPECT_EQ(a.at("results")[9].at("delta_ppl"), 0.1);
  EXPECT_EQ(a.at("results")[9].at("ppl_ablated"), 22.0);
  EXPECT_EQ(a.at("results")[5].at("layer"), 1);
  EXPECT_EQ(a.at("results")[5].at("head"), 1);
  // Provenance merged; the devices of all inputs listed.
  EXPECT_EQ(a.at("provenance").at("model_sha256"), "m1");
  EXPECT_EQ(a.at("provenance").at("devices").size(), 2u);
  EXPECT_FALSE(a.at("provenance").contains("conflicts"));
  EXPECT_TRUE(fs::exists(dir_ / "exp10a_tiny.json"));
}

TEST_F(ReduceTest, Exp10aRejectsMissingOrDuplicateHeads) {
  std::vector<JobInput> in = {{"a/baseline", kKindPpl, ppl_result(kBase)}};
  for (int h = 0; h < 4; ++h) in.push_back({"a/head/" + head_name(0, h), kKindPpl, ppl_result(21)});
  EXPECT_THROW(run_reduce(job("a/reduce", base_params("a"), in), rc_), std::runtime_error);
  in.push_back(in.back());
  EXPECT_THROW(run_reduce(job("a/reduce", base_params("a"), in), rc_), std::runtime_error);
}

TEST_F(ReduceTest, ProvenanceConflictsAreReported) {
  std::vector<JobInput> in = {{"a/baseline", kKindPpl, ppl_result(kBase)}};
  for (int l = 0; l < 3; ++l)
    for (int h = 0; h < 4; ++h) in.push_back({"a/head/" + head_name(l, h), kKindPpl, ppl_result(kHeadPpl[l][h])});
  in[3].result["provenance"]["model_sha256"] = "other";
  const json a = run_reduce(job("a/reduce", base_params("a"), in), rc_).result;
  ASSERT_TRUE(a.at("provenance").contains("conflicts"));
  EXPECT_EQ(a.at("provenance").at("conflicts")[0].at("field"), "model_sha256");
}

TEST_F(ReduceTest, CumulativeAndCombinedReport) {
  const json a = exp10a();
  std::vector<JobInput> cin = {{"a/reduce", kKindReduce, a},
                               {"c/step/5", kKindPpl, ppl_result(20.5)},
                               {"c/step/10", kKindPpl, ppl_result(23)},
                               {"c/step/12", kKindPpl, ppl_result(50)}};
  const json c = run_reduce(job("c/reduce", base_params("c"), cin), rc_).result;
  // |ΔPPL| ascending, ties layer-major: the three zeros, then the ±0.005s.
  const std::vector<std::string> want = {"L0H1", "L1H0", "L2H2", "L0H2", "L1H2", "L1H3",
                                         "L2H0", "L2H3", "L1H1", "L2H1", "L0H3", "L0H0"};
  ASSERT_EQ(c.at("ablation_order").size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(head_name(c.at("ablation_order")[i].at("layer"), c.at("ablation_order")[i].at("head")), want[i]);
  const json& cum = c.at("cumulative");
  ASSERT_EQ(cum.size(), 4u);
  EXPECT_EQ(cum[0], json({{"n_ablated", 0}, {"ppl", 20.0}, {"ratio", 1.0}}));
  EXPECT_EQ(cum[2].at("ratio"), 1.15);
  EXPECT_EQ(cum[3].at("ppl"), 50.0);
  // A missing step is an error.
  cin.pop_back();
  EXPECT_THROW(run_reduce(job("c/reduce", base_params("c"), cin), rc_), std::runtime_error);
  cin.push_back({"c/step/12", kKindPpl, ppl_result(50)});

  // exp3ef result with 4 depths → dg/dl per block, as the σ job's input.
  const json g = {{"g_mean", {0.0, 0.5, 0.8, 0.9}}, {"l_norm", {0.0, 1 / 3.0, 2 / 3.0, 1.0}}};
  json p = base_params("exp10");
  p["exp3ef"] = "graph";
  const auto out = run_reduce(job("exp10/report", p,
                                  {{"a/reduce", kKindReduce, a},
                                   {"c/reduce", kKindReduce, c},
                                   {"exp3ef/tiny", "sigma.reduce", g}}),
                              rc_);
  const json& r = out.result;
  const json& rank = r.at("exp10b").at("ranking");
  const std::vector<std::string> top = {"L0H0", "L0H3", "L2H1", "L1H1", "L2H3", "L2H0", "L1H2",
                                        "L0H1", "L1H0", "L2H2", "L0H2", "L1H3"};
  for (size_t i = 0; i < top.size(); ++i) {
    EXPECT_EQ(head_name(rank[i].at("layer"), rank[i].at("head")), top[i]) << i;
    EXPECT_EQ(rank[i].at("rank"), i + 1);
  }
  const json& st = r.at("exp10b").at("statistics");
  EXPECT_EQ(st.at("n_negligible_1pct"), 6);
  EXPECT_EQ(st.at("n_small_10pct"), 9);
  EXPECT_EQ(st.at("n_negative"), 2);
  EXPECT_EQ(st.at("mean_delta_ppl"), round_to(0.925 / 12, 6));
  EXPECT_EQ(st.at("median_delta_ppl"), 0.0075);
  EXPECT_EQ(st.at("max_delta_ppl"), 0.5);
  EXPECT_EQ(st.at("min_delta_ppl"), -0.005);
  EXPECT_FALSE(r.at("exp10b").at("zipf_fit").at("alpha").is_null());
  EXPECT_EQ(r.at("exp10c").at("thresholds"), json({{"1.1", 5}, {"1.5", 10}, {"2.0", 10}}));
  const json& d = r.at("exp10d");
  EXPECT_EQ(d.at("layer_mean_dppl"), json({0.18625, 0.0125, 0.0325}));
  EXPECT_EQ(d.at("layer_max_dppl"), json({0.5, 0.05, 0.1}));
  const auto pr = analysis::pearson({1.5, 0.9, 0.3}, {0.18625, 0.0125, 0.0325});
  const auto sr = analysis::spearman({1.5, 0.9, 0.3}, {0.18625, 0.0125, 0.0325});
  EXPECT_NEAR(d.at("g_correlation").at("corr_pearson").get<double>(), pr.r, 1e-6);
  EXPECT_NEAR(d.at("g_correlation").at("p_pearson").get<double>(), pr.p, 1e-6);
  EXPECT_NEAR(d.at("g_correlation").at("corr_spearman").get<double>(), sr.r, 1e-6);
  EXPECT_NEAR(d.at("g_correlation").at("dg_dl")[0].get<double>(), 1.5, 1e-6);
  EXPECT_EQ(d.at("g_source"), "exp3ef/tiny");
  EXPECT_FALSE(d.contains("g_correlation_note"));

  const std::string md = read_file((dir_ / "exp10_results_tiny.md").string());
  EXPECT_NE(md.find("| 1 | L0H0 | +50.0 % | 30.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("Success criteria"), std::string::npos);
  EXPECT_NE(md.find("tokens of the WikiText-2 validation split"), std::string::npos) << md;
  EXPECT_NE(md.find("PASS"), std::string::npos);
  std::set<std::string> names;
  for (const auto& f : out.files) {
    names.insert(f.name);
    EXPECT_TRUE(fs::exists(f.path)) << f.path;
  }
  for (const char* n : {"exp10_tiny.json", "exp10_results_tiny.md", "exp10b_heatmap_tiny.gp", "exp10b_heatmap_tiny.dat",
                        "exp10b_zipf_tiny.gp", "exp10b_histogram_tiny.dat", "exp10c_pareto_tiny.gp",
                        "exp10d_layer_importance_tiny.gp", "exp10d_g_correlation_tiny.gp"})
    EXPECT_TRUE(names.count(n)) << n;
  if (!report::find_gnuplot().empty()) {
    EXPECT_TRUE(names.count("exp10b_heatmap_tiny.png"));
    EXPECT_TRUE(names.count("exp10c_pareto_tiny.png"));
    EXPECT_TRUE(names.count("exp10c_pareto_tiny.svg"));  // the figure library draws both
    EXPECT_TRUE(out.notes.empty()) << out.notes.front();
    // The report embeds its figures.
    EXPECT_NE(md.find("](exp10b_heatmap_tiny.png)"), std::string::npos) << md;
    EXPECT_NE(md.find("](exp10d_g_correlation_tiny.png)"), std::string::npos) << md;
  }
}

// A report never claims WikiText-2 for a run on another text.
TEST_F(ReduceTest, ReportNamesTheDataItRanOn) {
  data_ = "/elsewhere/sample_wiki.raw";
  const json a = exp10a();
  EXPECT_EQ(a.at("provenance").at("data_files"), json::array({data_}));
  std::vector<JobInput> cin = {{"a/reduce", kKindReduce, a}};
  for (int n : {5, 10, 12}) cin.push_back({"c/step/" + std::to_string(n), kKindPpl, ppl_result(21, "cpu", data_)});
  const json c = run_reduce(job("c/reduce", base_params("c"), cin), rc_).result;
  run_reduce(job("exp10/report", base_params("exp10"), {{"a/reduce", kKindReduce, a}, {"c/reduce", kKindReduce, c}}),
             rc_);
  const std::string md = read_file((dir_ / "exp10_results_tiny.md").string());
  EXPECT_EQ(md.find("WikiText-2 validation split ("), std::string::npos) << md;
  EXPECT_NE(md.find("tokens of `sample_wiki.raw` (a file not named wiki.valid.raw"), std::string::npos) << md;
  EXPECT_NE(md.find(data_), std::string::npos) << "provenance lists the file";
}

TEST_F(ReduceTest, WithoutExp3efOrGnuplotStillSucceeds) {
  const json a = exp10a();
  ::setenv("SPT_GNUPLOT", "/nonexistent/gnuplot", 1);
  json p = base_params("exp10");
  const auto out = run_reduce(job("exp10/report", p, {{"a/reduce", kKindReduce, a}}), rc_);
  ::unsetenv("SPT_GNUPLOT");
  EXPECT_TRUE(out.result.at("exp10d").at("g_correlation").is_null());
  EXPECT_NE(out.result.at("exp10d").at("g_correlation_note").get<std::string>().find("no exp3ef result"),
            std::string::npos);
  EXPECT_FALSE(out.notes.empty());
  for (const auto& f : out.files) EXPECT_EQ(f.name.find(".png"), std::string::npos) << f.name;
  const std::string md = read_file((dir_ / "exp10_results_tiny.md").string());
  EXPECT_NE(md.find("skipped: no exp3ef result for this model"), std::string::npos);
  EXPECT_NE(md.find("not rendered"), std::string::npos);
  EXPECT_NE(md.find("SKIPPED"), std::string::npos);
}

// 10D reads g(l/L) from the σ job exp3ef/<label>, whose name is never
// scoped (several models: the report's own inputs are "<label>/…").
TEST_F(ReduceTest, Exp3efComesFromTheUnscopedGraphInput) {
  const json a = exp10a();
  const json g = {{"g_mean", {0.0, 0.5, 0.8, 0.9}}, {"l_norm", {0.0, 1 / 3.0, 2 / 3.0, 1.0}}};
  json p = base_params("exp10");
  p["scope"] = "tiny/";
  p["exp3ef"] = "graph";
  const std::vector<JobInput> in = {{"tiny/a/reduce", kKindReduce, a}, {"exp3ef/tiny", "sigma.reduce", g}};
  json d = run_reduce(job("tiny/exp10/report", p, in), rc_).result.at("exp10d");
  EXPECT_EQ(d.at("g_source"), "exp3ef/tiny");
  EXPECT_NEAR(d.at("g_correlation").at("dg_dl")[2].get<double>(), 0.3, 1e-6);
  // A scoped name is not the σ job's.
  d = run_reduce(job("tiny/exp10/report", p, {in[0], {"tiny/exp3ef/tiny", "sigma.reduce", g}}), rc_).result.at("exp10d");
  EXPECT_TRUE(d.at("g_correlation").is_null());
  EXPECT_TRUE(d.at("g_source").is_null());
  // exp3ef=none: skipped, whatever the inputs.
  p["exp3ef"] = "none";
  d = run_reduce(job("tiny/exp10/report", p, in), rc_).result.at("exp10d");
  EXPECT_TRUE(d.at("g_correlation").is_null());
  EXPECT_EQ(d.at("g_correlation_note"), "skipped: exp3ef=none");
  EXPECT_TRUE(d.at("g_source").is_null());
  EXPECT_NE(read_file((dir_ / "exp10_results_tiny.md").string()).find("Correlation with g(l/L): skipped: exp3ef=none"),
            std::string::npos);
  // A document of another depth is reported, not fatal.
  p["exp3ef"] = "graph";
  const json g3 = {{"g_mean", {0.0, 1.0}}, {"l_norm", {0.0, 1.0}}};
  d = run_reduce(job("tiny/exp10/report", p, {in[0], {"exp3ef/tiny", "sigma.reduce", g3}}), rc_).result.at("exp10d");
  EXPECT_TRUE(d.at("g_correlation").is_null());
  EXPECT_NE(d.at("g_correlation_note").get<std::string>().find("unusable"), std::string::npos);
}

TEST_F(ReduceTest, VariantsResolveAgainstUpstreamResults) {
  const json a = exp10a();
  // exp10e: mean-ablation deltas (only layer 1+ orders matter below).
  json e = a;
  const double mean_d[3][4] = {{0.1, 0.0, -0.001, 0.02}, {0.003, -0.002, 0.001, 0.0}, {0.05, 0.004, -0.0005, 0.002}};
  for (auto& r : e.at("results")) r["delta_ppl"] = mean_d[r.at("layer").get<int>()][r.at("head").get<int>()];
  HeadMeans hm{3, 4, 2, {}};
  for (int i = 0; i < 24; ++i) hm.values.push_back(0.25f * i);
  const json means = means_to_json(hm, 2048);
  auto make_job = [&](json variant) {
    JobSpec j;
    j.name = "t";
    j.params = {{"n_layer", 3}, {"n_head", 4}, {"variant", std::move(variant)}, {"means", "means/v2k"}};
    j.inputs = {{"a/reduce", kKindReduce, a}, {"e/reduce", kKindReduce, e}, {"means/v2k", kKindMeans, means}};
    return j;
  };
  auto heads_of = [](const ResolvedVariant& rv) {
    std::vector<std::string> out;
    for (const auto& op : rv.variant.ops) out.push_back(head_name(op.layer, op.head));
    return out;
  };
  auto rv = resolve_variant(make_job({{"type", "cumulative"}, {"order", "zero_all"}, {"n", 5}, {"op", "zero"}}));
  EXPECT_EQ(heads_of(rv), (std::vector<std::string>{"L0H1", "L1H0", "L2H2", "L0H2", "L1H2"}));
  EXPECT_EQ(rv.variant.ops[0].op, gpt2::HeadOp::zero);

  rv = resolve_variant(make_job({{"type", "cumulative"}, {"order", "mean_l0prot"}, {"n", 3}, {"op", "mean"}}));
  EXPECT_EQ(heads_of(rv), (std::vector<std::string>{"L1H3", "L2H2", "L1H2"}));
  EXPECT_EQ(rv.variant.ops[0].values, (std::vector<float>{3.5f, 3.75f}));  // L1H3 = flat index 7

  // Harmful heads (ΔPPL_zero < 0): L0H2, L1H3; the rest of layers 1+ by |Δ_mean|.
  rv = resolve_variant(make_job({{"type", "harmful_first"}, {"n", -1}}));
  EXPECT_EQ(rv.describe.at("n_additional"), 7);
  EXPECT_EQ(heads_of(rv), (std::vector<std::string>{"L0H2", "L1H3", "L2H2", "L1H2", "L1H1", "L2H3", "L1H0", "L2H1",
                                                    "L2H0"}));
  EXPECT_EQ(rv.variant.ops[0].op, gpt2::HeadOp::zero);
  EXPECT_EQ(rv.variant.ops[2].op, gpt2::HeadOp::mean);
  EXPECT_TRUE(resolve_variant(make_job({{"type", "harmful_first"}, {"n", 7}})).skipped);
  EXPECT_FALSE(resolve_variant(make_job({{"type", "harmful_first"}, {"n", 6}})).skipped);

  rv = resolve_variant(make_job({{"type", "top_zero"}, {"rank", 2}}));
  EXPECT_EQ(heads_of(rv), (std::vector<std::string>{"L0H3"}));
  rv = resolve_variant(make_job({{"type", "heads"}, {"op", "relu"}, {"heads", {{2, 1}, {1, 0}}}}));
  EXPECT_EQ(rv.variant.ops[1].op, gpt2::HeadOp::attn_relu);
  EXPECT_THROW(resolve_variant(make_job({{"type", "heads"}, {"op", "zero"}, {"heads", {{3, 0}}}})), std::runtime_error);
  EXPECT_THROW(resolve_variant(make_job({{"type", "cumulative"}, {"order", "zero_all"}, {"n", 13}, {"op", "zero"}})),
               std::runtime_error);
  EXPECT_THROW(resolve_variant(make_job({{"type", "bogus"}})), std::runtime_error);
}

TEST(Exp10Codec, Base64AndMeansRoundTrip) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)})
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_encode("Man"), "TWFu");
  EXPECT_THROW(base64_decode("TWF"), std::runtime_error);
  HeadMeans m{1, 2, 3, {1.5f, -2.25f, 3e-8f, 0.0f, -0.0f, 1e30f}};
  const HeadMeans back = means_from_json(means_to_json(m, 7));
  EXPECT_EQ(back.values, m.values);
  EXPECT_EQ(back.of(0, 1), (std::vector<float>{0.0f, -0.0f, 1e30f}));
}

}  // namespace
}  // namespace spt::exp10
