// The embedded prompt sets: counts and order as in experiments/data/
// prompts.json, the same bytes, lookups, malformed-file errors, and the
// spec §1.5 token-count table with the real GPT-2 tokenizer.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "platform/prompts.h"
#include "spt/hash.h"

namespace spt::platform {
namespace {

using Json = nlohmann::ordered_json;

const std::vector<std::string> kWords = {"bank", "bat", "crane", "spring", "rock", "match", "light", "pitcher", "bass"};
const std::vector<std::string> kLabels = {"neutral", "weak_A", "weak_B", "strong_A", "strong_B"};

std::string file_bytes() {
  std::ifstream f(SPT_PROMPTS_JSON, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The message of the std::runtime_error parse_prompt_sets throws for `j`.
std::string parse_error(const std::string& text) {
  try {
    parse_prompt_sets(text);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Prompts, EmbeddedCopyIsTheFile) {
  const std::string bytes = file_bytes();
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(embedded_prompts_json(), bytes);
  EXPECT_EQ(prompt_sets().sha256, sha256_hex(bytes));
  EXPECT_EQ(prompt_sets().sha256.size(), 64u);
}

TEST(Prompts, DirectionSetsInKeyOrder) {
  const PromptSets& s = prompt_sets();
  EXPECT_EQ(s.direction_words(), kWords);
  for (const auto& d : s.direction) {
    EXPECT_EQ(d.prompts_A.size(), 5u) << d.word;
    EXPECT_EQ(d.prompts_B.size(), 5u) << d.word;
    EXPECT_FALSE(d.interpretation_A.empty());
  }
  const DirectionSet& bank = s.direction_for("bank");
  EXPECT_EQ(bank.interpretation_A, "finance");
  EXPECT_EQ(bank.interpretation_B, "river");
  EXPECT_EQ(bank.prompts_A.front(), "I deposited money at the bank");
  EXPECT_EQ(bank.prompts_B.back(), "Trees grew along the creek bank");
  EXPECT_EQ(s.direction_for("bass").interpretation_A, "fish");
}

TEST(Prompts, ExperimentConditionsInFileOrder) {
  const PromptSets& s = prompt_sets();
  ASSERT_EQ(s.experiment.size(), 9u);
  for (size_t i = 0; i < kWords.size(); ++i) {
    EXPECT_EQ(s.experiment[i].word, kWords[i]);
    ASSERT_EQ(s.experiment[i].conditions.size(), 5u);
    for (size_t j = 0; j < kLabels.size(); ++j) EXPECT_EQ(s.experiment[i].conditions[j].label, kLabels[j]);
  }
  EXPECT_EQ(s.condition("bank", "neutral").text, "She arrived at the bank");
  EXPECT_EQ(s.condition("light", "strong_B").text, s.experiment_for("light").conditions[4].text);
}

TEST(Prompts, GradientSets) {
  const PromptSets& s = prompt_sets();
  EXPECT_EQ(s.gradient_words(), (std::vector<std::string>{"rock", "spring", "bass", "light"}));
  for (const auto& g : s.gradient) {
    ASSERT_EQ(g.A.size(), 10u) << g.word;
    ASSERT_EQ(g.B.size(), 10u) << g.word;
    // The neutral first prompt is the same string on both sides.
    EXPECT_EQ(g.A[0], "the " + g.word);
    EXPECT_EQ(g.B[0], g.A[0]);
  }
  EXPECT_EQ(s.gradient_for("rock").A[9], "the geologist examined the sedimentary rock");
  EXPECT_EQ(s.gradient_for("rock").B[1], "listen to the rock");
}

TEST(Prompts, LegacyV1) {
  const PromptSets& s = prompt_sets();
  EXPECT_EQ(s.legacy_words(), (std::vector<std::string>{"bank", "bat", "crane"}));
  for (const auto& w : s.legacy_v1) {
    ASSERT_EQ(w.conditions.size(), 5u);
    for (size_t j = 0; j < kLabels.size(); ++j) EXPECT_EQ(w.conditions[j].label, kLabels[j]);
  }
  const LegacyWord& bat = s.legacy_for("bat");
  EXPECT_EQ(bat.prompt_A, "The bat hung upside down in the dark cave");
  EXPECT_EQ(bat.conditions[2].text, "He swung the bat at");
  EXPECT_EQ(bat.interpretation_B, "sports");
}

TEST(Prompts, UnknownWordsNameTheKnownOnes) {
  const PromptSets& s = prompt_sets();
  try {
    s.direction_for("banana");
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("\"banana\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bank, bat, crane"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.gradient_for("bank"), std::out_of_range);
  EXPECT_THROW(s.legacy_for("rock"), std::out_of_range);
  EXPECT_THROW(s.experiment_for(""), std::out_of_range);
  try {
    s.condition("bank", "medium_A");
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("medium_A"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("strong_B"), std::string::npos) << e.what();
  }
}

TEST(Prompts, ParsedOnceFromAnyThread) {
  std::vector<const PromptSets*> seen(8);
  std::vector<std::thread> ts;
  for (size_t i = 0; i < seen.size(); ++i) ts.emplace_back([&seen, i] { seen[i] = &prompt_sets(); });
  for (auto& t : ts) t.join();
  for (const auto* p : seen) EXPECT_EQ(p, &prompt_sets());
}

TEST(Prompts, KeyOrderIsTheFilesNotAlphabetical) {
  Json j = Json::parse(file_bytes());
  Json d = Json::object();
  d["zeta"] = j["DIRECTION_PROMPTS"]["bank"];
  d["zeta"]["word"] = "zeta";
  d["alpha"] = j["DIRECTION_PROMPTS"]["bat"];
  d["alpha"]["word"] = "alpha";
  j["DIRECTION_PROMPTS"] = d;
  Json e = Json::object();
  e["strong_B"] = "x";
  e["neutral"] = "y";
  j["EXPERIMENT_PROMPTS"] = Json::object({{"zeta", e}});
  const std::string text = j.dump();
  const PromptSets s = parse_prompt_sets(text);
  EXPECT_EQ(s.direction_words(), (std::vector<std::string>{"zeta", "alpha"}));
  EXPECT_EQ(s.experiment_for("zeta").conditions[0].label, "strong_B");
  EXPECT_EQ(s.sha256, sha256_hex(text));
}

TEST(Prompts, MalformedFilesNameTheProblem) {
  const Json good = Json::parse(file_bytes());
  auto with = [&](const std::function<void(Json&)>& edit) {
    Json j = good;
    edit(j);
    return parse_error(j.dump());
  };
  EXPECT_NE(parse_error("{\"DIRECTION_PROMPTS\": ").find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error("[1, 2]").find("top level"), std::string::npos);
  EXPECT_NE(with([](Json& j) { j.erase("DIRECTION_PROMPTS"); }).find("missing key DIRECTION_PROMPTS"),
            std::string::npos);
  EXPECT_NE(with([](Json& j) { j["DIRECTION_PROMPTS"]["bank"].erase("prompts_A"); })
                .find("missing key DIRECTION_PROMPTS.bank.prompts_A"),
            std::string::npos);
  EXPECT_NE(with([](Json& j) { j["DIRECTION_PROMPTS"]["bat"]["prompts_B"] = "oops"; })
                .find("DIRECTION_PROMPTS.bat.prompts_B"),
            std::string::npos);
  EXPECT_NE(with([](Json& j) { j["DIRECTION_PROMPTS"]["bat"]["prompts_B"][3] = 7; })
                .find("DIRECTION_PROMPTS.bat.prompts_B[3]"),
            std::string::npos);
  EXPECT_NE(with([](Json& j) { j["DIRECTION_PROMPTS"]["crane"]["word"] = "heron"; }).find("heron"),
            std::string::npos);
  EXPECT_NE(with([](Json& j) { j["EXPERIMENT_PROMPTS"]["rock"]["weak_A"] = 1; })
                .find("EXPERIMENT_PROMPTS.rock.weak_A"),
            std::string::npos);
  EXPECT_NE(with([](Json& j) { j["GRADIENT_PROMPTS"]["light"].erase("B"); })
                .find("missing key GRADIENT_PROMPTS.light.B"),
            std::string::npos);
  EXPECT_NE(with([](Json& j) { j.erase("legacy_v1"); }).find("missing key legacy_v1"), std::string::npos);
  EXPECT_NE(with([](Json& j) { j["legacy_v1"]["AMBIGUOUS_WORDS"]["bat"].erase("prompts"); })
                .find("missing key legacy_v1.AMBIGUOUS_WORDS.bat.prompts"),
            std::string::npos);
  EXPECT_NE(with([](Json& j) { j["legacy_v1"]["AMBIGUOUS_WORDS"]["bank"].erase("prompt_B"); })
                .find("missing key legacy_v1.AMBIGUOUS_WORDS.bank.prompt_B"),
            std::string::npos);
}

// Spec §1.5: token counts including BOS of EXPERIMENT_PROMPTS, in
// neutral, weak_A, weak_B, strong_A, strong_B order.
TEST(Prompts, TokenCountsOfSpecTable) {
  const std::map<std::string, std::vector<size_t>> table = {
      {"bank", {6, 9, 10, 11, 14}}, {"bat", {5, 9, 9, 16, 13}},    {"crane", {6, 8, 9, 12, 12}},
      {"spring", {6, 8, 7, 13, 8}}, {"rock", {5, 9, 8, 8, 9}},     {"match", {5, 9, 8, 7, 9}},
      {"light", {5, 10, 7, 9, 11}}, {"pitcher", {6, 7, 7, 9, 7}}, {"bass", {5, 8, 8, 11, 11}},
  };
  const Tokenizer tok = Tokenizer::default_gpt2();
  int n = 0;
  for (const auto& e : prompt_sets().experiment) {
    const auto& want = table.at(e.word);
    for (size_t j = 0; j < e.conditions.size(); ++j, ++n)
      EXPECT_EQ(1 + tok.encode(e.conditions[j].text).size(), want[j]) << e.word << " " << e.conditions[j].label;
  }
  EXPECT_EQ(n, 45);
}

}  // namespace
}  // namespace spt::platform
