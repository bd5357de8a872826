// TF32 settings follow the model of each forward, not the last model loaded
// (spec §1.6; issue 15 deviation 1). On the CPU the flags change no numbers,
// so the tests read LibTorch's global state from inside the forward (a user
// hook) and what the engine recorded for the model's last forward.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "precision.h"
#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"
#include "spt/util.h"

namespace spt::gpt2 {
namespace {

const std::string kDir = std::string(SPT_TEST_DATA) + "/golden/g1_f32_prefixed";

const MatmulFlags kOff{false, false, "highest"};
const MatmulFlags kOn{true, true, "high"};

void set_flags(const MatmulFlags& f) {
  at::globalContext().setAllowTF32CuBLAS(f.tf32_cublas);
  at::globalContext().setAllowTF32CuDNN(f.tf32_cudnn);
  at::globalContext().setFloat32MatmulPrecision(f.float32_matmul_precision);
}

std::string str(const MatmulFlags& f) {
  return std::string("cublas=") + (f.tf32_cublas ? "1" : "0") + " cudnn=" + (f.tf32_cudnn ? "1" : "0") +
         " matmul=" + f.float32_matmul_precision;
}

LoadOptions with_precision(Precision p) {
  LoadOptions o;
  o.precision = p;
  return o;
}

class PrecisionPerForward : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = matmul_flags();
    const nlohmann::json g = nlohmann::json::parse(read_file(std::string(SPT_TEST_DATA) + "/golden/golden.json"));
    for (const auto& row : g.at("models").at("g1_f32_prefixed").at("tokens"))
      chunks_.push_back(row.get<std::vector<int32_t>>());
    // The worker's situation: an fp32 model loaded first, a tf32 one after.
    fp32_ = load_model(kDir, with_precision(Precision::fp32));
    tf32_ = load_model(kDir, with_precision(Precision::tf32));
  }
  void TearDown() override { set_flags(saved_); }

  // The flags as the forward sees them, read by a hook in the middle of it.
  static std::vector<Hook> probe(std::vector<MatmulFlags>* seen, bool* cublas) {
    return {{hook_name(0, "attn.hook_z"), [seen, cublas](const at::Tensor&, const std::string&) {
               seen->push_back(matmul_flags());
               *cublas = at::globalContext().allowTF32CuBLAS();
               return at::Tensor();
             }}};
  }

  MatmulFlags saved_;
  Chunks chunks_;
  std::unique_ptr<Model> fp32_, tf32_;
};

TEST_F(PrecisionPerForward, FlagsForEachPrecision) {
  EXPECT_EQ(matmul_flags_for(Precision::fp32), kOff);
  EXPECT_EQ(matmul_flags_for(Precision::bf16), kOff);
  EXPECT_EQ(matmul_flags_for(Precision::tf32), kOn);
}

TEST_F(PrecisionPerForward, LoadingLeavesTheFlagsAlone) {
  for (const MatmulFlags& f : {kOn, kOff}) {
    set_flags(f);
    const auto m = load_model(kDir, with_precision(f == kOn ? Precision::fp32 : Precision::tf32));
    EXPECT_EQ(matmul_flags(), f) << str(matmul_flags());
  }
}

TEST_F(PrecisionPerForward, RunSeesItsModelsFlagsMidForward) {
  set_flags(kOn);  // what "the tf32 model was loaded last" used to leave behind
  std::vector<MatmulFlags> seen;
  bool cublas = true;
  RunOptions o;
  o.hooks = probe(&seen, &cublas);
  o.logits = false;
  run(*fp32_, tokens_tensor(chunks_[0]), o);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], kOff) << str(seen[0]);
  EXPECT_FALSE(cublas);
  EXPECT_EQ(matmul_flags(), kOn) << "restored after the forward";

  set_flags(kOff);
  seen.clear();
  run(*tf32_, tokens_tensor(chunks_[0]), o);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], kOn) << str(seen[0]);
  EXPECT_TRUE(cublas);
  EXPECT_EQ(matmul_flags(), kOff);
}

TEST_F(PrecisionPerForward, NllWithHooksSeesItsModelsFlags) {
  std::vector<MatmulFlags> seen;
  bool cublas = false;
  for (int i = 0; i < 2; ++i) {  // interleaved: fp32, tf32, fp32, tf32
    seen.clear();
    set_flags(kOn);
    nll_with_hooks(*fp32_, chunks_, probe(&seen, &cublas));
    ASSERT_FALSE(seen.empty());
    for (const auto& f : seen) EXPECT_EQ(f, kOff) << str(f);
    EXPECT_FALSE(cublas);
    seen.clear();
    set_flags(kOff);
    nll_with_hooks(*tf32_, chunks_, probe(&seen, &cublas));
    ASSERT_FALSE(seen.empty());
    for (const auto& f : seen) EXPECT_EQ(f, kOn) << str(f);
    EXPECT_TRUE(cublas);
  }
}

TEST_F(PrecisionPerForward, NllNllManyHeadSumsRecordTheirModelsFlags) {
  const Variant zero{{{0, 1, HeadOp::zero}}};
  set_flags(kOn);
  const NllSum a = fp32_->nll(chunks_, {});
  EXPECT_EQ(last_forward_flags(*fp32_), kOff) << str(last_forward_flags(*fp32_));
  EXPECT_EQ(matmul_flags(), kOn);

  set_flags(kOff);
  tf32_->nll_many(chunks_, {{}, zero});
  EXPECT_EQ(last_forward_flags(*tf32_), kOn) << str(last_forward_flags(*tf32_));
  EXPECT_EQ(matmul_flags(), kOff);

  set_flags(kOn);
  fp32_->nll_many(chunks_, {{}, zero});
  EXPECT_EQ(last_forward_flags(*fp32_), kOff);
  fp32_->head_z_sums(chunks_);
  EXPECT_EQ(last_forward_flags(*fp32_), kOff);
  set_flags(kOff);
  tf32_->head_z_sums(chunks_);
  EXPECT_EQ(last_forward_flags(*tf32_), kOn);

  // fp32-only use: the same numbers whatever ran in between (CPU: bit-identical).
  EXPECT_EQ(fp32_->nll(chunks_, {}).nll, a.nll);
}

TEST_F(PrecisionPerForward, WithWeightsKeepsThePrecision) {
  const auto t2 = with_weights(*tf32_, weights(*tf32_));
  const auto f2 = with_weights(*fp32_, weights(*fp32_));
  set_flags(kOff);
  t2->nll(chunks_, {});
  EXPECT_EQ(last_forward_flags(*t2), kOn);
  set_flags(kOn);
  f2->nll(chunks_, {});
  EXPECT_EQ(last_forward_flags(*f2), kOff);
}

}  // namespace
}  // namespace spt::gpt2
