// The residual projection as an intervention (gpt2::ResidualProjection, spec
// §7 D) in the engine, on a generated model: K = d_model is the identity,
// a partial projection equals the same thing written here as user hooks on
// the live stream (hook_resid_pre stores, hook_resid_post replaces), the
// fused nll_many equals one-at-a-time nll, and Δφ = attn_out + mlp_out.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>

#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"
#include "testmodel.h"

namespace spt::gpt2 {
namespace {

namespace fs = std::filesystem;

constexpr int kLayers = 3, kD = 32;

class Exp7Engine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("spt_exp7_engine_" + std::to_string(::getpid())));
    TestModelSpec spec;
    spec.n_layer = kLayers;
    spec.n_head = 4;
    spec.d_model = kD;
    spec.n_ctx = 64;
    spec.vocab = 500;
    spec.seed = 3;
    spec.std = 0.15f;
    write_test_model(dir_->string(), spec);
    model_ = load_model(dir_->string(), {}).release();
    at::manual_seed(1);
    for (int c = 0; c < 3; ++c) {
      const at::Tensor t = at::randint(0, 500, {40}, at::kLong);
      chunks_.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + 40);
    }
  }
  static void TearDownTestSuite() {
    delete model_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  // A random orthonormal basis (rows) and mean, one per block.
  static std::vector<at::Tensor> bases(int64_t seed) {
    at::manual_seed(seed);
    std::vector<at::Tensor> out;
    for (int l = 0; l < kLayers; ++l)
      out.push_back(std::get<0>(at::linalg_qr(at::randn({kD, kD}, at::kDouble))).t().to(at::kFloat).contiguous());
    return out;
  }
  static std::vector<at::Tensor> means(int64_t seed) {
    at::manual_seed(seed);
    std::vector<at::Tensor> out;
    for (int l = 0; l < kLayers; ++l) out.push_back(at::randn({kD}));
    return out;
  }
  static Variant projected(const std::vector<at::Tensor>& U, const std::vector<at::Tensor>& mu, int k) {
    Variant v;
    for (int l = 0; l < kLayers; ++l) {
      ResidualProjection p;
      p.layer = l;
      p.k = k;
      p.basis.assign(U[l].data_ptr<float>(), U[l].data_ptr<float>() + U[l].numel());
      p.mean.assign(mu[l].data_ptr<float>(), mu[l].data_ptr<float>() + kD);
      p.source = "test/" + std::to_string(l);
      v.projections.push_back(std::move(p));
    }
    return v;
  }

  static fs::path* dir_;
  static Model* model_;
  static Chunks chunks_;
};
fs::path* Exp7Engine::dir_ = nullptr;
Model* Exp7Engine::model_ = nullptr;
Chunks Exp7Engine::chunks_;

TEST_F(Exp7Engine, FullBasisIsTheIdentity) {
  const double base = model_->nll(chunks_, {}).nll;
  const NllSum full = model_->nll(chunks_, projected(bases(5), means(6), kD));
  EXPECT_NEAR(full.nll, base, 1e-5 * std::abs(base));
  const NllSum partial = model_->nll(chunks_, projected(bases(5), means(6), 4));
  EXPECT_GT(std::abs(partial.nll - base), 1e-3 * std::abs(base));  // the check above could fail
}

TEST_F(Exp7Engine, ProjectionEqualsHooksOnTheLiveStream) {
  const auto U = bases(7);
  const auto mu = means(8);
  const int k = 5;
  // The spec's hooks: store the incoming (already modified) stream, replace
  // the block's output by pre + ((post − pre − μ)·U_kᵀ·U_k + μ).
  std::vector<at::Tensor> pre(kLayers);
  std::vector<Hook> hooks;
  for (int l = 0; l < kLayers; ++l) {
    hooks.push_back({hook_name(l, "hook_resid_pre"), [&pre, l](const at::Tensor& x, const std::string&) {
                       pre[l] = x.clone();
                       return at::Tensor();
                     }});
    hooks.push_back({hook_name(l, "hook_resid_post"), [&, l](const at::Tensor& post, const std::string&) {
                       const at::Tensor Uk = U[l].narrow(0, 0, k).to(at::kDouble);
                       const at::Tensor m = mu[l].to(at::kDouble);
                       const at::Tensor p = pre[l].to(at::kDouble);
                       return (p + at::matmul(at::matmul(post.to(at::kDouble) - p - m, Uk.t()), Uk) + m).to(at::kFloat);
                     }});
  }
  const NllSum want = nll_with_hooks(*model_, chunks_, hooks);
  const NllSum got = model_->nll(chunks_, projected(U, mu, k));
  EXPECT_EQ(got.count, want.count);
  EXPECT_NEAR(got.nll, want.nll, 1e-5 * std::abs(want.nll));
}

TEST_F(Exp7Engine, FusedVariantsEqualOneAtATime) {
  const std::vector<Variant> vs = {
      {}, projected(bases(9), means(10), 3), projected(bases(9), means(10), kD), projected(bases(11), means(12), 16)};
  const auto many = model_->nll_many(chunks_, vs);
  ASSERT_EQ(many.size(), vs.size());
  for (size_t i = 0; i < vs.size(); ++i) {
    const NllSum one = model_->nll(chunks_, vs[i]);
    EXPECT_NEAR(many[i].nll, one.nll, 1e-5 * std::abs(one.nll)) << i;
  }
}

TEST_F(Exp7Engine, DphiIsAttnOutPlusMlpOut) {
  RunOptions o;
  o.logits = false;
  for (int l = 0; l < kLayers; ++l)
    for (const char* p : {"hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out"})
      o.cache.insert(hook_name(l, p));
  const RunResult r = run(*model_, tokens_tensor(chunks_[0]), o);
  for (int l = 0; l < kLayers; ++l) {
    const at::Tensor dphi = r.cache.at(hook_name(l, "hook_resid_post")) - r.cache.at(hook_name(l, "hook_resid_pre"));
    const at::Tensor sum = r.cache.at(hook_name(l, "hook_attn_out")) + r.cache.at(hook_name(l, "hook_mlp_out"));
    const double scale = dphi.abs().max().item<double>();
    EXPECT_GT(scale, 0);
    EXPECT_LE((dphi - sum).abs().max().item<double>(), 1e-5 * scale) << l;
  }
}

TEST_F(Exp7Engine, VariantJsonAndValidation) {
  Variant v = projected(bases(13), means(14), 4);
  const Variant back = variant_from_json(to_json(v));
  ASSERT_EQ(back.projections.size(), v.projections.size());
  EXPECT_EQ(back.projections[1].basis, v.projections[1].basis);
  EXPECT_EQ(back.projections[1].k, 4);
  EXPECT_EQ(back.projections[1].source, "test/1");
  EXPECT_EQ(back.min_layer(), 0);
  // A reference-only form (no data) parses, and the engine refuses to run it.
  nlohmann::json ref = {{"ops", nlohmann::json::array()}, {"projections", {{{"layer", 1}, {"k", 3}, {"source", "x"}}}}};
  const Variant r = variant_from_json(ref);
  EXPECT_THROW(model_->nll(chunks_, r), std::invalid_argument);
  EXPECT_THROW(variant_from_json({{"ops", nlohmann::json::array()}, {"projections", {{{"layer", 1}, {"k", 0}}}}}),
               std::invalid_argument);
  Variant bad = v;
  bad.projections[0].k = kD + 1;
  EXPECT_THROW(model_->nll(chunks_, bad), std::invalid_argument);
  bad = v;
  bad.projections[2].layer = kLayers;
  EXPECT_THROW(model_->nll(chunks_, bad), std::invalid_argument);
  bad = v;
  bad.projections[1].layer = 0;  // two on one block
  EXPECT_THROW(model_->nll(chunks_, bad), std::invalid_argument);
  EXPECT_THROW(generate(*model_, {1, 2}, v, {.max_new_tokens = 1}), std::invalid_argument);
}

}  // namespace
}  // namespace spt::gpt2
