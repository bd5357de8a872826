// The engine against Hugging Face's own numbers (tests/data/golden, made by
// transformers in fp32): loss, log-probabilities, residual stream, attention
// pattern, hook_z and per-head ablations, for three checkpoints (F32 with
// "transformer." keys; F16 with d_head 32; BF16 legacy keys with mask buffers).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"
#include "spt/util.h"

namespace spt::gpt2 {
namespace {

const std::string kGolden = std::string(SPT_TEST_DATA) + "/golden";

const nlohmann::json& golden_json() {
  static const nlohmann::json j = nlohmann::json::parse(read_file(kGolden + "/golden.json"));
  return j;
}

std::vector<double> vec(const at::Tensor& t) {
  const at::Tensor d = t.to(at::kCPU).to(at::kDouble).contiguous().reshape({-1});
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::vector<double> log_softmax(const std::vector<double>& x) {
  double mx = -INFINITY;
  for (double v : x) mx = std::max(mx, v);
  double s = 0;
  for (double v : x) s += std::exp(v - mx);
  std::vector<double> out;
  for (double v : x) out.push_back(v - mx - std::log(s));
  return out;
}

LoadOptions processing(bool on) {
  LoadOptions o;
  o.processing = on ? Processing{} : Processing{false, false, false, false};
  return o;
}

class Golden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    g_ = golden_json().at("models").at(GetParam());
    dir_ = kGolden + "/" + GetParam();
    tl_ = load_model(dir_, processing(true));
    hf_ = load_model(dir_, processing(false));
    for (const auto& row : g_.at("tokens")) chunks_.push_back(row.get<std::vector<int32_t>>());
    tokens_ = at::empty({2, static_cast<int64_t>(chunks_[0].size())}, at::kLong);
    for (int r = 0; r < 2; ++r)
      for (size_t i = 0; i < chunks_[0].size(); ++i) tokens_[r][static_cast<int64_t>(i)] = chunks_[r][i];
  }
  const Config& cfg() const { return tl_->info().config; }
  double mean_nll(const NllSum& s) const { return s.nll / static_cast<double>(s.count); }

  nlohmann::json g_;
  std::string dir_;
  std::unique_ptr<Model> tl_, hf_;
  Chunks chunks_;
  at::Tensor tokens_;
};

TEST_P(Golden, MeanNllMatchesHf) {
  const double want = g_.at("mean_nll").get<double>();
  EXPECT_NEAR(mean_nll(tl_->nll(chunks_, {})), want, 1e-5);
  EXPECT_NEAR(mean_nll(hf_->nll(chunks_, {})), want, 1e-5);
  EXPECT_EQ(tl_->nll(chunks_, {}).count, 2 * 47);
}

TEST_P(Golden, LogProbsMatchHfAtGivenPositions) {
  for (auto* m : {tl_.get(), hf_.get()}) {
    const RunResult r = run(*m, tokens_);
    ASSERT_EQ(r.logits.sizes(), (std::vector<int64_t>{2, 48, cfg().vocab}));
    for (const auto& [key, logits] : g_.at("logits").items()) {
      const int row = std::stoi(key.substr(0, key.find(',')));
      const int pos = std::stoi(key.substr(key.find(',') + 1));
      const auto ours = log_softmax(vec(r.logits[row][pos]));
      const auto want = log_softmax(logits.get<std::vector<double>>());
      EXPECT_LT(max_abs_diff(ours, want), 1e-5) << key;
    }
  }
}

TEST_P(Golden, ResidualStreamIsHfHiddenStatesMinusTheirMean) {
  RunOptions o;
  o.logits = false;
  for (int l = 0; l < cfg().n_layer; ++l) o.cache.insert(hook_name(l, "hook_resid_pre"));
  o.cache.insert("ln_final.hook_normalized");
  const RunResult r = run(*tl_, tokens_, o);
  const auto& hs = g_.at("hidden_states_pos5_row0");
  ASSERT_EQ(hs.size(), static_cast<size_t>(cfg().n_layer + 1));
  for (int l = 0; l < cfg().n_layer; ++l) {
    auto want = hs[static_cast<size_t>(l)].get<std::vector<double>>();
    double mean = 0;
    for (double v : want) mean += v / static_cast<double>(want.size());
    for (double& v : want) v -= mean;
    const auto ours = vec(r.cache.at(hook_name(l, "hook_resid_pre"))[0][5]);
    EXPECT_LT(max_abs_diff(ours, want), 1e-4) << "layer " << l;
    double our_mean = 0;
    for (double v : ours) our_mean += v / static_cast<double>(ours.size());
    EXPECT_NEAR(our_mean, 0.0, 1e-5);
  }
  // After ln_f: the unprocessed model's LayerNorm output is HF's directly;
  // the processed one is LNPre, i.e. HF's before γ_f, β_f.
  const auto want_last = hs.back().get<std::vector<double>>();
  const RunResult rh = run(*hf_, tokens_, o);
  EXPECT_LT(max_abs_diff(vec(rh.cache.at("ln_final.hook_normalized")[0][5]), want_last), 1e-4);
  const Weights& raw = weights(*hf_);
  const at::Tensor affine = r.cache.at("ln_final.hook_normalized")[0][5] * raw.lnf_w + raw.lnf_b;
  EXPECT_LT(max_abs_diff(vec(affine), want_last), 1e-4);
}

TEST_P(Golden, AttentionPatternMatchesHf) {
  RunOptions o;
  o.logits = false;
  o.cache = {hook_name(0, "attn.hook_pattern")};
  for (auto* m : {tl_.get(), hf_.get()}) {
    const at::Tensor p = run(*m, tokens_, o).cache.at(hook_name(0, "attn.hook_pattern"));
    const auto& want = g_.at("attn_layer0_head1_row0_q0to7");
    for (size_t q = 0; q < want.size(); ++q)
      EXPECT_LT(max_abs_diff(vec(p[0][1][static_cast<int64_t>(q)]), want[q].get<std::vector<double>>()), 1e-5)
          << "query " << q;
  }
}

TEST_P(Golden, HookZIsHfZWithoutTheFoldedValueBias) {
  RunOptions o;
  o.logits = false;
  o.cache = {hook_name(1, "attn.hook_z")};
  const auto want = g_.at("z_layer1_row0_pos5").get<std::vector<double>>();
  // Processing off: hook_z is HF's c_proj input, value bias included.
  const at::Tensor z_hf = run(*hf_, tokens_, o).cache.at(hook_name(1, "attn.hook_z"))[0][5];
  EXPECT_LT(max_abs_diff(vec(z_hf), want), 1e-5);
  // Processed (N3): z_TL = z_HF − (β1·Wv_h + bv_h).
  const BlockWeights& b = weights(*hf_).blocks[1];
  const at::Tensor bias = at::matmul(b.ln1_b, b.W_V) + b.b_V;  // [H, d_head]
  const at::Tensor z_tl = run(*tl_, tokens_, o).cache.at(hook_name(1, "attn.hook_z"))[0][5];
  EXPECT_LT(max_abs_diff(vec(z_tl + bias), want), 1e-5);
}

TEST_P(Golden, HeadAblationsMatchHf) {
  const auto& heads = g_.at("heads");
  ASSERT_EQ(heads.size(), static_cast<size_t>(cfg().n_layer * cfg().n_head));
  const Model::HeadSums sums = tl_->head_z_sums(chunks_);
  EXPECT_EQ(sums.count, 2 * 48);
  std::vector<Variant> zero, mean;
  for (const auto& h : heads) {
    const int l = h.at("layer"), hd = h.at("head");
    zero.push_back({{HeadIntervention{l, hd, HeadOp::zero}}});
    HeadIntervention m{l, hd, HeadOp::mean};
    m.values = sums.mean(l, hd, cfg());
    mean.push_back({{m}});
  }
  const auto z_tl = tl_->nll_many(chunks_, zero);
  const auto z_hf = hf_->nll_many(chunks_, zero);  // unprocessed: zeroing the c_proj input slice
  const auto m_tl = tl_->nll_many(chunks_, mean);
  for (size_t i = 0; i < heads.size(); ++i) {
    EXPECT_NEAR(mean_nll(z_tl[i]), heads[i].at("nll_zero_tl").get<double>(), 1e-5) << heads[i].dump();
    EXPECT_NEAR(mean_nll(z_hf[i]), heads[i].at("nll_zero_hf").get<double>(), 1e-5) << heads[i].dump();
    EXPECT_NEAR(mean_nll(m_tl[i]), heads[i].at("nll_mean").get<double>(), 1e-5) << heads[i].dump();
  }
  // "replace" with the folded value bias on the unprocessed model is the TL zero-ablation.
  const BlockWeights& b = weights(*hf_).blocks[0];
  const at::Tensor bias = (at::matmul(b.ln1_b, b.W_V) + b.b_V).contiguous();
  HeadIntervention rep{0, 1, HeadOp::replace};
  rep.values.assign(bias[1].data_ptr<float>(), bias[1].data_ptr<float>() + cfg().d_head);
  EXPECT_NEAR(mean_nll(hf_->nll(chunks_, {{rep}})), heads[1].at("nll_zero_tl").get<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Hf, Golden,
                         ::testing::Values("g1_f32_prefixed", "g2_f16_dhead32", "g3_bf16_legacy_keys"));

}  // namespace
}  // namespace spt::gpt2
