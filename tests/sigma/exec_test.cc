// The σ family end to end in process on a generated GPT-2 (4 layers, real
// vocab and tokenizer): every plan runs through the executors (batched
// probes, as on a worker), and the numbers are checked against a direct
// computation written here with the engine's plain forward and ATen —
// not through the probe or the family's science code.
#include <gtest/gtest.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "model/tokenizer.h"
#include "platform/local_run.h"
#include "platform/prompts.h"
#include "sigma/common.h"
#include "sigma/executors.h"
#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"
#include "spt/job.h"
#include "spt/plan.h"
#include "spt/util.h"
#include "testmodel.h"

namespace spt::sigma {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kLayers = 4;

class SigmaExec : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("spt_sigma_exec_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    gpt2::TestModelSpec spec;
    spec.n_layer = kLayers;
    spec.n_head = 4;
    spec.d_model = 64;
    spec.n_ctx = 128;
    spec.seed = 11;
    spec.std = 0.08f;
    gpt2::write_test_model(model_dir(), spec);
    direct_ = gpt2::load_model(model_dir(), {}).release();
    tok_ = new Tokenizer(Tokenizer::default_gpt2(model_dir()));
  }
  static void TearDownTestSuite() {
    delete direct_;
    delete tok_;
    if (!std::getenv("SPT_TEST_KEEP")) fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string model_dir() { return (*dir_ / "tiny-gpt2").string(); }
  static std::string label() { return "tiny-gpt2"; }

  void SetUp() override {
    register_executors(reg_);
    ctx_.device = "cpu";
    ctx_.threads = 2;
    ctx_.worker_name = "test-worker";
    ctx_.scratch_dir = (*dir_ / ("scratch-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()))).string();
  }

  static plan::Plan make(const std::string& exp, const std::string& parts) {
    return plan::make_plan({exp, parts, {{"model", model_dir()}, {"n_layer", "4"}, {"n_head", "4"}}});
  }
  platform::LocalRun run(const std::string& exp, const std::string& parts) {
    return platform::run_plan_in_process(make(exp, parts), reg_, ctx_);
  }

  // Residuals at depths 0..L at the last token of BOS + prompt: [L+1, d].
  static at::Tensor resid_at_target(const std::string& prompt) {
    std::vector<int32_t> ids = {tok_->eot()};
    const auto body = tok_->encode(prompt);
    ids.insert(ids.end(), body.begin(), body.end());
    gpt2::RunOptions o;
    o.logits = false;
    o.cache.insert("blocks.0.hook_resid_pre");
    for (int l = 0; l < kLayers; ++l) o.cache.insert(gpt2::hook_name(l, "hook_resid_post"));
    const auto r = gpt2::run(*direct_, gpt2::tokens_tensor(ids), o);
    std::vector<at::Tensor> rows = {r.cache.at("blocks.0.hook_resid_pre")[0][-1]};
    for (int l = 0; l < kLayers; ++l) rows.push_back(r.cache.at(gpt2::hook_name(l, "hook_resid_post"))[0][-1]);
    return at::stack(rows).to(at::kDouble);
  }
  // e_diff of a word by the spec's formula (§2.3), in double.
  static at::Tensor e_diff(const std::vector<std::string>& A, const std::vector<std::string>& B, double* cos_AB) {
    auto mean_final = [](const std::vector<std::string>& ps) {
      std::vector<at::Tensor> v;
      for (const auto& p : ps) v.push_back(resid_at_target(p)[kLayers]);
      return at::stack(v).mean(0);
    };
    const at::Tensor mA = mean_final(A), mB = mean_final(B);
    *cos_AB = at::dot(mA / mA.norm(), mB / mB.norm()).item<double>();
    return (mA - mB) / (mA - mB).norm();
  }
  static std::vector<double> sigma_direct(const std::string& prompt, const at::Tensor& e) {
    const at::Tensor phi = resid_at_target(prompt);
    const at::Tensor s = at::mv(phi, e) / phi.norm(2, {1});
    return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
  }

  static void expect_near(const json& got, const std::vector<double>& want, double tol, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.at(i).get<double>(), want[i], tol) << what << "[" << i << "]";
  }
  static std::set<std::string> file_names(const platform::LocalRun& r) {
    std::set<std::string> out;
    for (const auto& [job, files] : r.files)
      for (const auto& f : files) out.insert(f.name);
    return out;
  }

  static fs::path* dir_;
  static gpt2::Model* direct_;
  static Tokenizer* tok_;
  ExecutorRegistry reg_;
  ExecContext ctx_;
};

fs::path* SigmaExec::dir_ = nullptr;
gpt2::Model* SigmaExec::direct_ = nullptr;
Tokenizer* SigmaExec::tok_ = nullptr;

TEST_F(SigmaExec, Exp1V2MatchesADirectComputation) {
  const auto r = run("exp1", "v2");
  const auto& sets = platform::prompt_sets();
  const json& doc = r.results.at("exp1/" + label() + "/v2");
  EXPECT_TRUE(doc.at("provenance").at("random_weights").get<bool>());
  // valid_words ascending in cos_AB.
  double prev = -2;
  for (const auto& w : doc.at("valid_words")) {
    const double c = doc.at("words").at(w.get<std::string>()).at("cos_AB").get<double>();
    EXPECT_GE(c, prev);
    prev = c;
  }
  for (const std::string word : {"bank", "light", "crane"}) {
    const auto& d = sets.direction_for(word);
    double cos_AB = 0;
    const at::Tensor e = e_diff(d.prompts_A, d.prompts_B, &cos_AB);
    EXPECT_NEAR(doc.at("words").at(word).at("cos_AB").get<double>(), cos_AB, 1e-5) << word;
    const json& dir = r.results.at(label() + "/dir/" + word);
    expect_near(dir.at("e_diff"), std::vector<double>(e.data_ptr<double>(), e.data_ptr<double>() + e.numel()), 1e-5,
                word + " e_diff");
    for (const auto& c : sets.experiment_for(word).conditions) {
      const json& p = doc.at("words").at(word).at("prompts").at(c.label);
      const auto want = sigma_direct(c.text, e);
      expect_near(p.at("sigma"), want, 1e-5, word + " " + c.label);
      EXPECT_NEAR(p.at("sigma_final").get<double>(), want.back(), 1e-5);
      EXPECT_EQ(p.at("target_position").get<size_t>(), tok_->encode(c.text).size());  // last token, BOS at 0
    }
  }
  const auto files = file_names(r);
  for (const char* f : {"exp1_v2_tiny-gpt2.json", "exp1_v2_results.md", "v2_sigma_all_tiny-gpt2.png",
                        "v2_sigma_all_tiny-gpt2.svg", "v2_dsigma_bank_tiny-gpt2.gp", "v2_sigma_rock_tiny-gpt2.dat"})
    EXPECT_TRUE(files.count(f)) << f;
  const std::string md = read_file(r.files.at("exp1/report").front().path);
  EXPECT_NE(md.find("RANDOM WEIGHTS"), std::string::npos);
  EXPECT_NE(md.find("](v2_sigma_all_tiny-gpt2.png)"), std::string::npos);
  EXPECT_NE(md.find("](v2_dsigma_crane_tiny-gpt2.png)"), std::string::npos);  // per-word figures too
}

TEST_F(SigmaExec, Exp1V1UsesLegacyDirectionsAndForwardsSearch) {
  const auto r = run("exp1", "v1");
  const json& doc = r.results.at("exp1/" + label() + "/v1");
  const auto& lw = platform::prompt_sets().legacy_for("bank");
  const at::Tensor a = resid_at_target(lw.prompt_A)[kLayers], b = resid_at_target(lw.prompt_B)[kLayers];
  const at::Tensor eA = a / a.norm(), eB = b / b.norm();
  EXPECT_NEAR(doc.at("words").at("bank").at("direction_cos_AB").get<double>(), at::dot(eA, eB).item<double>(), 1e-5);
  // "She went to the bank to": the target is "bank", not the last token.
  const auto& weak = lw.conditions.at(1);
  ASSERT_EQ(weak.label, "weak_A");
  const json& p = doc.at("words").at("bank").at("prompts").at("weak_A");
  EXPECT_EQ(p.at("target_position").get<int>(), 5);  // BOS She went to the bank
  std::vector<int32_t> ids = {tok_->eot()};
  for (int32_t t : tok_->encode(weak.text)) ids.push_back(t);
  gpt2::RunOptions o;
  o.logits = false;
  o.cache = {"blocks.0.hook_resid_pre"};
  const auto rr = gpt2::run(*direct_, gpt2::tokens_tensor(ids), o);
  const at::Tensor phi0 = rr.cache.at("blocks.0.hook_resid_pre")[0][5].to(at::kDouble);
  const double want = (at::dot(phi0, eA) - at::dot(phi0, eB)).item<double>() / phi0.norm().item<double>();
  EXPECT_NEAR(p.at("sigma").at(0).get<double>(), want, 1e-5);
  EXPECT_TRUE(file_names(r).count("exp1_basic.md"));
}

TEST_F(SigmaExec, Exp2ResponseFitsAndLogitLens) {
  const auto r = run("exp2", "");
  const json& doc = r.results.at("exp2/" + label());
  int fits = 0;
  for (auto it = doc.at("words").begin(); it != doc.at("words").end(); ++it) {
    const json& w = *it;
    ASSERT_TRUE(w.contains("response")) << it.key();
    const auto& h = w.at("response").at("h_values");
    EXPECT_NEAR(h.at("strong_A").get<double>(), 1.0, 1e-12);
    EXPECT_NEAR(h.at("strong_B").get<double>(), -1.0, 1e-12);
    if (w.contains("fit_order")) {
      double prev = -INFINITY;
      for (const auto& f : w.at("fit_order")) {
        const json& b = w.at("fits").at(f.get<std::string>()).at("bic");
        if (!b.is_number()) continue;
        EXPECT_GE(b.get<double>(), prev);
        prev = b.get<double>();
      }
      fits += static_cast<int>(w.at("fit_order").size());
      EXPECT_EQ(w.at("fits").at(w.at("best_fit").get<std::string>()).at("y_fit").size(), static_cast<size_t>(kLayers));
    }
    EXPECT_EQ(w.at("logit_lens").at("strong_A").at("layers").size(), static_cast<size_t>(kLayers + 1));
  }
  EXPECT_GT(fits, 9);
  // A: f_mean of one word from direct profiles (§4 Part A).
  {
    const auto& d = platform::prompt_sets().direction_for("bass");
    double cos_AB = 0;
    const at::Tensor e = e_diff(d.prompts_A, d.prompts_B, &cos_AB);
    std::map<std::string, std::vector<double>> s;
    for (const auto& c : platform::prompt_sets().experiment_for("bass").conditions) s[c.label] = sigma_direct(c.text, e);
    const double mid = (s["strong_A"].back() + s["strong_B"].back()) / 2, half = (s["strong_A"].back() - s["strong_B"].back()) / 2;
    std::vector<double> f_mean(kLayers + 1, 0.0);
    int kept = 0;
    for (auto& [label, sig] : s) {
      const double h = (sig.back() - mid) / half;
      if (std::fabs(h) <= 0.05) continue;
      ++kept;
      for (int l = 0; l <= kLayers; ++l) f_mean[l] += sig[l] / h;
    }
    for (double& v : f_mean) v /= kept;
    expect_near(doc.at("words").at("bass").at("response").at("f_mean"), f_mean, 1e-4, "bass f_mean");
  }
  // C: the uncorrected lens (no b_U) at every depth, computed here from the
  // processed weights: softmax(LNPre(φ)·W_U).
  {
    const std::string text = platform::prompt_sets().condition("light", "strong_A").text;
    const at::Tensor phi = resid_at_target(text).to(at::kFloat);
    const auto& W = gpt2::weights(*direct_);
    const at::Tensor x = phi - phi.mean(-1, true);
    const at::Tensor ln = x / at::sqrt(x.pow(2).mean(-1, true) + 1e-5);
    const at::Tensor p = at::softmax(at::matmul(ln, W.W_U.to(at::kFloat)), -1);
    const json& layers = doc.at("words").at("light").at("logit_lens").at("strong_A").at("layers");
    for (int l = 0; l <= kLayers; ++l) {
      const int64_t id = p[l].argmax().item<int64_t>();
      EXPECT_EQ(layers.at(l).at("top1").get<std::string>(), tok_->token_str(static_cast<int32_t>(id))) << l;
      EXPECT_NEAR(layers.at(l).at("top1_prob").get<double>(), p[l][id].item<double>(), 1e-5) << l;
    }
  }
  // The corrected lens at depth L is the model's own next-token prediction.
  const std::string text = platform::prompt_sets().condition("rock", "strong_B").text;
  std::vector<int32_t> ids = {tok_->eot()};
  for (int32_t t : tok_->encode(text)) ids.push_back(t);
  const auto out = gpt2::run(*direct_, gpt2::tokens_tensor(ids), {});
  const int64_t argmax = out.logits[0][-1].argmax().item<int64_t>();
  const json& lens = r.results.at(label() + "/lens/rock/strong_B").at("lens");
  EXPECT_EQ(lens.at("corrected").at(kLayers).at("top1_id").get<int64_t>(), argmax);
  EXPECT_NE(doc.at("logit_lens_note").get<std::string>().find("omits b_U"), std::string::npos);
  const auto files = file_names(r);
  for (const char* f : {"exp2_tiny-gpt2.json", "exp2_results.md", "exp2_collapse_bank_tiny-gpt2.png",
                        "exp2_logitlens_rock_strong_A_tiny-gpt2.svg", "exp2_universality_tiny-gpt2.png"})
    EXPECT_TRUE(files.count(f)) << f;
}

TEST_F(SigmaExec, Exp3SlopesAndExp3efFromTheGraph) {
  const auto r = run("exp3ef", "eft");
  const json& e3 = r.results.at("exp3/" + label());
  const auto& g = platform::prompt_sets().gradient_for("spring");
  double cos_AB = 0;
  const auto& d = platform::prompt_sets().direction_for("spring");
  const at::Tensor e = e_diff(d.prompts_A, d.prompts_B, &cos_AB);
  std::vector<std::vector<double>> sig;
  for (const auto* side : {&g.A, &g.B})
    for (const auto& p : *side) sig.push_back(sigma_direct(p, e));
  double M = 0;
  for (const auto& s : sig) M = std::max(M, std::fabs(s.back()));
  // Ordinary least squares per depth, written out.
  std::vector<double> slope;
  for (int l = 0; l <= kLayers; ++l) {
    double mh = 0, my = 0, sxy = 0, sxx = 0;
    for (const auto& s : sig) {
      mh += s.back() / M / sig.size();
      my += s[l] / sig.size();
    }
    for (const auto& s : sig) {
      sxy += (s.back() / M - mh) * (s[l] - my);
      sxx += (s.back() / M - mh) * (s.back() / M - mh);
    }
    slope.push_back(sxy / sxx);
  }
  expect_near(e3.at("words").at("spring").at("f"), slope, 2e-5, "spring f(l)");
  EXPECT_EQ(e3.at("words").at("spring").at("h_values").size(), 20u);
  const json& ef = r.results.at("exp3ef/" + label());
  const double fmax = *std::max_element(slope.begin(), slope.end());
  ASSERT_GE(fmax, 1e-8);  // spring is kept on this model
  for (int l = 0; l <= kLayers; ++l)
    EXPECT_NEAR(ef.at("g_per_word").at("spring").at(l).get<double>(), slope[l] / fmax, 1e-4) << l;
  EXPECT_EQ(ef.at("words"), json({"rock", "spring", "bass", "light"}));  // GRADIENT_PROMPTS order
  EXPECT_EQ(ef.at("g_mean").size(), static_cast<size_t>(kLayers + 1));
  EXPECT_FALSE(r.results.at("exp3ef/" + label() + "/truncated").at("binding").get<bool>());
  // Provenance survives the intermediate CPU units down to the report.
  EXPECT_EQ(ef.at("provenance").at("model_sha256"), r.results.at(label() + "/dir/rock").at("provenance").at("model_sha256"));
  EXPECT_TRUE(ef.at("provenance").at("random_weights").get<bool>());
  const std::string md = read_file(r.files.at("exp3ef/report").front().path);
  EXPECT_NE(md.find("RANDOM WEIGHTS"), std::string::npos);
  EXPECT_NE(md.find("## tiny-gpt2 (4 layers)"), std::string::npos);
  const auto files = file_names(r);
  for (const char* f : {"exp3_tiny-gpt2.json", "exp3ef_tiny-gpt2.json", "exp3ef_results.md",
                        "exp3e_universal_g_tiny-gpt2.png", "exp3_linearity_rock_tiny-gpt2.png"})
    EXPECT_TRUE(files.count(f)) << f;
}

TEST_F(SigmaExec, ABadPromptFailsItsJobWithAClearMessage) {
  ExecutorRegistry reg;
  register_executors(reg);
  JobSpec j;
  j.id = 1;
  j.name = "x/dir/bank";
  j.kind = kKindDirection;
  j.params = {{"model", model_dir()}, {"n_layer", 4}, {"n_head", 4}, {"word", "bank"},
              {"prompts_A", {"no such word here"}}, {"prompts_B", {"the bank"}}};
  JobSpec good = j;  // batched with the bad one: must not fail with it
  good.id = 2;
  good.name = "x/dir/bat";
  good.params["word"] = "bat";
  good.params["prompts_A"] = {"the bat"};
  good.params["prompts_B"] = {"a wooden bat"};
  std::vector<Outcome> got(2);
  reg.find(kKindDirection)->run({j, good}, ctx_, [&](size_t i, Outcome o) { got.at(i) = std::move(o); });
  EXPECT_FALSE(got[0].ok);
  EXPECT_FALSE(got[0].retryable);
  EXPECT_NE(got[0].error.find("no such word here"), std::string::npos) << got[0].error;
  EXPECT_TRUE(got[1].ok) << got[1].error;
}

}  // namespace
}  // namespace spt::sigma
