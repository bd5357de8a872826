// Generation (spec §10.4 P1–P3): the KV-cache path gives the full-recompute
// path's tokens under every kind of head op; full recompute equals a greedy
// loop over run()'s logits; seeded sampling is reproducible, seed-dependent
// and path-independent; score_tail equals a direct log-softmax sum.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <stdexcept>

#include <unistd.h>

#include "model/testmodel.h"
#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"

namespace spt::gpt2 {
namespace {

namespace fs = std::filesystem;

fs::path temp_root() { return fs::temp_directory_path() / ("spt_generate_test_" + std::to_string(::getpid())); }

class Cleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(temp_root()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

constexpr int kVocab = 512;

// 3 layers × 4 heads, d_model 64, n_ctx 128; std 0.08 so heads matter.
Model& model() {
  static std::unique_ptr<Model> m = [] {
    TestModelSpec s;
    s.n_layer = 3;
    s.n_head = 4;
    s.d_model = 64;
    s.n_ctx = 128;
    s.vocab = kVocab;
    s.seed = 11;
    s.std = 0.08f;
    const fs::path p = temp_root() / "gen";
    write_test_model(p.string(), s);
    return load_model(p.string(), {});
  }();
  return *m;
}

std::vector<int32_t> prompt(int n, uint64_t seed) {
  std::vector<int32_t> p;
  uint64_t x = seed * 2654435761u + 7;
  for (int i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    p.push_back(static_cast<int32_t>((x >> 33) % kVocab));
  }
  return p;
}

HeadIntervention op(int l, int h, HeadOp o, int pos = -1) {
  HeadIntervention r;
  r.layer = l;
  r.head = h;
  r.op = o;
  r.position = pos;
  return r;
}

Variant relu_variant() {
  return {{op(0, 1, HeadOp::attn_relu), op(1, 0, HeadOp::attn_relu), op(1, 2, HeadOp::attn_relu),
           op(2, 3, HeadOp::attn_relu), op(2, 0, HeadOp::attn_relu)}};
}

Variant mixed_variant() {
  const int dh = model().info().config.d_head;
  HeadIntervention mean = op(1, 1, HeadOp::mean);
  HeadIntervention repl = op(2, 2, HeadOp::replace, 20);  // acts on a generated position only
  HeadIntervention sc = op(0, 3, HeadOp::scale);
  sc.scale = 1.7f;
  for (int i = 0; i < dh; ++i) {
    mean.values.push_back(0.05f * static_cast<float>(i % 7) - 0.1f);
    repl.values.push_back(0.3f * std::sin(static_cast<float>(i)));
  }
  return {{op(0, 0, HeadOp::attn_l1), op(1, 3, HeadOp::attn_identity), op(0, 2, HeadOp::zero), mean, repl, sc,
           op(2, 1, HeadOp::attn_relu, 4),    // inside the prompt
           op(1, 2, HeadOp::attn_relu, 15),   // a generated position
           op(2, 0, HeadOp::zero, 30)}};
}

std::vector<int32_t> gen(const std::vector<int32_t>& p, const Variant& v, int n, bool kv, double temp = 0,
                         uint64_t seed = 0) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.kv_cache = kv;
  o.temperature = temp;
  o.seed = seed;
  const Generation g = generate(model(), p, v, o);
  EXPECT_EQ(g.kv_cache, kv);
  EXPECT_EQ(g.seed, seed);
  EXPECT_EQ(g.tokens.size(), static_cast<size_t>(n));
  return g.tokens;
}

size_t distinct(const std::vector<int32_t>& t) { return std::set<int32_t>(t.begin(), t.end()).size(); }

TEST(Generate, KvCacheGreedyEqualsFullRecompute) {
  const auto p = prompt(10, 1);
  const std::vector<std::pair<std::string, Variant>> cases = {
      {"clean", {}}, {"relu", relu_variant()}, {"mixed", mixed_variant()}};
  std::vector<std::vector<int32_t>> outs;
  for (const auto& [name, v] : cases) {
    const auto full = gen(p, v, 40, false);
    const auto kv = gen(p, v, 40, true);
    EXPECT_EQ(kv, full) << name;
    EXPECT_GT(distinct(full), 3u) << name << ": degenerate generation makes a weak test";
    outs.push_back(full);
  }
  // The interventions change what is generated (heads matter in this model).
  EXPECT_NE(outs[0], outs[1]);
  EXPECT_NE(outs[0], outs[2]);
}

TEST(Generate, KvCacheGreedyEqualsFullRecomputeFromOneToken) {
  const auto p = prompt(1, 5);
  EXPECT_EQ(gen(p, relu_variant(), 30, true), gen(p, relu_variant(), 30, false));
  EXPECT_EQ(gen(p, {}, 1, true), gen(p, {}, 1, false));
}

// Greedy over run()'s logits, written independently of generate().
std::vector<int32_t> greedy_with_run(const std::vector<int32_t>& p, const Variant& v, int n) {
  std::vector<int32_t> seq = p, out;
  RunOptions o;
  o.variant = v;
  for (int i = 0; i < n; ++i) {
    const at::Tensor logits = run(model(), tokens_tensor(seq), o).logits;  // [1, T, vocab]
    const at::Tensor last = logits[0][static_cast<int64_t>(seq.size()) - 1].contiguous();
    const float* l = last.data_ptr<float>();
    int32_t best = 0;
    for (int32_t j = 1; j < last.size(0); ++j)
      if (l[j] > l[best]) best = j;
    seq.push_back(best);
    out.push_back(best);
  }
  return out;
}

TEST(Generate, FullRecomputeEqualsGreedyLoopOverRun) {
  const auto p = prompt(10, 2);
  EXPECT_EQ(gen(p, {}, 25, false), greedy_with_run(p, {}, 25));
  EXPECT_EQ(gen(p, relu_variant(), 25, false), greedy_with_run(p, relu_variant(), 25));
}

TEST(Generate, SeededSamplingIsReproducibleAndSeedDependent) {
  const auto p = prompt(10, 3);
  const auto a = gen(p, {}, 30, false, 5.0, 42);
  EXPECT_EQ(gen(p, {}, 30, false, 5.0, 42), a);
  EXPECT_NE(gen(p, {}, 30, false, 5.0, 43), a);
  EXPECT_GT(distinct(a), 10u);  // T = 5 over 512 tokens: close to uniform
  // Same logits → same draws: the KV path samples the same tokens.
  EXPECT_EQ(gen(p, {}, 30, true, 5.0, 42), a);
  for (double T : {0.8, 1.0}) {
    const auto full = gen(p, relu_variant(), 40, false, T, 7);
    EXPECT_EQ(gen(p, relu_variant(), 40, true, T, 7), full) << T;
    EXPECT_EQ(gen(p, relu_variant(), 40, false, T, 7), full) << T;
  }
  // A tiny temperature is greedy.
  EXPECT_EQ(gen(p, {}, 20, true, 1e-6, 9), gen(p, {}, 20, true));
}

TEST(Generate, ScoreTailEqualsDirectLogSoftmaxSum) {
  const auto p = prompt(10, 4);
  std::vector<int32_t> seq = p;
  for (int32_t t : gen(p, relu_variant(), 40, true)) seq.push_back(t);
  const int64_t T = static_cast<int64_t>(seq.size());
  const at::Tensor lp = at::log_softmax(run(model(), tokens_tensor(seq)).logits[0].to(at::kDouble), -1);
  for (int from : {-3, 0, 1, 7, 10, 49, 50, 60}) {
    double direct = 0;
    int64_t count = 0;
    for (int64_t t = std::max(from, 1); t < T; ++t) {
      direct -= lp[t - 1][seq[static_cast<size_t>(t)]].item<double>();
      ++count;
    }
    const NllSum s = score_tail(model(), seq, from);
    EXPECT_EQ(s.count, count) << from;
    EXPECT_NEAR(s.nll, direct, 1e-6 * std::max(1.0, std::abs(direct))) << from;
  }
  // Equals Model::nll over the whole sequence for from ≤ 1.
  const NllSum whole = model().nll({seq}, {});
  EXPECT_NEAR(score_tail(model(), seq, 0).nll, whole.nll, 1e-6 * whole.nll);
}

TEST(Generate, BadInputsThrow) {
  const auto p = prompt(10, 5);
  GenerateOptions o;
  o.max_new_tokens = 5;
  EXPECT_THROW(generate(model(), {}, {}, o), std::invalid_argument);
  EXPECT_THROW(generate(model(), {1, kVocab}, {}, o), std::invalid_argument);
  EXPECT_THROW(generate(model(), {1, -1}, {}, o), std::invalid_argument);
  o.max_new_tokens = 119;  // 10 + 119 > 128
  EXPECT_THROW(generate(model(), p, {}, o), std::invalid_argument);
  o.kv_cache = true;
  EXPECT_THROW(generate(model(), p, {}, o), std::invalid_argument);
  o.max_new_tokens = 118;  // exactly n_ctx is fine
  EXPECT_EQ(generate(model(), p, {}, o).tokens.size(), 118u);
  o.max_new_tokens = -1;
  EXPECT_THROW(generate(model(), p, {}, o), std::invalid_argument);
  o.max_new_tokens = 5;
  o.temperature = -0.5;
  EXPECT_THROW(generate(model(), p, {}, o), std::invalid_argument);
  o.temperature = std::nan("");
  EXPECT_THROW(generate(model(), p, {}, o), std::invalid_argument);
  o.temperature = 0;
  EXPECT_THROW(generate(model(), p, {{op(3, 0, HeadOp::zero)}}, o), std::invalid_argument);  // no layer 3
  o.max_new_tokens = 0;
  EXPECT_TRUE(generate(model(), p, {}, o).tokens.empty());

  EXPECT_THROW(score_tail(model(), {}, 0), std::invalid_argument);
  EXPECT_THROW(score_tail(model(), {1, 2, kVocab}, 0), std::invalid_argument);
  EXPECT_THROW(score_tail(model(), std::vector<int32_t>(129, 1), 0), std::invalid_argument);
  EXPECT_EQ(score_tail(model(), {5}, 0).count, 0);
}

TEST(Generate, Bf16RunsBothPaths) {
  // Under bf16 the paths use different attention kernels, so only shape and
  // determinism are checked here.
  TestModelSpec s;
  s.n_layer = 2;
  s.n_head = 4;
  s.d_model = 64;
  s.n_ctx = 64;
  s.vocab = kVocab;
  s.seed = 12;
  s.std = 0.08f;
  const fs::path dir = temp_root() / "bf16";
  write_test_model(dir.string(), s);
  LoadOptions lo;
  lo.precision = Precision::bf16;
  auto m = load_model(dir.string(), lo);
  const Variant v{{op(0, 1, HeadOp::attn_relu), op(1, 2, HeadOp::attn_relu)}};
  GenerateOptions o;
  o.max_new_tokens = 12;
  for (bool kv : {false, true}) {
    o.kv_cache = kv;
    const auto a = generate(*m, prompt(8, 6), v, o);
    EXPECT_EQ(a.tokens.size(), 12u);
    EXPECT_EQ(generate(*m, prompt(8, 6), v, o).tokens, a.tokens);
  }
}

}  // namespace
}  // namespace spt::gpt2
