// The exp10 executors on a tiny generated GPT-2 (2 layers x 4 heads, real
// vocab) and a shipped WikiText-style text: every part's chain run through
// the executors (in process, batched and fused as on a worker) agrees with
// a direct, unfused computation by the engine.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "analysis/thresholds.h"
#include "exp10/common.h"
#include "exp10/executors.h"
#include "exp10/local_run.h"
#include "exp10/orders.h"
#include "exp10/variants.h"
#include "report/gnuplot.h"
#include "report/markdown.h"
#include "sigma/executors.h"
#include "spt/gpt2.h"
#include "spt/util.h"
#include "testmodel.h"
#include "tokenizer.h"
#include "wikitext.h"

namespace spt::exp10 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kLayers = 2, kHeads = 4;
constexpr int64_t kMaxTokens = 256, kChunk = 64, kVTokens = 768;

// PPL values agree to the 4-dp rounding plus fp32 summation-order noise.
double ppl_tol(double v) { return 1.01e-4 + 1e-6 * std::fabs(v); }

std::string data_file() { return std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"; }

class Exp10Exec : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("spt_exp10_exec_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    gpt2::TestModelSpec spec;
    spec.n_layer = kLayers;
    spec.n_head = kHeads;
    spec.d_model = 64;
    spec.n_ctx = 128;
    spec.seed = 7;
    spec.std = 0.08f;  // strong enough weights that heads matter
    gpt2::write_test_model(model_dir(), spec);
    gpt2::LoadOptions opt;
    direct_ = gpt2::load_model(model_dir(), opt).release();
    const Tokenizer tok = Tokenizer::default_gpt2(model_dir());
    const auto ts = data::load_wikitext(data_file(), "valid", tok, false);
    v2k_ = new gpt2::Chunks(data::chunk_v(ts.tokens, kMaxTokens, kChunk));
    vfull_ = new gpt2::Chunks(data::chunk_v(ts.tokens, kVTokens, kChunk));
  }
  static void TearDownTestSuite() {
    delete direct_;
    delete v2k_;
    delete vfull_;
    if (!std::getenv("SPT_TEST_KEEP")) fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string model_dir() { return (*dir_ / "tiny-gpt2").string(); }

  void SetUp() override {
    register_executors(reg_);
    spt::sigma::register_executors(reg_);  // 10D's exp3 + exp3ef sub-graph
    ctx_.device = "cpu";
    ctx_.threads = 2;
    ctx_.worker_name = "test-worker";
    ctx_.scratch_dir = (*dir_ / ("scratch-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()))).string();
    ctx_.cache_dir = (*dir_ / "cache").string();
  }

  static plan::Plan make(const std::string& parts, std::map<std::string, std::string> extra = {}) {
    std::map<std::string, std::string> p = {{"model", model_dir()},
                                            {"n_layer", std::to_string(kLayers)},
                                            {"n_head", std::to_string(kHeads)},
                                            {"dataset", data_file()},
                                            {"max_tokens", std::to_string(kMaxTokens)},
                                            {"chunk_len", std::to_string(kChunk)},
                                            {"v_max_tokens", std::to_string(kVTokens)}};
    for (auto& [k, v] : extra) p[k] = v;
    return plan::make_plan({"exp10", parts, p});
  }

  static double ppl(const gpt2::Chunks& ch, const gpt2::Variant& v) {
    const auto s = direct_->nll(ch, v);
    return std::exp(s.nll / static_cast<double>(s.count));
  }
  static gpt2::Variant heads(const std::vector<HeadId>& hs, gpt2::HeadOp op = gpt2::HeadOp::zero,
                             const std::vector<std::vector<float>>& values = {}) {
    gpt2::Variant v;
    for (size_t i = 0; i < hs.size(); ++i) {
      gpt2::HeadIntervention h;
      h.layer = hs[i].layer;
      h.head = hs[i].head;
      h.op = op;
      if (!values.empty()) h.values = values[i];
      v.ops.push_back(h);
    }
    return v;
  }
  static double result_ppl(const json& r) { return std::exp(r.at("nll_sum").get<double>() / r.at("n_tokens").get<double>()); }

  static fs::path* dir_;
  static gpt2::Model* direct_;
  static gpt2::Chunks* v2k_;
  static gpt2::Chunks* vfull_;
  ExecutorRegistry reg_;
  ExecContext ctx_;
};
fs::path* Exp10Exec::dir_ = nullptr;
gpt2::Model* Exp10Exec::direct_ = nullptr;
gpt2::Chunks* Exp10Exec::v2k_ = nullptr;
gpt2::Chunks* Exp10Exec::vfull_ = nullptr;

TEST_F(Exp10Exec, ChainAbcdMatchesDirectComputation) {
  ASSERT_EQ(v2k_->size(), 4u);
  const auto run = run_plan_in_process(make("abcd"), reg_, ctx_);
  const json& a = run.results.at("a/reduce");
  const json& c = run.results.at("c/reduce");
  const json& r = run.results.at("exp10/report");

  // Direct, unfused: baseline and each head zero-ablated.
  const double base = ppl(*v2k_, {});
  EXPECT_NEAR(a.at("baseline_ppl").get<double>(), round_to(base, 4), ppl_tol(round_to(base, 4)));
  std::vector<HeadDelta> direct_rows;
  for (const auto& h : all_heads(kLayers, kHeads)) {
    const double p = ppl(*v2k_, heads({h}));
    direct_rows.push_back({h.layer, h.head, round_to(p, 4), round_to((p - base) / base, 6), ""});
  }
  const auto rows = read_head_table(a);
  ASSERT_EQ(rows.size(), direct_rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].id(), direct_rows[i].id());
    EXPECT_NEAR(rows[i].ppl, direct_rows[i].ppl, ppl_tol(direct_rows[i].ppl)) << head_name(rows[i].id());
    EXPECT_NEAR(rows[i].delta, direct_rows[i].delta, 1.01e-6) << head_name(rows[i].id());
  }
  // Some head must matter in this model, or the test proves little.
  EXPECT_GT(ranking_desc(direct_rows).front().delta, 0.01);

  // Ranking (B) and the cumulative order (C).
  const auto want_rank = ranking_desc(direct_rows);
  const json& rank = r.at("exp10b").at("ranking");
  ASSERT_EQ(rank.size(), want_rank.size());
  for (size_t i = 0; i < want_rank.size(); ++i)
    EXPECT_EQ(head_name(rank[i].at("layer"), rank[i].at("head")), head_name(want_rank[i].id())) << i;
  const auto order = by_abs_ascending(direct_rows);
  const json& cum = c.at("cumulative");
  ASSERT_EQ(cum.size(), step_list(Steps::c, kLayers * kHeads).size());
  std::vector<analysis::CurvePoint> direct_curve = {{0, 1.0}};
  for (const auto& row : cum) {
    const int n = row.at("n_ablated").get<int>();
    if (n == 0) {
      EXPECT_EQ(row.at("ratio"), 1.0);
      continue;
    }
    std::vector<HeadId> hs;
    for (int i = 0; i < n; ++i) hs.push_back(order[static_cast<size_t>(i)].id());
    const double p = ppl(*v2k_, heads(hs));
    EXPECT_NEAR(row.at("ppl").get<double>(), round_to(p, 4), ppl_tol(round_to(p, 4))) << n;
    EXPECT_NEAR(row.at("ratio").get<double>(), round_to(p / base, 4), ppl_tol(round_to(p / base, 4))) << n;
    direct_curve.push_back({n, round_to(p / base, 4)});
  }
  const json& thr = r.at("exp10c").at("thresholds");
  EXPECT_EQ(thr.at("1.1").get<int>(), analysis::threshold_steps(direct_curve, 1.1));
  EXPECT_EQ(thr.at("2.0").get<int>(), analysis::threshold_steps(direct_curve, 2.0));

  // Layer statistics (D) and the report's numbers.
  for (int l = 0; l < kLayers; ++l) {
    double s = 0;
    for (const auto& d : direct_rows)
      if (d.layer == l) s += d.delta;
    EXPECT_NEAR(r.at("exp10d").at("layer_mean_dppl")[l].get<double>(), s / kHeads, 2e-6);
  }
  std::string md;
  for (const auto& f : run.files.at("exp10/report"))
    if (f.name == "exp10_results_tiny-gpt2.md") md = read_file(f.path);
  ASSERT_FALSE(md.empty());
  EXPECT_NE(md.find("**Baseline PPL: " + report::fixed(a.at("baseline_ppl").get<double>(), 2) + "**"), std::string::npos);
  EXPECT_NE(md.find("| 1 | " + head_name(want_rank[0].id()) + " |"), std::string::npos) << md;
  // 10D reads this model's exp3ef from the same graph; 2 layer means are too
  // few for a correlation (Exp3efCorrelationOnAThreeLayerModel has one).
  EXPECT_EQ(r.at("exp10d").at("g_source"), "exp3ef/tiny-gpt2");
  EXPECT_EQ(run.results.at("exp3ef/tiny-gpt2").at("g_mean").size(), static_cast<size_t>(kLayers + 1));
  EXPECT_TRUE(r.at("exp10d").at("g_correlation").is_null());
  EXPECT_NE(md.find("Correlation with g(l/L): skipped: a correlation needs at least 3 layers"), std::string::npos)
      << md;
  // Provenance carried from the PPL jobs into the reduce results.
  const json& prov = r.at("provenance");
  EXPECT_EQ(prov.at("model_sha256"), direct_->info().sha256);
  EXPECT_EQ(prov.at("data_sha256").get<std::string>().size(), 64u);
  EXPECT_EQ(prov.at("tokenizer_sha256").get<std::string>().size(), 64u);
  EXPECT_EQ(prov.at("precision"), "fp32");
  EXPECT_FALSE(prov.at("torch_version").get<std::string>().empty());
  EXPECT_FALSE(prov.contains("conflicts"));
  // Every head evaluated exactly once.
  for (const auto& h : all_heads(kLayers, kHeads)) EXPECT_EQ(run.reports.at("a/head/" + head_name(h)), 1);
  // The model stays resident for affinity.
  EXPECT_EQ(reg_.loaded_models(), (std::vector<std::string>{model_dir()}));
}

TEST_F(Exp10Exec, FusedMatchesUnfused) {
  // exp3ef=none: PPL paths only (10D's correlation is ChainAbcd's).
  const auto fused = run_plan_in_process(make("a", {{"exp3ef", "none"}}), reg_, ctx_);
  const auto plain = run_plan_in_process(make("a", {{"fuse", "0"}, {"exp3ef", "none"}}), reg_, ctx_);
  const double bf = result_ppl(fused.results.at("a/baseline")), bu = result_ppl(plain.results.at("a/baseline"));
  EXPECT_NEAR(bf / bu, 1.0, 1e-6);
  bool any_fused = false;
  for (const auto& h : all_heads(kLayers, kHeads)) {
    const json& f = fused.results.at("a/head/" + head_name(h));
    const json& u = plain.results.at("a/head/" + head_name(h));
    any_fused = any_fused || f.at("fused").get<bool>();
    EXPECT_FALSE(u.at("fused").get<bool>());
    const double pf = result_ppl(f), pu = result_ppl(u);
    EXPECT_LE(std::fabs(pf - pu) / pu, 1e-6) << head_name(h);
    const double df = (pf - bf) / bf, du = (pu - bu) / bu;
    EXPECT_LE(std::fabs(df - du), 1e-6 * std::max(1.0, std::fabs(du))) << head_name(h);
  }
  EXPECT_TRUE(any_fused);
}

TEST_F(Exp10Exec, MeansMatchHeadZSums) {
  const auto run = run_plan_in_process(make("e", {{"exp3ef", "none"}}), reg_, ctx_);
  const HeadMeans m = means_from_json(run.results.at("means/v2k"));
  const auto sums = direct_->head_z_sums(*v2k_);
  const auto& cfg = direct_->info().config;
  EXPECT_EQ(run.results.at("means/v2k").at("count").get<int64_t>(), sums.count);
  for (const auto& h : all_heads(kLayers, kHeads)) {
    const auto want = sums.mean(h.layer, h.head, cfg);
    const auto got = m.of(h.layer, h.head);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]);
  }
  // One mean-ablated head, directly.
  const double base = run.results.at("a/reduce").at("baseline_ppl").get<double>();
  const double p = ppl(*v2k_, heads({{1, 2}}, gpt2::HeadOp::mean, {sums.mean(1, 2, cfg)}));
  const auto e = read_head_table(run.results.at("e/reduce"));
  EXPECT_NEAR(e[6].ppl, round_to(p, 4), ppl_tol(round_to(p, 4)));
  EXPECT_NEAR(e[6].delta, round_to((p - base) / base, 6), 1.01e-6);  // vs the rounded baseline
}

TEST_F(Exp10Exec, AllPartsRunAndAgreeWithTheEngine) {
  // Every part but Phase 3 (p: tests/exp10/phase3_test.cc, with its own small lengths).
  const auto run = run_plan_in_process(make("abcdefghijklv"), reg_, ctx_);
  const auto& R = run.results;
  const double base_r = R.at("a/reduce").at("baseline_ppl").get<double>();
  // I: one linearised head, directly.
  {
    const double p = ppl(*v2k_, heads({{1, 0}}, gpt2::HeadOp::attn_relu));
    const json& row = R.at("i/reduce").at("results")[0];
    EXPECT_EQ(row.at("method"), "relu");
    EXPECT_NEAR(row.at("ppl").get<double>(), round_to(p, 4), ppl_tol(round_to(p, 4)));
    EXPECT_EQ(R.at("i/reduce").at("n_heads_tested"), (kLayers - 1) * kHeads);
    EXPECT_EQ(R.at("i/reduce").at("results").size(), 12u);
  }
  // J: best method = argmin of the mean, a ranking of every layer-1+ head.
  const json& j = R.at("j/reduce");
  double best = 1e9;
  std::string best_m;
  for (const auto& m : linear_methods()) {
    const double mu = j.at("method_stats").at(m).at("mean").get<double>();
    if (mu < best) best = mu, best_m = m;
  }
  EXPECT_EQ(j.at("best_method"), best_m);
  EXPECT_EQ(j.at("best_ranking").size(), 4u);
  EXPECT_FALSE(j.at("n_better_than_mean").is_null());
  // K: the full linearisation of best_ranking with best_method, directly.
  {
    std::vector<HeadId> hs;
    for (const auto& r : j.at("best_ranking")) hs.push_back({r.at("layer").get<int>(), r.at("head").get<int>()});
    const auto op = best_m == "relu" ? gpt2::HeadOp::attn_relu : best_m == "l1" ? gpt2::HeadOp::attn_l1
                                                                                : gpt2::HeadOp::attn_identity;
    const double p = ppl(*v2k_, heads(hs, op));
    const json& kb = R.at("k/reduce").at("cumulative_best");
    ASSERT_EQ(kb.size(), 2u);
    EXPECT_EQ(kb[1].at("n_linearized"), 4);
    EXPECT_NEAR(kb[1].at("ratio").get<double>(), round_to(p / base_r, 4), ppl_tol(round_to(p / base_r, 4)));
  }
  // L: the exact cost formulas with this model's d_head = 16.
  {
    const json& s = R.at("l/reduce").at("seq_lengths").at("1024");
    const double n = 1024, d = 16;
    EXPECT_EQ(s.at("flops_per_head_softmax").get<double>(), 4 * n * n * d + 6 * n * n);
    EXPECT_EQ(s.at("flops_per_head_linear").get<double>(), 4 * n * n * d + 4 * n * n);
    EXPECT_EQ(s.at("flops_per_head_kernel").get<double>(), 6 * n * d * d);
    const double soft = 4 * n * n * d + 6 * n * n, ker = 6 * n * d * d;
    EXPECT_NEAR(s.at("tradeoffs")[1].at("savings_kernel_pct").get<double>(),
                round_to(100 * (1 - (4 * soft + 4 * ker) / (8 * soft)), 2), 1e-9);
  }
  // H: joint zero-ablation of the harmful heads, directly.
  {
    const json& h = R.at("h/reduce");
    std::vector<HeadId> bad;
    for (const auto& r : h.at("harmful_zero")) bad.push_back({r.at("layer").get<int>(), r.at("head").get<int>()});
    const double p = bad.empty() ? ppl(*v2k_, {}) : ppl(*v2k_, heads(bad));
    EXPECT_NEAR(h.at("joint_zero_ppl").get<double>(), round_to(p, 4), ppl_tol(round_to(p, 4)));
    const json& cum = h.at("cumulative_harmful_first");
    EXPECT_EQ(cum[0].at("n_additional"), 0);
    EXPECT_EQ(cum.back().at("n_total_ablated").get<size_t>(), bad.size() + cum.back().at("n_additional").get<size_t>());
    EXPECT_EQ(cum.back().at("n_total_ablated").get<int>(), bad.size() + (kLayers - 1) * kHeads -
                                                               [&] { int k = 0; for (auto& b : bad) k += b.layer >= 1; return k; }());
  }
  // V: the full-split baseline and the top head, directly.
  {
    const json& v = R.at("v/reduce");
    const double full = ppl(*vfull_, {});
    EXPECT_NEAR(v.at("ppl_full").get<double>(), round_to(full, 4), ppl_tol(round_to(full, 4)));
    EXPECT_EQ(v.at("n_chunks").get<size_t>(), vfull_->size());
    EXPECT_EQ(v.at("total_tokens").get<int64_t>(), static_cast<int64_t>(vfull_->size()) * kChunk);
    EXPECT_EQ(v.at("v2_top10").size(), 8u);
    const json& t1 = v.at("v2_top10")[0];
    const double p = ppl(*vfull_, heads({{t1.at("layer").get<int>(), t1.at("head").get<int>()}}));
    EXPECT_NEAR(t1.at("delta_ppl_full").get<double>(), round_to((p - full) / full, 6), 2e-6);
    EXPECT_EQ(v.at("v4_cumulative").size(), 2u);
    EXPECT_TRUE(v.at("v5_comparison").contains("conclusions_maintained"));
    EXPECT_EQ(v.at("v3_l0h8").at("head"), head_name(t1.at("layer").get<int>(), t1.at("head").get<int>()));
  }
  // Every family's report and the original's JSON file names.
  std::set<std::string> files;
  for (const auto& [name, fs_] : run.files)
    for (const auto& f : fs_) {
      files.insert(f.name);
      EXPECT_TRUE(fs::exists(f.path)) << f.path;
    }
  for (const char* f : {"exp10a_tiny-gpt2.json", "exp10c_tiny-gpt2.json", "exp10_tiny-gpt2.json",
                        "exp10e_mean_ablation_tiny-gpt2.json", "exp10f_cumulative_l0protected_tiny-gpt2.json",
                        "exp10g_zero_l0prot_tiny-gpt2.json", "exp10h_harmful_heads_tiny-gpt2.json",
                        "exp10_phase1.5_tiny-gpt2.json", "exp10i_linear_individual_tiny-gpt2.json",
                        "exp10j_method_comparison_tiny-gpt2.json", "exp10k_cumulative_linear_tiny-gpt2.json",
                        "exp10l_cost_estimate_tiny-gpt2.json", "exp10v_validation_tiny-gpt2.json",
                        "exp10_results_tiny-gpt2.md", "exp10b_results_tiny-gpt2.md", "exp10c_results_tiny-gpt2.md",
                        "exp10d_results_tiny-gpt2.md", "exp10g_three_curves_tiny-gpt2.gp",
                        "exp10j_method_comparison_tiny-gpt2.gp", "exp10l_cost_tradeoff_tiny-gpt2.gp"})
    EXPECT_TRUE(files.count(f)) << f;
  if (!report::find_gnuplot().empty())
    for (const char* f : {"exp10e_zero_vs_mean_scatter_tiny-gpt2.png", "exp10g_three_curves_tiny-gpt2.png",
                          "exp10h_harmful_heads_tiny-gpt2.png", "exp10i_linear_vs_mean_scatter_tiny-gpt2.png",
                          "exp10j_method_comparison_tiny-gpt2.png", "exp10k_pareto_linear_tiny-gpt2.png",
                          "exp10l_cost_tradeoff_tiny-gpt2.png", "exp10v_pareto_validated_tiny-gpt2.png"})
      EXPECT_TRUE(files.count(f)) << f;
  for (const auto& [name, r] : R)
    if (r.contains("report_notes")) EXPECT_TRUE(r.at("report_notes").empty()) << name << ": " << r.at("report_notes");
}

// 10D's correlation with g(l/L) on a 3-layer model: exp3 + exp3ef run in the
// same graph as part A, and the report's numbers follow from both results.
TEST_F(Exp10Exec, Exp3efCorrelationOnAThreeLayerModel) {
  const std::string dir = (*dir_ / "tiny3-gpt2").string();
  gpt2::TestModelSpec spec;
  spec.n_layer = 3;
  spec.n_head = 2;
  spec.d_model = 64;
  spec.n_ctx = 128;
  spec.seed = 5;
  spec.std = 0.08f;
  gpt2::write_test_model(dir, spec);
  const auto plan = plan::make_plan({"exp10", "a",
                                     {{"model", dir},
                                      {"n_layer", "3"},
                                      {"n_head", "2"},
                                      {"dataset", data_file()},
                                      {"max_tokens", std::to_string(kMaxTokens)},
                                      {"chunk_len", std::to_string(kChunk)}}});
  const auto run = run_plan_in_process(plan, reg_, ctx_);
  const json& d = run.results.at("exp10/report").at("exp10d");
  const json& ef = run.results.at("exp3ef/tiny3-gpt2");
  EXPECT_EQ(d.at("g_source"), "exp3ef/tiny3-gpt2");
  const json& gc = d.at("g_correlation");
  ASSERT_TRUE(gc.is_object()) << d.dump();
  EXPECT_FALSE(d.contains("g_correlation_note")) << d.dump();
  EXPECT_TRUE(std::isfinite(gc.at("corr_pearson").get<double>())) << gc.dump();
  EXPECT_TRUE(std::isfinite(gc.at("corr_spearman").get<double>())) << gc.dump();
  const auto gm = ef.at("g_mean").get<std::vector<double>>(), ln = ef.at("l_norm").get<std::vector<double>>();
  ASSERT_EQ(gm.size(), 4u);
  ASSERT_EQ(gc.at("dg_dl").size(), 3u);
  for (size_t l = 0; l < 3; ++l)
    EXPECT_NEAR(gc.at("dg_dl")[l].get<double>(), (gm[l + 1] - gm[l]) / (ln[l + 1] - ln[l]), 1e-6) << l;
}

TEST_F(Exp10Exec, BadInputsFailCleanly) {
  Executor* ex = reg_.find(kKindPpl);
  ASSERT_NE(ex, nullptr);
  auto run_one = [&](json params) {
    JobSpec j;
    j.id = 1;
    j.name = "x";
    j.kind = kKindPpl;
    j.params = std::move(params);
    Outcome out;
    int calls = 0;
    ex->run({j}, ctx_, [&](size_t, Outcome o) {
      ++calls;
      out = std::move(o);
    });
    EXPECT_EQ(calls, 1);
    return out;
  };
  const json base = make("a").jobs.front().params;
  json p = base;
  p["n_head"] = 3;
  Outcome o = run_one(p);
  EXPECT_FALSE(o.ok);
  EXPECT_FALSE(o.retryable);
  EXPECT_NE(o.error.find("planned"), std::string::npos) << o.error;
  p = base;
  p["dataset"] = "no-such-dataset-anywhere";
  o = run_one(p);
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("not found"), std::string::npos) << o.error;
  p = base;
  p["variant"] = {{"type", "heads"}, {"op", "mean"}, {"heads", {{0, 0}}}};
  o = run_one(p);
  EXPECT_FALSE(o.ok);
  EXPECT_FALSE(o.retryable);
  EXPECT_NE(o.error.find("means"), std::string::npos) << o.error;
  p = base;
  p["dataset_sha256"] = std::string(64, '0');
  o = run_one(p);
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("sha256"), std::string::npos) << o.error;
}

}  // namespace
}  // namespace spt::exp10
