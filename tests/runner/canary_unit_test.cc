// The numerics canary's unit on this machine's CPU against its reference:
// tests/data/golden/canary_reference.json, computed once by an independent
// float64 PyTorch forward (scripts/golden/make_canary_reference.py) from the
// same generated weights. Also checks that the constants the coordinator
// judges with (common/canary.cc) are that file's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "platform/canary_unit.h"
#include "spt/canary.h"

namespace spt {
namespace {

namespace fs = std::filesystem;

nlohmann::json golden() {
  std::ifstream in(std::string(SPT_TEST_DATA) + "/golden/canary_reference.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in);
}

class CanaryUnit : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/spt_canary_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CanaryUnit, CoordinatorConstantsAreTheGoldenOnes) {
  const auto g = golden();
  EXPECT_EQ(g["unit"], canary::kUnit);
  EXPECT_EQ(g["value"].get<double>(), canary::reference_value());
  EXPECT_EQ(g["weights_sha256"], canary::reference_weights_sha256());
  EXPECT_EQ(g["n_tokens"], 4 * 47);
}

TEST_F(CanaryUnit, WritesTheReferencedWeights) {
  // The same bytes every time and everywhere: the reference belongs to them.
  EXPECT_EQ(platform::canary_unit::write_model(dir_ + "/a"), canary::reference_weights_sha256());
  EXPECT_EQ(platform::canary_unit::write_model(dir_ + "/b"), canary::reference_weights_sha256());
}

TEST_F(CanaryUnit, CpuValuesMatchTheReference) {
  const double ref = golden()["value"].get<double>();
  const auto fp32 = platform::canary_unit::run("cpu", "fp32", dir_, 1);
  // Not ln(512) = 6.238: the logits spread, so kernels matter.
  EXPECT_GT(std::fabs(fp32.value - std::log(512.0)), 0.05) << fp32.value;
  EXPECT_NEAR(fp32.value, ref, 2e-5);  // well inside the fp32 tolerance
  EXPECT_TRUE(canary::judge(canary::kUnit, "fp32", fp32.value, "").pass);
  EXPECT_NE(fp32.device.find("cpu"), std::string::npos) << fp32.device;
  // bf16 matrix products on the CPU: inside the bf16 tolerance, and visibly
  // different from fp32 (the precision is really applied).
  const auto bf16 = platform::canary_unit::run("cpu", "bf16", dir_, 1);
  EXPECT_TRUE(canary::judge(canary::kUnit, "bf16", bf16.value, "").pass) << bf16.value << " vs " << ref;
  EXPECT_GT(std::fabs(bf16.value - fp32.value), 1e-6);
  EXPECT_THROW(platform::canary_unit::run("nosuchdevice", "fp32", dir_, 1), std::exception);
}

}  // namespace
}  // namespace spt
