// exp10d Phase 3 reduce (spec §10.4 P1–P4) on hand-made results: statistics,
// best-of-N minima, the FLOP and kernel speed-up formulas (worked out here
// and against the published gpt2 numbers), P4 ratios, A24 flag, files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "exp10/common.h"
#include "exp10/reduce.h"

namespace spt::exp10 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kPrompts = 4, kIters = 3, kCands = 5;

json prov() {
  return {{"model_sha256", "m1"},
          {"data_sha256", "d1"},
          {"code_version", "v"},
          {"device", "cpu"},
          {"config", {{"n_layer", 12}, {"n_head", 12}, {"d_model", 768}, {"d_head", 64}, {"n_ctx", 1024}}}};
}

// PPL p over n tokens as nll_sum/n_tokens.
json scored(double p, int n = 64) { return {{"nll_sum", std::log(p) * n}, {"n_tokens", n}}; }

// Synthetic PPLs, distinct per (condition, prompt, iteration/candidate).
double refine_ppl(int c, int i, int k) { return 2.00137 + 0.5 * c + 0.37 * i * i - 0.3 * k + 0.0011 * i; }
double cand_ppl(int c, int i, int k) { return 10.0 + c + std::fmod(7.3 * (i + 1) * (k + 2) + c, 5.0); }
const double kTimes[3][4] = {{1.0, 1.2, 0.8, 1.0}, {1.1, 1.1, 1.1, 1.1}, {2.0, 1.0, 1.5, 1.5}};
const double kP4[2][3] = {{55.0, 64.0, 94.0}, {29.0, 32.5, 44.0}};  // n = 128, 1024

class Exp10ReduceP : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spt_exp10_reduce_p_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    rc_.out_dir = dir_.string();
    rc_.device = "cpu";
    rc_.worker = "test";
  }
  void TearDown() override {
    if (!std::getenv("SPT_TEST_KEEP")) fs::remove_all(dir_);
  }

  JobSpec job(const std::string& best_method = "relu") {
    JobSpec j;
    j.name = "p/reduce";
    j.kind = kKindReduce;
    j.params = {{"model", "gpt2"},   {"n_layer", 12},        {"n_head", 12},         {"reduce", "p"},
                {"p_prompts", kPrompts}, {"p_iterations", kIters}, {"p3_candidates", kCands}, {"p_prompt_len", 128},
                {"p_new_tokens", 64}, {"p3_temperature", 0.8}, {"p4_max_tokens", 50000}};
    j.inputs.push_back({"j/reduce", kKindReduce, {{"best_method", best_method}}});
    j.inputs.push_back({"k/reduce",
                        kKindReduce,
                        {{"cumulative_best", json::array({{{"n_linearized", 30}, {"ratio", 1.087}},
                                                          {{"n_linearized", 70}, {"ratio", 1.481}}})}}});
    const char* conds[3] = {"baseline", "relu_30", "relu_70"};
    const int nlin[3] = {0, 30, 70};
    for (int c = 0; c < 3; ++c) {
      json t = json::array();
      for (double x : kTimes[c]) t.push_back(x);
      j.inputs.push_back({std::string("p/speed/") + conds[c], kKindGen,
                          {{"times_s", t},
                           {"new_tokens", 128},
                           {"n_linear", nlin[c]},
                           {"kv_cache", false},
                           {"device", "cpu (2 threads)"},
                           {"kv_cache_timing", {{"mean_time", 0.5}, {"tokens_per_sec", 256.0}}},
                           {"provenance", prov()}}});
      for (int i = 0; i < kPrompts; ++i) {
        json it = json::array();
        for (int k = 0; k < kIters; ++k) {
          json r = scored(refine_ppl(c, i, k), 64 * (k + 1));
          r["iteration"] = k + 1;
          it.push_back(r);
        }
        j.inputs.push_back({std::string("p/refine/") + conds[c] + "/" + std::to_string(i), kKindGen,
                            {{"iterations", it}, {"provenance", prov()}}});
        json cs = json::array();
        for (int k = 0; k < kCands; ++k) {
          json r = scored(cand_ppl(c, i, k));
          r["seed"] = p3_seed(0, conds[c], i, k);
          cs.push_back(r);
        }
        j.inputs.push_back({std::string("p/best/") + conds[c] + "/" + std::to_string(i), kKindGen,
                            {{"candidates", cs}, {"provenance", prov()}}});
      }
      for (int n = 0; n < 2; ++n)
        j.inputs.push_back({std::string("p/ppl/") + (n ? "1024/" : "128/") + conds[c], kKindPpl,
                            {{"ppl", kP4[n][c]},
                             {"nll_sum", std::log(kP4[n][c]) * 1000},
                             {"n_tokens", 1000},
                             {"n_chunks", 1},
                             {"total_tokens", 1001},
                             {"provenance", prov()}}});
    }
    return j;
  }

  fs::path dir_;
  ReduceContext rc_;
};

double rnd(double x, int dp) {
  const double f = std::pow(10.0, dp);
  return std::round(x * f) / f;
}

TEST_F(Exp10ReduceP, StatisticsFormulasAndFields) {
  const auto out = run_reduce(job(), rc_);
  const json& r = out.result;
  EXPECT_EQ(r.at("model"), "gpt2");
  EXPECT_DOUBLE_EQ(r.at("ppl_baseline").get<double>(), 29.0);  // P4 baseline at the largest n
  EXPECT_TRUE(r.at("best_method_is_relu").get<bool>());

  // P1: mean, population std, tokens/s = 128 / mean, latency = mean / 128.
  const json& p1 = r.at("p1_speed");
  for (int c = 0; c < 3; ++c) {
    const char* cond = c == 0 ? "baseline" : c == 1 ? "relu_30" : "relu_70";
    double mu = 0, var = 0;
    for (double t : kTimes[c]) mu += t / 4;
    for (double t : kTimes[c]) var += (t - mu) * (t - mu) / 4;
    EXPECT_NEAR(p1.at(cond).at("mean_time").get<double>(), rnd(mu, 4), 1e-12) << cond;
    EXPECT_NEAR(p1.at(cond).at("std_time").get<double>(), rnd(std::sqrt(var), 4), 1e-12) << cond;
    EXPECT_NEAR(p1.at(cond).at("tokens_per_sec").get<double>(), rnd(128 / mu, 2), 1e-12) << cond;
    EXPECT_NEAR(p1.at(cond).at("latency_ms").get<double>(), rnd(mu / 128 * 1000, 2), 1e-12) << cond;
    EXPECT_TRUE(p1.at(cond).contains("kv_cache_timing"));
  }
  // std of baseline {1, 1.2, 0.8, 1} is sqrt(0.02) (population, not sample).
  EXPECT_NEAR(p1.at("baseline").at("std_time").get<double>(), 0.1414, 1e-12);
  // Theoretical kernel speed-up: 144·s/((144 − k)·s + k·κ), s = 4n²d + 5n², κ = 6nd², d = 64.
  for (int n : {128, 512, 1024})
    for (int k : {30, 70}) {
      const double N = n, s = 4 * N * N * 64 + 5 * N * N, kap = 6 * N * 64 * 64;
      const std::string key = "theoretical_kernel_speedup_seq" + std::to_string(n) + "_n" + std::to_string(k);
      ASSERT_TRUE(p1.contains(key)) << key;
      EXPECT_NEAR(p1.at(key).get<double>(), rnd(144 * s / ((144 - k) * s + k * kap), 4), 1e-12) << key;
    }
  // The published values (exp10d_results.md): 1.23× (30 heads), 1.79× (70) at n = 1024.
  EXPECT_NEAR(p1.at("theoretical_kernel_speedup_seq1024_n30").get<double>(), 1.23, 0.005);
  EXPECT_NEAR(p1.at("theoretical_kernel_speedup_seq1024_n70").get<double>(), 1.79, 0.005);

  // P2: mean, median, population std over prompts per iteration (2 dp).
  const json& p2 = r.at("p2_self_refinement");
  EXPECT_TRUE(p2.at("note").get<std::string>().find("unmodified") != std::string::npos);
  for (int c = 0; c < 3; ++c) {
    const char* cond = c == 0 ? "baseline" : c == 1 ? "relu_30" : "relu_70";
    for (int k = 0; k < kIters; ++k) {
      std::vector<double> v;
      for (int i = 0; i < kPrompts; ++i) v.push_back(refine_ppl(c, i, k));
      double mu = 0, var = 0;
      for (double x : v) mu += x / v.size();
      for (double x : v) var += (x - mu) * (x - mu) / v.size();
      std::sort(v.begin(), v.end());
      const double med = (v[1] + v[2]) / 2;
      const json& it = p2.at(cond).at("iter" + std::to_string(k + 1));
      EXPECT_NEAR(it.at("mean_ppl").get<double>(), rnd(mu, 2), 1e-9) << cond << k;
      EXPECT_NEAR(it.at("median_ppl").get<double>(), rnd(med, 2), 1e-9) << cond << k;
      EXPECT_NEAR(it.at("std_ppl").get<double>(), rnd(std::sqrt(var), 2), 1e-9) << cond << k;
      EXPECT_EQ(it.at("n_samples"), kPrompts);
    }
  }

  // P3: best-of-N = min over the first N candidates; mean and median over prompts.
  const json& bon = r.at("p3_best_of_n").at("best_of_n");
  for (int c = 0; c < 3; ++c) {
    const char* cond = c == 0 ? "baseline" : c == 1 ? "relu_30" : "relu_70";
    for (int N : {1, 2, 3, 5}) {
      std::vector<double> best;
      for (int i = 0; i < kPrompts; ++i) {
        double b = 1e300;
        for (int k = 0; k < N; ++k) b = std::min(b, cand_ppl(c, i, k));
        best.push_back(b);
      }
      double mu = 0;
      for (double x : best) mu += x / best.size();
      std::sort(best.begin(), best.end());
      const json& e = bon.at(cond).at("N" + std::to_string(N));
      EXPECT_NEAR(e.at("mean_ppl").get<double>(), rnd(mu, 2), 1e-9) << cond << N;
      EXPECT_NEAR(e.at("median_ppl").get<double>(), rnd((best[1] + best[2]) / 2, 2), 1e-9) << cond << N;
    }
    EXPECT_FALSE(bon.at(cond).contains("N4"));
  }
  // Best-of-N never increases with N.
  EXPECT_LE(bon.at("relu_30").at("N5").at("mean_ppl").get<double>(),
            bon.at("relu_30").at("N1").at("mean_ppl").get<double>());
  // Seeds recorded per candidate, all different.
  std::set<uint64_t> seeds;
  for (const auto& [cond, per] : r.at("p3_best_of_n").at("seeds").items())
    for (const auto& ps : per)
      for (const auto& s : ps) seeds.insert(s.get<uint64_t>());
  EXPECT_EQ(seeds.size(), 3u * kPrompts * kCands);

  // P3 FLOPs: avg = 160; f_soft = 144·(4·160·64 + 5·160); f_k = (144 − k)(…) + k·6·64².
  const json& fl = r.at("p3_best_of_n").at("flops_analysis");
  const double per = 4 * 160 * 64 + 5 * 160, f_soft = 144 * per;
  for (int k : {0, 30, 70}) {
    const char* cond = k == 0 ? "baseline" : k == 30 ? "relu_30" : "relu_70";
    const double f_k = (144 - k) * per + k * 6 * 64 * 64;
    EXPECT_EQ(fl.at(cond).at("n_linear"), k);
    EXPECT_NEAR(fl.at(cond).at("flops_per_token_ratio").get<double>(), rnd(f_k / f_soft, 4), 1e-12);
    EXPECT_EQ(fl.at(cond).at("extra_tokens_at_equal_flops").get<int>(),
              std::max(0, static_cast<int>(std::floor(64 * f_soft / f_k)) - 64));
  }
  // Published: relu_30 0.914 (+6 tokens), relu_70 0.800 (+16).
  EXPECT_NEAR(fl.at("relu_30").at("flops_per_token_ratio").get<double>(), 0.914, 5e-4);
  EXPECT_EQ(fl.at("relu_30").at("extra_tokens_at_equal_flops"), 6);
  EXPECT_NEAR(fl.at("relu_70").at("flops_per_token_ratio").get<double>(), 0.800, 5e-4);
  EXPECT_EQ(fl.at("relu_70").at("extra_tokens_at_equal_flops"), 16);
  EXPECT_EQ(fl.at("baseline").at("extra_tokens_at_equal_flops"), 0);

  // P4: PPL per n and condition; ratios vs the baseline at the same n.
  const json& p4 = r.at("p4_context_length");
  EXPECT_NEAR(p4.at("128").at("relu_70").get<double>(), 94.0, 1e-9);
  EXPECT_NEAR(p4.at("ratios").at("128").at("relu_30").get<double>(), rnd(64.0 / 55.0, 4), 1e-12);
  EXPECT_NEAR(p4.at("ratios").at("1024").at("relu_70").get<double>(), rnd(44.0 / 29.0, 4), 1e-12);
  EXPECT_FALSE(p4.at("ratios").at("1024").contains("baseline"));

  // Files: the JSON, the report with the A11 label, the four figures' scripts.
  std::set<std::string> names;
  for (const auto& f : out.files) names.insert(f.name);
  for (const char* f : {"exp10p_phase3_gpt2.json", "exp10p_results_gpt2.md", "exp10p1_generation_speed_gpt2.gp",
                        "exp10p2_self_refinement_gpt2.gp", "exp10p3_equal_flops_gpt2.gp",
                        "exp10p4_context_length_gpt2.gp"})
    EXPECT_TRUE(names.count(f)) << f;
  std::string md;
  for (const auto& f : out.files)
    if (f.name == "exp10p_results_gpt2.md") {
      std::ifstream in(f.path);
      md.assign(std::istreambuf_iterator<char>(in), {});
    }
  EXPECT_NE(md.find("A11"), std::string::npos);
  EXPECT_NE(md.find("exp10p4_context_length_gpt2"), std::string::npos);  // figure embedded or named
  EXPECT_EQ(md.find("Warning (A24)"), std::string::npos);
}

TEST_F(Exp10ReduceP, FlagsABestMethodOtherThanRelu) {
  const auto out = run_reduce(job("l1"), rc_);
  EXPECT_FALSE(out.result.at("best_method_is_relu").get<bool>());
  EXPECT_EQ(out.result.at("best_method_2k"), "l1");
  bool noted = false;
  for (const auto& n : out.notes) noted |= n.find("A24") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(Exp10ReduceP, MissingUnitsFailLoudly) {
  JobSpec j = job();
  j.inputs.erase(std::remove_if(j.inputs.begin(), j.inputs.end(),
                                [](const JobInput& in) { return in.name == "p/best/relu_30/2"; }),
                 j.inputs.end());
  EXPECT_THROW(run_reduce(j, rc_), std::runtime_error);
  JobSpec j2 = job();
  for (auto& in : j2.inputs)
    if (in.name == "p/refine/baseline/1") in.result["iterations"].erase(0);
  EXPECT_THROW(run_reduce(j2, rc_), std::runtime_error);
  JobSpec j3 = job();
  j3.inputs.erase(std::remove_if(j3.inputs.begin(), j3.inputs.end(),
                                 [](const JobInput& in) { return in.name == "p/ppl/128/relu_70"; }),
                  j3.inputs.end());
  EXPECT_THROW(run_reduce(j3, rc_), std::runtime_error);
}

}  // namespace
}  // namespace spt::exp10
