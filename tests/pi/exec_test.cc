// The π family end to end in process on generated GPT-2s (real vocab and
// tokenizer): exp8 and exp9 run through the executors, and the rotation
// angles are checked against a direct computation written here with the
// engine's plain forward over the WHOLE chunk and ATen in double — not
// through the family's science code or the probe.
#include <gtest/gtest.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "analysis/distributions.h"
#include "model/tokenizer.h"
#include "pi/executors.h"
#include "pi/science.h"
#include "platform/local_run.h"
#include "platform/prompts.h"
#include "sigma/executors.h"
#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"
#include "spt/job.h"
#include "spt/plan.h"
#include "spt/util.h"
#include "testmodel.h"
#include "wikitext.h"

namespace spt::pi {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string data_file() { return std::string(SPT_TEST_DATA) + "/tiny_wiki.raw"; }
constexpr int kChunk = 64, kSamples = 40;

struct Shape {
  const char* name;
  int n_layer, d_model;
  uint64_t seed;
};
// Several shapes for exp9's multi-model path (depth and width differ).
const Shape kShapes[] = {{"pi-l2", 2, 48, 21}, {"pi-l3", 3, 64, 22}, {"pi-l4", 4, 64, 23}};

class PiExec : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("spt_pi_exec_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    for (const auto& s : kShapes) {
      gpt2::TestModelSpec spec;
      spec.n_layer = s.n_layer;
      spec.n_head = 4;
      spec.d_model = s.d_model;
      spec.seed = s.seed;
      spec.std = 0.08f;
      gpt2::write_test_model(path(s.name), spec);
    }
  }
  static void TearDownTestSuite() {
    if (!std::getenv("SPT_TEST_KEEP")) fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  void SetUp() override {
    spt::sigma::register_executors(reg_);
    register_executors(reg_);
    ctx_.device = "cpu";
    ctx_.threads = 2;
    ctx_.worker_name = "test-worker";
    ctx_.scratch_dir = (*dir_ / ("scratch-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()))).string();
  }

  // Params for models `idx` of kShapes.
  static std::map<std::string, std::string> params(const std::vector<int>& idx) {
    std::string m, l, h;
    for (int i : idx) {
      m += (m.empty() ? "" : ",") + path(kShapes[i].name);
      l += (l.empty() ? "" : ",") + std::to_string(kShapes[i].n_layer);
      h += (h.empty() ? "" : ",") + std::string("4");
    }
    return {{"model", m}, {"n_layer", l}, {"n_head", h}, {"dataset", data_file()},
            {"chunk_len", std::to_string(kChunk)}, {"max_samples", std::to_string(kSamples)}};
  }
  platform::LocalRun run(const std::string& exp, const std::string& parts, std::map<std::string, std::string> p) {
    return platform::run_plan_in_process(plan::make_plan({exp, parts, std::move(p)}), reg_, ctx_);
  }
  static std::set<std::string> file_names(const platform::LocalRun& r) {
    std::set<std::string> out;
    for (const auto& [job, files] : r.files)
      for (const auto& f : files) out.insert(f.name);
    return out;
  }
  static std::string file_text(const platform::LocalRun& r, const std::string& name) {
    for (const auto& [job, files] : r.files)
      for (const auto& f : files)
        if (f.name == name) return read_file(f.path);
    return "";
  }

  // θ_b of every position of `ids` by ATen in double: [T][L].
  static std::vector<std::vector<double>> direct_thetas(gpt2::Model& m, const std::vector<int32_t>& ids) {
    const int L = m.info().config.n_layer;
    gpt2::RunOptions o;
    o.logits = false;
    o.cache.insert("blocks.0.hook_resid_pre");
    for (int l = 0; l < L; ++l) o.cache.insert(gpt2::hook_name(l, "hook_resid_post"));
    const auto r = gpt2::run(m, gpt2::tokens_tensor(ids), o);
    std::vector<at::Tensor> v = {r.cache.at("blocks.0.hook_resid_pre")[0].to(at::kDouble)};
    for (int l = 0; l < L; ++l) v.push_back(r.cache.at(gpt2::hook_name(l, "hook_resid_post"))[0].to(at::kDouble));
    std::vector<std::vector<double>> out(ids.size());
    for (int b = 0; b < L; ++b) {
      const at::Tensor cos = (v[b] * v[b + 1]).sum(1) / (v[b].norm(2, {1}) * v[b + 1].norm(2, {1}));
      const at::Tensor th = at::acos(cos.clamp(-1, 1));
      for (size_t t = 0; t < ids.size(); ++t) out[t].push_back(th[t].item<double>());
    }
    return out;
  }

  static fs::path* dir_;
  ExecutorRegistry reg_;
  ExecContext ctx_;
};

fs::path* PiExec::dir_ = nullptr;

TEST_F(PiExec, Exp8RotationAnglesMatchADirectComputation) {
  const Shape& s = kShapes[2];
  const auto r = run("exp8", "c", params({2}));
  auto model = gpt2::load_model(path(s.name), {});
  const Tokenizer tok = Tokenizer::default_gpt2(path(s.name));
  // WikiText: chunk 0 of the test split (chunker T), the whole chunk run
  // at once; the unit forwards only the first max_samples positions.
  const auto ts = data::load_wikitext(data_file(), "test", tok, false);
  const std::vector<int32_t> chunk0(ts.tokens.begin(), ts.tokens.begin() + kChunk);
  const auto want = direct_thetas(*model, chunk0);
  const json& wt = r.results.at(std::string(s.name) + "/rot/wikitext");
  ASSERT_EQ(wt.at("n_samples").get<int>(), kSamples);
  ASSERT_EQ(wt.at("thetas").size(), static_cast<size_t>(kSamples));
  double cum_sum = 0;
  for (int t = 0; t < kSamples; ++t) {
    ASSERT_EQ(wt.at("thetas")[t].size(), static_cast<size_t>(s.n_layer));
    for (int b = 0; b < s.n_layer; ++b) {
      EXPECT_NEAR(wt.at("thetas")[t][b].get<double>(), want[t][b], 2e-5) << "position " << t << " block " << b;
      cum_sum += want[t][b];
    }
  }
  const json& doc = r.results.at(std::string("exp8/") + s.name);
  const json& w = doc.at("exp8c").at("wikitext");
  EXPECT_NEAR(w.at("cumulative_mean").get<double>(), cum_sum / kSamples, 1e-4);
  EXPECT_EQ(w.at("n_samples").get<int>(), kSamples);
  // Prompts: tokenised WITHOUT BOS, θ at the last token.
  const json& pr = r.results.at(std::string(s.name) + "/rot/prompts");
  ASSERT_EQ(pr.at("prompts").size(), 45u);
  EXPECT_FALSE(pr.at("provenance").at("bos").get<bool>());
  for (const auto& p : pr.at("prompts")) {
    const std::string text = platform::prompt_sets().condition(p.at("word"), p.at("condition")).text;
    const auto ids = tok.encode(text);
    ASSERT_EQ(p.at("n_tokens").get<size_t>(), ids.size()) << text;  // no BOS
    const auto th = direct_thetas(*model, ids).back();
    for (int b = 0; b < s.n_layer; ++b) EXPECT_NEAR(p.at("thetas")[b].get<double>(), th[b], 2e-5) << text;
    const double cum = doc.at("exp8c").at("prompts").at(p.at("word").get<std::string>()).at(p.at("condition").get<std::string>()).at("cumulative");
    EXPECT_NEAR(cum, th[0] + th[1] + th[2] + th[3], 1e-4);
  }
  for (const char* f : {"exp8_pi-l4.json", "exp8_results.md", "exp8c_rotation_angles_pi-l4.gp"})
    EXPECT_TRUE(file_names(r).count(f)) << f;
}

TEST_F(PiExec, Exp8AllPartsReadExp3efThroughTheGraph) {
  const auto r = run("exp8", "", params({2}));
  const json& ef = r.results.at("exp3ef/pi-l4");
  const json& doc = r.results.at("exp8/pi-l4");
  const json& a = doc.at("exp8a_pi-l4");
  // A is computed on exp3ef's g_mean: recompute it here.
  const ErfTest t = erf_width_test(ef.at("l_norm").get<std::vector<double>>(), ef.at("g_mean").get<std::vector<double>>());
  EXPECT_DOUBLE_EQ(a.at("sigma_free").get<double>(), t.sigma_free);
  EXPECT_EQ(a.at("n_points").get<int>(), 5);
  EXPECT_NEAR(a.at("p_value").get<double>(), analysis::chi2_sf(a.at("lr_statistic").get<double>(), 1), 1e-15);
  const json& b = doc.at("exp8b_pi-l4");
  const auto& all = b.at("all_models_bic_sorted");
  EXPECT_EQ(all.size(), 4 + ef.at("fit_order").size());
  for (size_t i = 1; i < all.size(); ++i)
    if (all[i].at("bic").is_number()) EXPECT_LE(all[i - 1].at("bic").get<double>(), all[i].at("bic").get<double>());
  EXPECT_EQ(b.at("best_model"), all.front().at("model"));
  // Stored exp3ef fits keep their BIC (same formula) where it was finite.
  for (const auto& e : all)
    if (e.at("source") == "exp3ef" && ef.at("fits").at(e.at("model").get<std::string>()).at("bic").is_number())
      EXPECT_NEAR(e.at("bic").get<double>(), ef.at("fits").at(e.at("model").get<std::string>()).at("bic").get<double>(), 1e-9);
  const std::string md = file_text(r, "exp8_results.md");
  EXPECT_NE(md.find("RANDOM WEIGHTS"), std::string::npos);
  EXPECT_NE(md.find("A15"), std::string::npos);
  EXPECT_NE(md.find("exp8a_erf_sigma_test_pi-l4.png"), std::string::npos);
  EXPECT_TRUE(doc.at("pre_registered").contains("any"));
}

// Three shapes (2, 3, 4 layers; widths 48 and 64): A per model with the
// convergence CI over three depths, B's scaling fits, C per model.
TEST_F(PiExec, Exp9AcrossThreeModelShapes) {
  const auto r = run("exp9", "", params({0, 1, 2}));
  const json& conv = r.results.at("exp9/convergence").at("convergence");
  EXPECT_EQ(conv.at("x_inv_layers"), (json{1.0 / 2, 1.0 / 3, 1.0 / 4}));
  ASSERT_TRUE(conv.at("ci_95_lower").is_number());
  std::vector<double> x, y;
  for (const auto& s : kShapes) {
    const json& a = r.results.at("exp9/" + std::string(s.name) + "/a");
    const json& ef = r.results.at("exp3ef/" + std::string(s.name));
    EXPECT_EQ(a.at("source"), "exp3ef") << s.name;
    for (const auto& w : a.at("h_source")) EXPECT_EQ(w, "final_sigma");
    // Reuse is the same computation: the measured σ_free equals exp3ef's up
    // to the fit tolerance (exp3ef starts erf at p0 0.4, exp9 at 0.5; A25).
    EXPECT_NEAR(a.at("measured_sigma_free").get<double>(), ef.at("fits").at("erf").at("params").at("sigma").get<double>(), 2e-5);
    EXPECT_EQ(a.at("d_model").get<int>(), s.d_model);
    x.push_back(1.0 / s.n_layer);
    y.push_back(a.at("sigma_free").get<double>());
    const json& c = r.results.at("exp9/" + std::string(s.name) + "/c");
    EXPECT_EQ(c.at("n_points").get<int>(), s.n_layer + 1);
    if (c.contains("erf"))
      EXPECT_NEAR(c.at("delta_bic_cos_minus_erf").get<double>(),
                  c.at("cos_pi_0p").at("bic").get<double>() - c.at("erf").at("bic").get<double>(), 1e-12);
  }
  const Convergence cv = convergence(x, y);
  EXPECT_NEAR(conv.at("linear_intercept").get<double>(), cv.intercept, 1e-12);
  EXPECT_NEAR(conv.at("ci_95_upper").get<double>(), cv.upper, 1e-12);
  const json& b = r.results.at("exp9/b");
  EXPECT_EQ(b.at("scaling_order").size(), 4u);
  EXPECT_EQ(b.at("models").at("pi-l3").at("n_samples").get<int>(), kSamples);
  const auto files = file_names(r);
  for (const char* f : {"exp9_convergence.json", "exp9_results.md", "exp9_part_a_pi-l2.json", "exp9_part_b_pi-l3.json",
                        "exp9a_sigma_convergence.gp", "exp9b_theta_scaling.gp", "exp9c_bic_vs_npoints.gp"})
    EXPECT_TRUE(files.count(f)) << f;
  const json all = json::parse(file_text(r, "exp9_convergence.json"));
  for (const char* k : {"part_a", "part_b", "part_c"}) EXPECT_TRUE(all.contains(k)) << k;
  const std::string md = file_text(r, "exp9_results.md");
  EXPECT_NE(md.find("measured on"), std::string::npos);
  EXPECT_NE(md.find("| cpu ("), std::string::npos);
  EXPECT_NE(md.find("fp32"), std::string::npos);
}

// exp3ef=none: measured from exp3's units; on these models h never
// collapses, so the numbers are exp3ef's (up to the fits' tolerance: p0
// 0.5 here, 0.4 in exp3ef) and h_source is final_sigma.
TEST_F(PiExec, Exp9WithoutExp3efMeasuresTheSameNumbers) {
  auto p = params({1});
  p["exp3ef"] = "none";
  const auto r = run("exp9", "a", p);
  EXPECT_FALSE(r.results.count("exp3ef/pi-l3"));
  const json& a = r.results.at("exp9/pi-l3/a");
  EXPECT_EQ(a.at("source"), "measured");
  const auto g = run("exp9", "a", params({1}));
  EXPECT_NEAR(a.at("sigma_free").get<double>(), g.results.at("exp9/pi-l3/a").at("sigma_free").get<double>(), 2e-5);
  EXPECT_TRUE(a.at("warnings").empty());
}

}  // namespace
}  // namespace spt::pi
