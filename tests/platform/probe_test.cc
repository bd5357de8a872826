// probe(): target positions with the real GPT-2 tokenizer (spec §1.5), hook
// reads at the target equal to one-prompt-at-a-time engine runs whatever the
// batching, and the logit lens equal to a direct ATen computation from the
// processed weights.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include <unistd.h>

#include "model/testmodel.h"
#include "platform/probe.h"
#include "platform/prompts.h"
#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"

namespace spt::platform {
namespace {

namespace fs = std::filesystem;
using gpt2::Model;

fs::path temp_root() { return fs::temp_directory_path() / ("spt_probe_test_" + std::to_string(::getpid())); }

class Cleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(temp_root()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

const Tokenizer& gpt2_tok() {
  static const Tokenizer t = Tokenizer::default_gpt2();
  return t;
}

std::string lower_stripped(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\n");
  std::string r = b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::vector<int32_t> with_bos(const std::string& text) {
  std::vector<int32_t> ids = {50256};
  const auto body = gpt2_tok().encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

// ---- targets (real tokenizer) ------------------------------------------------

TEST(FindTarget, All215PromptsEndInTheirWord) {
  const std::map<std::string, int32_t> ids = {{"bank", 3331},  {"bat", 7365},    {"crane", 41175},
                                              {"spring", 6076}, {"rock", 3881},   {"match", 2872},
                                              {"light", 1657},  {"pitcher", 18086}, {"bass", 12702}};
  const PromptSets& s = prompt_sets();
  int n = 0;
  auto check = [&](const std::string& word, const std::string& text) {
    const auto toks = with_bos(text);
    const int t = find_target(gpt2_tok(), toks, word);
    EXPECT_EQ(t, static_cast<int>(toks.size()) - 1) << text;
    EXPECT_EQ(lower_stripped(gpt2_tok().token_str(toks[t])), word) << text;  // exact, not substring
    EXPECT_EQ(toks[t], ids.at(word)) << text;
    ++n;
  };
  for (const auto& d : s.direction)
    for (const auto* v : {&d.prompts_A, &d.prompts_B})
      for (const auto& p : *v) check(d.word, p);
  for (const auto& e : s.experiment)
    for (const auto& c : e.conditions) check(e.word, c.text);
  for (const auto& g : s.gradient)
    for (const auto* v : {&g.A, &g.B})
      for (const auto& p : *v) check(g.word, p);
  EXPECT_EQ(n, 90 + 45 + 80);
}

TEST(FindTarget, BackwardsByDefaultForwardsForV1) {
  const auto toks = with_bos("Sunlight cast a golden light");
  ASSERT_EQ(toks.size(), 7u);  // [BOS, "Sun", "light", " cast", " a", " golden", " light"]
  EXPECT_EQ(find_target(gpt2_tok(), toks, "light"), 6);
  EXPECT_EQ(find_target(gpt2_tok(), toks, "light", /*forwards=*/true), 2);
  EXPECT_EQ(find_target(gpt2_tok(), toks, "LIGHT"), 6);  // the word is lower-cased too
  // "The bat" puts the target at position 2 (spec §1.5, exp1_basic.md).
  EXPECT_EQ(find_target(gpt2_tok(), with_bos("The bat"), "bat", true), 2);
}

TEST(FindTarget, LegacyV1PromptsResolveForwards) {
  const std::map<std::string, int32_t> ids = {{"bank", 3331}, {"bat", 7365}, {"crane", 41175}};
  for (const auto& w : prompt_sets().legacy_v1) {
    std::vector<std::string> texts = {w.prompt_A, w.prompt_B};
    for (const auto& c : w.conditions) texts.push_back(c.text);
    for (const auto& text : texts) {
      const auto toks = with_bos(text);
      const int t = find_target(gpt2_tok(), toks, w.word, true);
      EXPECT_EQ(toks[t], ids.at(w.word)) << text;
      for (int i = 0; i < t; ++i) EXPECT_NE(lower_stripped(gpt2_tok().token_str(toks[i])), w.word) << text;
    }
  }
  // Not every legacy prompt ends in its word.
  const auto toks = with_bos(prompt_sets().legacy_for("bat").prompt_A);
  EXPECT_LT(find_target(gpt2_tok(), toks, "bat", true), static_cast<int>(toks.size()) - 1);
}

TEST(FindTarget, SubstringFallbackAndErrors) {
  // No exact match: the last token containing the word.
  const auto toks = with_bos("The banks and the bankers");
  const int t = find_target(gpt2_tok(), toks, "bank");
  EXPECT_NE(gpt2_tok().token_str(toks[t]).find("bank"), std::string::npos);
  for (int i = t + 1; i < static_cast<int>(toks.size()); ++i)
    EXPECT_EQ(gpt2_tok().token_str(toks[i]).find("bank"), std::string::npos);
  EXPECT_LT(find_target(gpt2_tok(), toks, "bank", true), t);

  try {
    find_target(gpt2_tok(), with_bos("The river flows"), "bank");
    FAIL();
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("\"bank\""), std::string::npos) << m;
    EXPECT_NE(m.find("The river flows"), std::string::npos) << m;
    EXPECT_NE(m.find("\" river\""), std::string::npos) << m;  // lists the tokens
  }
  EXPECT_THROW(find_target(gpt2_tok(), with_bos("The bank"), ""), std::invalid_argument);
}

// ---- reads on a generated model ------------------------------------------------

std::string model_dir() {
  const fs::path p = temp_root() / "m3";
  if (!fs::exists(p / "model.safetensors")) {
    gpt2::TestModelSpec s;
    s.n_layer = 3;
    s.n_head = 4;
    s.d_model = 64;
    s.d_mlp = 128;
    s.n_ctx = 128;
    s.seed = 7;
    s.std = 0.1f;
    gpt2::write_test_model(p.string(), s);
  }
  return p.string();
}

Model& model(bool fold_ln = true) {
  static std::map<bool, std::unique_ptr<Model>> ms;
  auto& m = ms[fold_ln];
  if (!m) {
    gpt2::LoadOptions o;
    o.processing.fold_ln = fold_ln;
    // e.g. SPT_TEST_DEVICE=cuda to run these checks on a GPU.
    if (const char* d = std::getenv("SPT_TEST_DEVICE")) o.device = d;
    m = gpt2::load_model(model_dir(), o);
  }
  return *m;
}

// Seven prompts of different lengths, all ending in "bank", one twice as
// long as the rest, in no particular length order.
std::vector<std::string> seven_prompts() {
  const auto& d = prompt_sets().direction_for("bank");
  return {d.prompts_A[1], d.prompts_B[0], "The bank", d.prompts_A[4],
          "By the river, under willows, past the mill and the old stone bridge, we walked to the bank",
          d.prompts_B[3], d.prompts_A[0]};
}

const std::vector<std::string> kHooks = {kResidDepths, "blocks.1.attn.hook_z", "blocks.2.attn.hook_pattern",
                                         "blocks.0.attn.hook_attn_scores", "hook_embed", "blocks.1.mlp.hook_post"};

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      EXPECT_EQ(a[i], b[i]) << "at " << i;
      continue;
    }
    m = std::max(m, std::abs(a[i] - b[i]));
  }
  return m;
}

std::vector<float> to_vec(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

TEST(Probe, ReadsEqualOnePromptAtATimeRuns) {
  Model& m = model();
  const gpt2::Config& c = m.info().config;
  const auto prompts = seven_prompts();
  ProbeRequest req;
  req.prompts = prompts;
  req.word = "bank";
  req.hooks = kHooks;
  const ProbeResult r = probe(m, gpt2_tok(), req);
  EXPECT_EQ(r.forwards, 1);
  ASSERT_EQ(r.tokens.size(), 7u);
  int64_t t_max = 0;
  for (const auto& t : r.tokens) t_max = std::max<int64_t>(t_max, static_cast<int64_t>(t.size()));

  EXPECT_EQ(r.reads.at(kResidDepths).shape, (std::vector<int64_t>{7, c.n_layer + 1, c.d_model}));
  EXPECT_EQ(r.reads.at("blocks.1.attn.hook_z").shape, (std::vector<int64_t>{7, c.n_head, c.d_head}));
  EXPECT_EQ(r.reads.at("blocks.2.attn.hook_pattern").shape, (std::vector<int64_t>{7, c.n_head, t_max}));
  EXPECT_EQ(r.reads.at("hook_embed").shape, (std::vector<int64_t>{7, c.d_model}));
  EXPECT_EQ(r.reads.at("blocks.1.mlp.hook_post").shape, (std::vector<int64_t>{7, c.d_mlp}));

  std::vector<float> depths, z, pat, scores, embed, post;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto ids = with_bos(prompts[i]);
    ASSERT_EQ(r.tokens[i], ids);
    const int64_t tgt = static_cast<int64_t>(ids.size()) - 1;
    ASSERT_EQ(r.target[i], tgt);
    gpt2::RunOptions o;
    o.cache = {"blocks.1.attn.hook_z", "blocks.2.attn.hook_pattern", "blocks.0.attn.hook_attn_scores",
               "hook_embed", "blocks.1.mlp.hook_post", "blocks.0.hook_resid_pre"};
    for (int l = 0; l < c.n_layer; ++l) o.cache.insert(gpt2::hook_name(l, "hook_resid_post"));
    const gpt2::RunResult run = gpt2::run(m, gpt2::tokens_tensor(ids), o);
    auto add = [](std::vector<float>& v, const at::Tensor& t) {
      const auto x = to_vec(t);
      v.insert(v.end(), x.begin(), x.end());
    };
    add(depths, run.cache.at("blocks.0.hook_resid_pre")[0][tgt]);
    for (int l = 0; l < c.n_layer; ++l) add(depths, run.cache.at(gpt2::hook_name(l, "hook_resid_post"))[0][tgt]);
    add(z, run.cache.at("blocks.1.attn.hook_z")[0][tgt]);
    add(embed, run.cache.at("hook_embed")[0][tgt]);
    add(post, run.cache.at("blocks.1.mlp.hook_post")[0][tgt]);
    // Query row at the target, keys padded to the longest prompt the way
    // the causal mask fills them.
    const int64_t pad = t_max - static_cast<int64_t>(ids.size());
    at::Tensor p = run.cache.at("blocks.2.attn.hook_pattern")[0].select(1, tgt);  // [H, K]
    add(pat, at::cat({p, at::zeros({c.n_head, pad})}, 1));
    at::Tensor s = run.cache.at("blocks.0.attn.hook_attn_scores")[0].select(1, tgt);
    add(scores, at::cat({s, at::full({c.n_head, pad}, -std::numeric_limits<float>::infinity())}, 1));
  }
  EXPECT_LE(max_abs_diff(r.reads.at(kResidDepths).data, depths), 1e-5);
  EXPECT_LE(max_abs_diff(r.reads.at("blocks.1.attn.hook_z").data, z), 1e-5);
  EXPECT_LE(max_abs_diff(r.reads.at("blocks.2.attn.hook_pattern").data, pat), 1e-5);
  EXPECT_LE(max_abs_diff(r.reads.at("blocks.0.attn.hook_attn_scores").data, scores), 1e-5);
  EXPECT_LE(max_abs_diff(r.reads.at("hook_embed").data, embed), 1e-5);
  EXPECT_LE(max_abs_diff(r.reads.at("blocks.1.mlp.hook_post").data, post), 1e-5);
}

TEST(Probe, BatchingDoesNotChangeReads) {
  Model& m = model();
  ProbeRequest req;
  req.prompts = seven_prompts();
  req.word = "bank";
  req.hooks = kHooks;
  const ProbeResult one = probe(m, gpt2_tok(), req);
  req.budget_bytes = 1;  // every prompt alone
  const ProbeResult each = probe(m, gpt2_tok(), req);
  EXPECT_EQ(one.forwards, 1);
  EXPECT_EQ(each.forwards, 7);
  req.budget_bytes = 200 << 10;  // somewhere in between
  const ProbeResult some = probe(m, gpt2_tok(), req);
  EXPECT_GT(some.forwards, 1);
  EXPECT_LT(some.forwards, 7);
  for (const auto* r : {&each, &some}) {
    EXPECT_EQ(r->tokens, one.tokens);
    EXPECT_EQ(r->target, one.target);
    for (const auto& [name, read] : one.reads) {
      EXPECT_EQ(r->reads.at(name).shape, read.shape) << name;
      EXPECT_LE(max_abs_diff(r->reads.at(name).data, read.data), 1e-5) << name;
    }
  }
  // A read of an early block alone (the forward stops after block 1), and a
  // name asked twice, give the same numbers.
  req.budget_bytes = 0;
  req.hooks = {"blocks.1.attn.hook_z", "blocks.1.attn.hook_z"};
  const ProbeResult early = probe(m, gpt2_tok(), req);
  ASSERT_EQ(early.reads.size(), 1u);
  EXPECT_LE(max_abs_diff(early.reads.at("blocks.1.attn.hook_z").data, one.reads.at("blocks.1.attn.hook_z").data),
            1e-5);
}

TEST(Probe, OptionsAndErrors) {
  Model& m = model();
  ProbeRequest req;
  req.word = "light";
  req.prompts = {"Sunlight cast a golden light"};
  req.hooks = {"blocks.0.hook_resid_post"};
  EXPECT_EQ(probe(m, gpt2_tok(), req).target[0], 6);
  req.forwards = true;
  EXPECT_EQ(probe(m, gpt2_tok(), req).target[0], 2);
  req.bos = false;
  const ProbeResult nb = probe(m, gpt2_tok(), req);
  EXPECT_EQ(nb.tokens[0], gpt2_tok().encode("Sunlight cast a golden light"));
  EXPECT_EQ(nb.target[0], 1);
  req.hooks.clear();  // tokens and targets only
  const ProbeResult none = probe(m, gpt2_tok(), req);
  EXPECT_EQ(none.forwards, 0);
  EXPECT_TRUE(none.reads.empty());

  auto message = [&](const ProbeRequest& q) -> std::string {
    try {
      probe(m, gpt2_tok(), q);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "(no error)";
  };
  ProbeRequest bad;
  bad.word = "bank";
  bad.hooks = {"blocks.0.hook_z"};
  bad.prompts = {"The bank"};
  EXPECT_NE(message(bad).find("unknown hook name \"blocks.0.hook_z\""), std::string::npos) << message(bad);
  bad.hooks = {"blocks.3.attn.hook_z"};  // 3 layers: 0..2
  EXPECT_NE(message(bad).find("unknown hook name"), std::string::npos);
  bad.hooks = {kResidDepths};
  std::string longp;
  for (int i = 0; i < 140; ++i) longp += " the";
  bad.prompts = {"The bank", longp + " bank"};
  EXPECT_NE(message(bad).find("prompt #1"), std::string::npos) << message(bad);
  EXPECT_NE(message(bad).find("n_ctx 128"), std::string::npos) << message(bad);
  bad.prompts = {"The bank", "The bank", "The river flows"};
  EXPECT_NE(message(bad).find("prompt #2 \"The river flows\""), std::string::npos) << message(bad);
  EXPECT_THROW(probe(m, gpt2_tok(), bad), std::runtime_error);
  bad.prompts = {""};
  bad.bos = false;
  EXPECT_THROW(probe(m, gpt2_tok(), bad), std::invalid_argument);
}

// ---- logit lens ------------------------------------------------------------------

// softmax(LNPre(x)·W_U [+ b_U]) computed here from the processed weights.
at::Tensor direct_lens(Model& m, const at::Tensor& x, bool with_bias) {
  const gpt2::Weights& w = gpt2::weights(m);
  const at::Tensor xd = x.to(at::kDouble);
  const at::Tensor c = xd - xd.mean(-1, true);
  at::Tensor xn = c / (c.pow(2).mean(-1, true) + m.info().config.eps).sqrt();
  if (w.lnf_w.defined()) xn = xn * w.lnf_w.to(at::kDouble);
  if (with_bias && w.lnf_b.defined()) xn = xn + w.lnf_b.to(at::kDouble);
  at::Tensor logits = xn.matmul(w.W_U.to(at::kDouble));
  if (with_bias) logits = logits + w.b_U.to(at::kDouble);
  return at::softmax(logits, -1);
}

void expect_lens_matches(Model& m, const std::vector<float>& rows, int n, bool with_bias, int k) {
  const auto lens = logit_lens(m, gpt2_tok(), rows, n, with_bias, k);
  ASSERT_EQ(lens.size(), static_cast<size_t>(n));
  const at::Tensor x = at::from_blob(const_cast<float*>(rows.data()), {n, m.info().config.d_model}, at::kFloat);
  const at::Tensor p = direct_lens(m, x, with_bias);
  const auto top = at::topk(p, k, -1);
  for (int r = 0; r < n; ++r) {
    ASSERT_EQ(lens[r].ids.size(), static_cast<size_t>(k));
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(lens[r].ids[j], std::get<1>(top)[r][j].item<int64_t>()) << "row " << r << " rank " << j;
      EXPECT_NEAR(lens[r].probs[j], std::get<0>(top)[r][j].item<double>(), 1e-5);
      EXPECT_EQ(lens[r].tokens[j], gpt2_tok().token_str(lens[r].ids[j]));
      if (j) EXPECT_GE(lens[r].probs[j - 1], lens[r].probs[j]);
    }
  }
}

TEST(LogitLens, EqualsDirectComputationWithAndWithoutBias) {
  Model& m = model();
  ProbeRequest req;
  req.prompts = {prompt_sets().condition("bank", "strong_A").text, prompt_sets().condition("bank", "strong_B").text};
  req.word = "bank";
  req.hooks = {kResidDepths};
  const ProbeResult r = probe(m, gpt2_tok(), req);
  const int n = 2 * (m.info().config.n_layer + 1);
  expect_lens_matches(m, r.reads.at(kResidDepths).data, n, false, 5);
  expect_lens_matches(m, r.reads.at(kResidDepths).data, n, true, 5);
  // Folded LN: b_U is not zero, so the two lenses differ.
  const auto a = logit_lens(m, gpt2_tok(), r.reads.at(kResidDepths).data, n, false, 1);
  const auto b = logit_lens(m, gpt2_tok(), r.reads.at(kResidDepths).data, n, true, 1);
  bool differ = false;
  for (int i = 0; i < n; ++i) differ |= std::abs(a[i].probs[0] - b[i].probs[0]) > 1e-6;
  EXPECT_TRUE(differ);
  EXPECT_THROW(logit_lens(m, gpt2_tok(), {1.f, 2.f}, 1, true, 5), std::invalid_argument);
  EXPECT_THROW(logit_lens(m, gpt2_tok(), r.reads.at(kResidDepths).data, n, true, 0), std::invalid_argument);
}

// With the bias, the lens at depth L is the model's own next-token
// distribution, folded or not.
TEST(LogitLens, WithBiasAtLastDepthIsTheModelsOutput) {
  for (bool fold : {true, false}) {
    Model& m = model(fold);
    const gpt2::Config& c = m.info().config;
    const std::string text = prompt_sets().condition("rock", "strong_B").text;
    ProbeRequest req;
    req.prompts = {text};
    req.word = "rock";
    req.hooks = {gpt2::hook_name(c.n_layer - 1, "hook_resid_post")};
    const ProbeResult r = probe(m, gpt2_tok(), req);
    const auto lens = logit_lens(m, gpt2_tok(), r.reads.begin()->second.data, 1, true, 10);
    const auto ids = with_bos(text);
    const gpt2::RunResult run = gpt2::run(m, gpt2::tokens_tensor(ids));
    const at::Tensor p = at::softmax(run.logits[0][static_cast<int64_t>(ids.size()) - 1].to(at::kDouble), -1);
    const auto top = at::topk(p, 10);
    for (int j = 0; j < 10; ++j) {
      EXPECT_EQ(lens[0].ids[j], std::get<1>(top)[j].item<int64_t>()) << "fold " << fold;
      EXPECT_NEAR(lens[0].probs[j], std::get<0>(top)[j].item<double>(), 1e-5);
    }
    if (!fold) expect_lens_matches(m, r.reads.begin()->second.data, 1, false, 5);
  }
}

}  // namespace
}  // namespace spt::platform
