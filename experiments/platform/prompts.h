#pragma once
// The prompt sets of the studied project (spec §1.5, §3, §4, §5), torch-free.
//
// experiments/data/prompts.json is compiled into the library (platform/
// probe.cmake turns it into a byte array at configure time), so the
// coordinator plans from it with no file at run time. Its keys:
//   DIRECTION_PROMPTS  word → {word, interpretation_A/B, prompts_A/B}
//   EXPERIMENT_PROMPTS word → {label → prompt}   (neutral, weak_A, weak_B, strong_A, strong_B)
//   GRADIENT_PROMPTS   word → {A: [...], B: [...]}  (weak → strong context)
//   legacy_v1.AMBIGUOUS_WORDS word → {word, interpretation_A/B, prompt_A/B, prompts: {label → prompt}}
//
// Key ORDER is part of the data (exp1 v2 / exp2 iterate words in
// DIRECTION_PROMPTS order, conditions in file order), so every collection
// below keeps the file's order. Prompts are the exact strings of the file,
// without BOS; callers prepend it (probe.h does).
//
// All types are plain values; prompt_sets() is immutable after first use and
// safe to call from several threads at once.
#include <string>
#include <vector>

namespace spt::platform {

struct DirectionSet {
  std::string word, interpretation_A, interpretation_B;
  std::vector<std::string> prompts_A, prompts_B;
};

struct Condition {
  std::string label;  // neutral | weak_A | weak_B | strong_A | strong_B (file order)
  std::string text;
};

struct ExperimentSet {
  std::string word;
  std::vector<Condition> conditions;  // file order
};

// 10 prompts per side, ordered weak → strong; A/B = interpretation_A/B of
// the word's DirectionSet. A[0] == B[0] (the neutral "the <word>").
struct GradientSet {
  std::string word;
  std::vector<std::string> A, B;
};

// exp1 v1 (spec §3.1): one prompt per meaning; targets searched forwards.
struct LegacyWord {
  std::string word, interpretation_A, interpretation_B, prompt_A, prompt_B;
  std::vector<Condition> conditions;  // file order
};

struct PromptSets {
  std::vector<DirectionSet> direction;    // DIRECTION_PROMPTS, key order
  std::vector<ExperimentSet> experiment;  // EXPERIMENT_PROMPTS, key order
  std::vector<GradientSet> gradient;      // GRADIENT_PROMPTS, key order
  std::vector<LegacyWord> legacy_v1;      // legacy_v1.AMBIGUOUS_WORDS, key order
  std::string sha256;                     // hex, of the parsed file's bytes

  // Lookups by word. Throw std::out_of_range naming the word and the known
  // ones (and, for condition(), the label and the known labels).
  const DirectionSet& direction_for(const std::string& word) const;
  const ExperimentSet& experiment_for(const std::string& word) const;
  const Condition& condition(const std::string& word, const std::string& label) const;
  const GradientSet& gradient_for(const std::string& word) const;
  const LegacyWord& legacy_for(const std::string& word) const;

  // Words of each set, in file order.
  std::vector<std::string> direction_words() const;
  std::vector<std::string> gradient_words() const;
  std::vector<std::string> legacy_words() const;
};

// The embedded copy of experiments/data/prompts.json, parsed on first use.
const PromptSets& prompt_sets();
// The embedded file's exact bytes (for provenance and for writing it out).
const std::string& embedded_prompts_json();

// Parses a prompts.json text. Throws std::runtime_error on malformed JSON
// or a missing/mistyped key, naming its path (e.g.
// "prompts.json: missing key DIRECTION_PROMPTS.bank.prompts_A"), or when a
// set's "word" field disagrees with its key.
PromptSets parse_prompt_sets(const std::string& json_text);

}  // namespace spt::platform
