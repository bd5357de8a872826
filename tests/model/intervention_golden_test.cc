// The engine's head interventions against an independent float64 reference
// (scripts/golden/make_exp10_golden.py → tests/data/golden/exp10_interventions.json):
// zero and mean ablation at hook_z, the relu / l1 / identity pattern
// replacements of spec §10.3, cumulative multi-head and mixed variants, ops at
// one query position, and the NaN → 0 step after the softmax, on the golden
// checkpoints g1_f32_prefixed (2 layers × 4 heads, d_head 16) and
// g2_f16_dhead32 (3 × 3, d_head 32).
//
// Tolerance. The engine computes in fp32, the reference in fp64 (the
// reference itself reproduces golden.json's HF numbers — clean, zero and mean
// ablation — to 1.1e-8). Measured |engine − reference| on the CPU (Debian
// LibTorch 1.13, OpenBLAS): at most 7.2e-8 over all 105 cases, fused and
// unfused; head means at most 6.0e-8. fp32 round-off of a mean NLL of ~6.26
// (eps·6.26 ≈ 7.5e-7 per log-prob at worst, averaged over 94 tokens) puts the
// expected error at 1e-7 or below on any backend; kTol = 5e-7 absolute
// (8e-8 relative) leaves ~7× headroom over the measurement. The brief's
// 1e-5 relative (6e-5 absolute) would be blind to most of these effects:
// single-head pattern replacements move the NLL by 1e-6…2.4e-3 here.
// Breaking relu (W = S' without the clamp; or relu normalised by Σ|S'|) or
// dropping the NaN → 0 step makes EveryCase… fail (checked by hand).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"
#include "spt/util.h"

namespace spt::gpt2 {
namespace {

const std::string kGoldenDir = std::string(SPT_TEST_DATA) + "/golden";
constexpr double kTol = 5e-7;        // |mean NLL engine − reference|
constexpr double kMeanTol = 1e-6;    // |head mean of hook_z engine − reference|

const nlohmann::json& interventions_json() {
  static const nlohmann::json j = nlohmann::json::parse(read_file(kGoldenDir + "/exp10_interventions.json"));
  return j;
}
const nlohmann::json& golden_json() {
  static const nlohmann::json j = nlohmann::json::parse(read_file(kGoldenDir + "/golden.json"));
  return j;
}

double mean_nll(const NllSum& s) { return s.nll / static_cast<double>(s.count); }

class InterventionGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    g_ = interventions_json().at("models").at(GetParam());
    model_ = load_model(kGoldenDir + "/" + GetParam(), {});
    for (const auto& row : golden_json().at("models").at(GetParam()).at("tokens"))
      chunks_.push_back(row.get<std::vector<int32_t>>());
    for (const auto& m : g_.at("head_means"))
      means_[{m.at("layer").get<int>(), m.at("head").get<int>()}] = m.at("values").get<std::vector<float>>();
  }

  Variant variant(const nlohmann::json& c) const {
    Variant v;
    for (const auto& o : c.at("ops")) {
      HeadIntervention h;
      h.layer = o.at("layer").get<int>();
      h.head = o.at("head").get<int>();
      h.op = parse_head_op(o.at("op").get<std::string>());
      h.position = o.value("position", -1);
      if (h.op == HeadOp::mean) h.values = means_.at({h.layer, h.head});
      v.ops.push_back(h);
    }
    return v;
  }

  // Cases that set score rows to −∞ need a hook at hook_attn_scores.
  static std::vector<Hook> hooks(const nlohmann::json& c) {
    if (!c.contains("neg_inf_rows")) return {};
    const auto& r = c.at("neg_inf_rows");
    const int64_t head = r.at("head").get<int64_t>();
    const std::vector<int64_t> rows = r.at("query_rows").get<std::vector<int64_t>>();
    return {{hook_name(r.at("layer").get<int>(), "attn.hook_attn_scores"),
             [head, rows](const at::Tensor& s, const std::string&) {
               at::Tensor out = s.clone();  // [B, H, Tq, Tk]
               for (int64_t q : rows) out.select(1, head).select(1, q).fill_(-std::numeric_limits<float>::infinity());
               return out;
             }}};
  }

  nlohmann::json g_;
  std::unique_ptr<Model> model_;
  Chunks chunks_;
  std::map<std::pair<int, int>, std::vector<float>> means_;
};

TEST_P(InterventionGolden, CleanMatchesReference) {
  const NllSum s = model_->nll(chunks_, {});
  EXPECT_EQ(s.count, g_.at("count").get<int64_t>());
  EXPECT_NEAR(mean_nll(s), g_.at("clean_mean_nll").get<double>(), kTol);
}

TEST_P(InterventionGolden, HeadMeansMatchReference) {
  // The mean-ablation values themselves: engine's head_z_sums vs the reference's
  // per-head mean of hook_z (no value bias, all rows and positions).
  const Config& c = model_->info().config;
  const Model::HeadSums sums = model_->head_z_sums(chunks_);
  EXPECT_EQ(sums.count, 2 * static_cast<int64_t>(chunks_[0].size()));
  double worst = 0;
  for (const auto& [lh, want] : means_) {
    const std::vector<float> got = sums.mean(lh.first, lh.second, c);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(double(got[i]) - double(want[i])));
  }
  EXPECT_LT(worst, kMeanTol);
  std::printf("[ %s ] head means: largest |engine - reference| = %.3g\n", GetParam().c_str(), worst);
}

TEST_P(InterventionGolden, EveryCaseMatchesReferenceFusedAndUnfused) {
  std::vector<Variant> fused_vs;
  std::vector<const nlohmann::json*> fused_cases;
  double worst = 0;
  std::string worst_label;
  for (const auto& c : g_.at("cases")) {
    const std::string label = c.at("label").get<std::string>();
    const double want = c.at("mean_nll").get<double>();
    const Variant v = variant(c);
    // Unfused: one plain forward per case (with the −∞ hook where the case has one).
    const double got = mean_nll(nll_with_hooks(*model_, chunks_, hooks(c), v));
    EXPECT_NEAR(got, want, kTol) << GetParam() << " " << label;
    if (!(std::abs(got - want) <= worst)) worst = std::abs(got - want), worst_label = label;  // NaN counts
    if (!c.contains("neg_inf_rows")) {
      fused_vs.push_back(v);
      fused_cases.push_back(&c);
    }
  }
  // Fused: all variants at once (prefix sharing, variants batched as rows).
  const std::vector<NllSum> res = model_->nll_many(chunks_, fused_vs);
  ASSERT_EQ(res.size(), fused_vs.size());
  for (size_t i = 0; i < res.size(); ++i) {
    const double want = fused_cases[i]->at("mean_nll").get<double>();
    EXPECT_NEAR(mean_nll(res[i]), want, kTol) << GetParam() << " fused " << fused_cases[i]->at("label");
    if (!(std::abs(mean_nll(res[i]) - want) <= worst))
      worst = std::abs(mean_nll(res[i]) - want), worst_label = "fused " + fused_cases[i]->at("label").get<std::string>();
  }
  std::printf("[ %s ] %zu cases, largest |engine - reference| = %.3g (%s)\n", GetParam().c_str(),
              g_.at("cases").size(), worst, worst_label.c_str());
}

TEST_P(InterventionGolden, CasesAreNotTrivial) {
  // The golden must be able to tell the methods apart: for some head each
  // pair of pattern ops differs from the other and from clean by ≫ kTol.
  std::map<std::string, double> nll;
  for (const auto& c : g_.at("cases")) nll[c.at("label").get<std::string>()] = c.at("mean_nll").get<double>();
  const double clean = g_.at("clean_mean_nll").get<double>();
  double relu_l1 = 0, relu_id = 0, l1_id = 0, relu_clean = 0;
  for (const auto& [label, v] : nll) {
    const auto sp = label.find(" attn_relu");
    if (sp == std::string::npos || label.find("position") != std::string::npos) continue;
    const std::string head = label.substr(0, sp);
    relu_l1 = std::max(relu_l1, std::abs(v - nll.at(head + " attn_l1")));
    relu_id = std::max(relu_id, std::abs(v - nll.at(head + " attn_identity")));
    l1_id = std::max(l1_id, std::abs(nll.at(head + " attn_l1") - nll.at(head + " attn_identity")));
    relu_clean = std::max(relu_clean, std::abs(v - clean));
  }
  for (double d : {relu_l1, relu_id, l1_id, relu_clean}) EXPECT_GT(d, 50 * kTol);
  EXPECT_GT(std::abs(nll.at("nan_rows L0H1") - clean), 5 * kTol);
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, InterventionGolden, ::testing::Values("g1_f32_prefixed", "g2_f16_dhead32"));

}  // namespace
}  // namespace spt::gpt2
