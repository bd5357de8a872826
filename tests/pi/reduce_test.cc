// exp9 A's reduce on hand-made profiles (torch-free): a model whose final
// σ collapsed falls back to σ at ⌊0.75 L⌋ — loudly (a note on the job, a
// warning in the document) and with h_source recorded per word — and the
// f(l) slopes are those of the profiles' exact linear structure.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include "pi/reduce.h"
#include "platform/prompts.h"
#include "sigma/common.h"

namespace spt::pi {
namespace {

using nlohmann::json;

// σ_p(l) = s_l · u_p: prompt p's strength u_p scales a depth profile s_l.
// `collapse` makes the final depth identical for every prompt.
JobSpec exp9a_job(bool collapse) {
  JobSpec j;
  j.name = "exp9/m/a";
  j.kind = "pi.reduce";
  j.params = {{"reduce", "exp9_a"}, {"label", "m"}, {"model", "m"}, {"n_layer", 4}, {"exp3ef", "none"}};
  const std::vector<double> s = {0.0, 0.2, 0.5, 0.9, 1.0};
  for (const auto& g : platform::prompt_sets().gradient) {
    j.inputs.push_back({sigma::dir_job("m", g.word), "sigma.direction", {{"d_model", 8}}});
    for (char side : {'A', 'B'}) {
      const auto& list = side == 'A' ? g.A : g.B;
      for (size_t i = 0; i < list.size(); ++i) {
        const double u = (side == 'A' ? 1.0 : -1.0) * (0.1 + 0.09 * i);
        std::vector<double> sig;
        for (size_t l = 0; l < s.size(); ++l) sig.push_back(collapse && l == 4 ? 0.3 : s[l] * u);
        j.inputs.push_back({sigma::grad_job("m", g.word, side, static_cast<int>(i)), "sigma.profile", {{"sigma", sig}}});
      }
    }
  }
  return j;
}

platform::ReduceContext context(const std::string& dir) {
  platform::ReduceContext rc;
  rc.out_dir = dir;
  rc.device = "cpu";
  return rc;
}

TEST(PiReduce, Exp9ACollapsedFinalSigmaFallsBackLoudly) {
  const std::string dir = std::filesystem::temp_directory_path() / ("spt_pi_reduce_" + std::to_string(::getpid()));
  const auto out = run_reduce(exp9a_job(true), context(dir));
  const json& d = out.result;
  EXPECT_EQ(d.at("source"), "measured");
  for (auto it = d.at("h_source").begin(); it != d.at("h_source").end(); ++it)
    EXPECT_EQ(*it, "sigma_at_0.75L") << it.key();
  EXPECT_EQ(d.at("warnings").size(), 4u);
  ASSERT_FALSE(out.notes.empty());
  EXPECT_NE(out.notes.front().find("WARNING exp9 A m/"), std::string::npos);
  EXPECT_LT(d.at("h_range").at("rock").at("final").get<double>(), 1e-4);
  // h = σ(3)/max|σ(3)| = u/max|u|, so f(l) = s_l·max|u| for l < 4 and
  // g = f/f_max = s_l/s_3: 0, 0.2/0.9, 0.5/0.9, 1, then the collapsed depth.
  const auto& g = d.at("g_per_word").at("rock");
  EXPECT_NEAR(g[0].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(g[1].get<double>(), 0.2 / 0.9, 1e-12);
  EXPECT_NEAR(g[3].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(g[4].get<double>(), 0.0, 1e-12);  // constant σ at depth L: zero slope
  std::filesystem::remove_all(dir);
}

TEST(PiReduce, Exp9AHealthyProfilesNeedNoFallback) {
  const std::string dir = std::filesystem::temp_directory_path() / ("spt_pi_reduce2_" + std::to_string(::getpid()));
  const auto out = run_reduce(exp9a_job(false), context(dir));
  const json& d = out.result;
  for (auto it = d.at("h_source").begin(); it != d.at("h_source").end(); ++it) EXPECT_EQ(*it, "final_sigma");
  EXPECT_TRUE(d.at("warnings").empty());
  const auto& g = d.at("g_mean");
  EXPECT_NEAR(g[2].get<double>(), 0.5, 1e-12);  // g = s_l / s_L
  EXPECT_NEAR(g[4].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(d.at("d_model").get<int>(), 8);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace spt::pi
