// Engine invariants on generated tiny models: processing leaves
// log-probabilities unchanged and centres the residual stream; fused
// multi-variant evaluation equals one-at-a-time; head ops and attention
// variants do what spec §10 says; hooks, caches, weights and errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <unistd.h>

#include "model/testmodel.h"
#include "spt/gpt2.h"
#include "spt/gpt2_hooks.h"

namespace spt::gpt2 {
namespace {

namespace fs = std::filesystem;

fs::path temp_root() { return fs::temp_directory_path() / ("spt_engine_test_" + std::to_string(::getpid())); }

class Cleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(temp_root()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

// A generated model folder per tag, made once per test process.
std::string model_dir(const std::string& tag, TestModelSpec spec) {
  const fs::path p = temp_root() / tag;
  if (!fs::exists(p / "model.safetensors")) write_test_model(p.string(), spec);
  return p.string();
}

TestModelSpec small_spec() {
  TestModelSpec s;
  s.n_layer = 3;
  s.n_head = 3;
  s.d_model = 48;  // d_head 16
  s.d_mlp = 96;
  s.n_ctx = 40;
  s.vocab = 97;
  s.seed = 3;
  s.std = 0.2f;  // large enough that heads matter
  return s;
}

Chunks random_chunks(int n, int len, int vocab, uint64_t seed) {
  Chunks c(static_cast<size_t>(n));
  uint64_t x = seed * 2654435761u + 1;
  for (auto& ch : c)
    for (int i = 0; i < len; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      ch.push_back(static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(vocab)));
    }
  return c;
}

LoadOptions opts(Processing p = {}) {
  LoadOptions o;
  o.processing = p;
  return o;
}

double rel(double a, double b) { return std::abs(a - b) / std::max(1e-12, std::abs(b)); }

at::Tensor to_tensor(const Chunks& c) {
  at::Tensor t = at::empty({static_cast<int64_t>(c.size()), static_cast<int64_t>(c[0].size())}, at::kLong);
  for (size_t r = 0; r < c.size(); ++r)
    for (size_t i = 0; i < c[r].size(); ++i) t[static_cast<int64_t>(r)][static_cast<int64_t>(i)] = c[r][i];
  return t;
}

TEST(Engine, EveryProcessingComboGivesTheSameLogProbs) {
  const std::string dir = model_dir("small", small_spec());
  const Chunks chunks = random_chunks(2, 24, 97, 1);
  const at::Tensor toks = to_tensor(chunks);
  auto base = load_model(dir, opts({false, false, false, false}));
  const at::Tensor ref = at::log_softmax(run(*base, toks).logits, -1);
  const double ref_nll = base->nll(chunks, {}).nll;
  for (int mask = 1; mask < 16; ++mask) {
    Processing p{(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0, (mask & 8) != 0};
    auto m = load_model(dir, opts(p));
    const at::Tensor lp = at::log_softmax(run(*m, toks).logits, -1);
    EXPECT_LT((lp - ref).abs().max().item<double>(), 1e-5) << "processing mask " << mask;
    EXPECT_LT(rel(m->nll(chunks, {}).nll, ref_nll), 1e-6) << "processing mask " << mask;
  }
}

TEST(Engine, ProcessedResidualStreamIsCentred) {
  auto m = load_model(model_dir("small", small_spec()), opts());
  RunOptions o;
  o.logits = false;
  for (int l = 0; l < 3; ++l) {
    o.cache.insert(hook_name(l, "hook_resid_pre"));
    o.cache.insert(hook_name(l, "hook_attn_out"));
    o.cache.insert(hook_name(l, "hook_mlp_out"));
    o.cache.insert(hook_name(l, "hook_resid_post"));
  }
  const RunResult r = run(*m, to_tensor(random_chunks(1, 30, 97, 2)), o);
  EXPECT_EQ(r.cache.size(), o.cache.size());
  for (const auto& [name, t] : r.cache) {
    EXPECT_LT(t.mean(-1).abs().max().item<double>(), 1e-5) << name;
    EXPECT_GT(t.abs().max().item<double>(), 1e-3) << name;  // not trivially zero
  }
  // resid_post of block l is resid_pre of block l + 1.
  EXPECT_TRUE(at::equal(r.cache.at(hook_name(0, "hook_resid_post")), r.cache.at(hook_name(1, "hook_resid_pre"))));
  // ... and the unprocessed stream is not centred.
  auto raw = load_model(model_dir("small", small_spec()), opts({false, false, false, false}));
  const RunResult rr = run(*raw, to_tensor(random_chunks(1, 30, 97, 2)), o);
  EXPECT_GT(rr.cache.at(hook_name(1, "hook_resid_pre")).mean(-1).abs().max().item<double>(), 1e-3);
  EXPECT_LT((rr.cache.at(hook_name(1, "hook_resid_pre")) -
             rr.cache.at(hook_name(1, "hook_resid_pre")).mean(-1, true) - r.cache.at(hook_name(1, "hook_resid_pre")))
                .abs()
                .max()
                .item<double>(),
            1e-4);
}

std::vector<Variant> assorted_variants(const Model& m, const Config& c) {
  (void)m;
  std::vector<Variant> vs;
  vs.push_back({});  // clean
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h) vs.push_back({{HeadIntervention{l, h, HeadOp::zero}}});
  HeadIntervention mean{1, 2, HeadOp::mean};
  mean.values.assign(static_cast<size_t>(c.d_head), 0.3f);
  vs.push_back({{mean}});
  HeadIntervention sc{2, 0, HeadOp::scale};
  sc.scale = 2.5f;
  vs.push_back({{sc}});
  HeadIntervention pos{0, 1, HeadOp::zero};
  pos.position = 4;
  vs.push_back({{pos}});
  for (HeadOp op : {HeadOp::attn_relu, HeadOp::attn_l1, HeadOp::attn_identity})
    vs.push_back({{HeadIntervention{1, 1, op}}});
  // Several layers and kinds at once (cumulative-ablation style).
  vs.push_back({{HeadIntervention{2, 2, HeadOp::zero}, HeadIntervention{0, 0, HeadOp::attn_relu}, mean}});
  vs.push_back({{HeadIntervention{0, 2, HeadOp::zero}, HeadIntervention{2, 1, HeadOp::attn_l1}}});
  return vs;
}

TEST(Engine, FusedEqualsOneAtATime) {
  const std::string dir = model_dir("small", small_spec());
  auto m = load_model(dir, opts());
  const Config& c = m->info().config;
  const Chunks chunks = random_chunks(3, 32, 97, 5);
  const auto vs = assorted_variants(*m, c);
  const auto fused = m->nll_many(chunks, vs);
  ASSERT_EQ(fused.size(), vs.size());
  std::set<double> distinct;
  for (size_t i = 0; i < vs.size(); ++i) {
    const NllSum one = m->nll(chunks, vs[i]);
    EXPECT_EQ(fused[i].count, 3 * 31);
    EXPECT_LT(rel(fused[i].nll, one.nll), 2e-6) << to_json(vs[i]).dump();
    // Also against a plain forward with the variant applied.
    const at::Tensor toks = to_tensor(chunks);
    RunOptions o;
    o.variant = vs[i];
    const at::Tensor lp = at::log_softmax(run(*m, toks, o).logits, -1);
    const double direct =
        -lp.narrow(1, 0, 31).gather(2, toks.narrow(1, 1, 31).unsqueeze(2)).to(at::kDouble).sum().item<double>();
    EXPECT_LT(rel(fused[i].nll, direct), 2e-6) << to_json(vs[i]).dump();
    distinct.insert(std::round(fused[i].nll * 1e4));
  }
  EXPECT_GT(distinct.size(), vs.size() - 2);  // the ops really change the loss

  // A tiny memory budget forces small batches (few variants per suffix): same numbers.
  LoadOptions tight = opts();
  tight.memory_budget_mb = 1;
  auto small = load_model(dir, tight);
  const auto fused_small = small->nll_many(chunks, vs);
  for (size_t i = 0; i < vs.size(); ++i) EXPECT_LT(rel(fused_small[i].nll, fused[i].nll), 2e-6);
}

TEST(Engine, ChunksOfDifferentLengthsAndShortOnes) {
  auto m = load_model(model_dir("small", small_spec()), opts());
  Chunks chunks = random_chunks(2, 20, 97, 9);
  chunks.push_back(random_chunks(1, 7, 97, 10)[0]);
  chunks.push_back({5});  // predicts nothing
  const NllSum all = m->nll(chunks, {});
  EXPECT_EQ(all.count, 19 + 19 + 6);
  double sum = 0;
  for (size_t i = 0; i < 3; ++i) sum += m->nll(Chunks{chunks[i]}, {}).nll;
  EXPECT_LT(rel(all.nll, sum), 1e-6);
  EXPECT_GT(all.ppl(), 1.0);
}

TEST(Engine, ZeroAblationZeroesHookZOfThatHeadOnly) {
  auto m = load_model(model_dir("small", small_spec()), opts());
  RunOptions o;
  o.logits = false;
  o.cache = {hook_name(1, "attn.hook_z"), hook_name(0, "attn.hook_z")};
  o.variant.ops = {HeadIntervention{1, 2, HeadOp::zero}};
  const at::Tensor toks = to_tensor(random_chunks(2, 16, 97, 4));
  const RunResult r = run(*m, toks, o);
  const at::Tensor z = r.cache.at(hook_name(1, "attn.hook_z"));
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{2, 16, 3, 16}));
  EXPECT_EQ(z.select(2, 2).abs().max().item<double>(), 0.0);
  EXPECT_GT(z.select(2, 1).abs().max().item<double>(), 0.0);
  // The same through a user hook.
  std::vector<Hook> hooks = {{hook_name(1, "attn.hook_z"), [](const at::Tensor& t, const std::string&) {
                                at::Tensor c = t.clone();
                                c.select(2, 2).zero_();
                                return c;
                              }}};
  const Chunks chunks = random_chunks(2, 16, 97, 4);
  EXPECT_LT(rel(nll_with_hooks(*m, chunks, hooks).nll, m->nll(chunks, o.variant).nll), 1e-6);
}

TEST(Engine, LinearisedAttentionFollowsSpec10) {
  auto m = load_model(model_dir("small", small_spec()), opts());
  const at::Tensor toks = to_tensor(random_chunks(1, 12, 97, 6));
  const std::string scores = hook_name(1, "attn.hook_attn_scores"), pattern = hook_name(1, "attn.hook_pattern");
  for (HeadOp op : {HeadOp::attn_relu, HeadOp::attn_l1, HeadOp::attn_identity}) {
    RunOptions o;
    o.logits = false;
    o.cache = {scores, pattern};
    o.variant.ops = {HeadIntervention{1, 1, op}};
    const RunResult r = run(*m, toks, o);
    const at::Tensor S = r.cache.at(scores)[0][1].to(at::kDouble);  // [T, T], −∞ above the diagonal
    const at::Tensor P = r.cache.at(pattern)[0][1].to(at::kDouble);
    EXPECT_TRUE(std::isinf(S[0][1].item<double>()));
    const at::Tensor Sp = at::where(at::isfinite(S), S, at::zeros_like(S));
    at::Tensor W, rowsum;
    if (op == HeadOp::attn_relu) W = Sp.clamp_min(0), rowsum = W.sum(-1, true).clamp_min(1e-8);
    if (op == HeadOp::attn_l1) W = Sp.abs(), rowsum = W.sum(-1, true).clamp_min(1e-8);
    if (op == HeadOp::attn_identity) W = Sp, rowsum = W.abs().sum(-1, true).clamp_min(1e-8);
    EXPECT_LT((P - W / rowsum).abs().max().item<double>(), 1e-6) << to_string(op);
    EXPECT_EQ(P.triu(1).abs().max().item<double>(), 0.0) << "future keys get weight 0";
    // Other heads keep softmax rows that sum to 1.
    const at::Tensor other = r.cache.at(pattern)[0][0].to(at::kDouble);
    EXPECT_LT((other.sum(-1) - 1).abs().max().item<double>(), 1e-6);
  }
}

TEST(Engine, CacheHooksAndErrors) {
  auto m = load_model(model_dir("small", small_spec()), opts());
  const at::Tensor toks = to_tensor(random_chunks(1, 10, 97, 7));
  RunOptions o;
  o.cache = {"hook_embed", "hook_pos_embed", hook_name(2, "attn.hook_q"), hook_name(0, "mlp.hook_post"),
             "ln_final.hook_normalized"};
  const RunResult r = run(*m, toks, o);
  EXPECT_EQ(r.cache.size(), 5u);
  EXPECT_EQ(r.cache.at(hook_name(2, "attn.hook_q")).sizes(), (std::vector<int64_t>{1, 10, 3, 16}));
  EXPECT_EQ(r.cache.at(hook_name(0, "mlp.hook_post")).sizes(), (std::vector<int64_t>{1, 10, 96}));
  EXPECT_EQ(r.logits.sizes(), (std::vector<int64_t>{1, 10, 97}));
  // A hook that replaces the residual stream changes everything after it.
  RunOptions o2;
  o2.hooks = {{hook_name(1, "hook_resid_pre"), [](const at::Tensor& t, const std::string&) { return t * 0; }}};
  const at::Tensor l2 = run(*m, toks, o2).logits;
  EXPECT_GT((l2 - r.logits).abs().max().item<double>(), 1e-3);
  // stop_at_layer returns the stream entering that block.
  RunOptions o3;
  o3.stop_at_layer = 2;
  o3.cache = {hook_name(1, "hook_resid_post")};
  const RunResult r3 = run(*m, toks, o3);
  EXPECT_FALSE(r3.logits.defined());
  EXPECT_TRUE(at::equal(r3.resid, r3.cache.at(hook_name(1, "hook_resid_post"))));

  RunOptions bad;
  bad.cache = {"blocks.9.hook_resid_pre"};
  EXPECT_THROW(run(*m, toks, bad), std::invalid_argument);
  EXPECT_THROW(m->nll(Chunks{{1, 2, 500}}, {}), std::invalid_argument);           // token outside vocab
  EXPECT_THROW(m->nll(Chunks{std::vector<int32_t>(41, 1)}, {}), std::invalid_argument);  // longer than n_ctx
  EXPECT_THROW(m->nll(Chunks{{1, 2, 3}}, {{HeadIntervention{3, 0, HeadOp::zero}}}), std::invalid_argument);
  EXPECT_THROW(m->nll(Chunks{{1, 2, 3}}, {{HeadIntervention{0, 0, HeadOp::mean}}}), std::invalid_argument);  // no values
  EXPECT_THROW(load_model(model_dir("small", small_spec()), [] {
                 LoadOptions o;
                 o.device = "tpu";
                 return o;
               }()),
               std::invalid_argument);
}

TEST(Engine, HeadMeansAndMeanAblation) {
  auto m = load_model(model_dir("small", small_spec()), opts());
  const Config& c = m->info().config;
  const Chunks chunks = random_chunks(2, 20, 97, 8);
  const Model::HeadSums s = m->head_z_sums(chunks);
  EXPECT_EQ(s.count, 40);
  ASSERT_EQ(s.sum.size(), static_cast<size_t>(c.n_layer * c.n_head * c.d_head));
  RunOptions o;
  o.logits = false;
  o.cache = {hook_name(2, "attn.hook_z")};
  const at::Tensor z = run(*m, to_tensor(chunks), o).cache.at(hook_name(2, "attn.hook_z"));
  const at::Tensor want = z.to(at::kDouble).mean(at::IntArrayRef{0, 1})[1];  // [d_head]
  const std::vector<float> got = s.mean(2, 1, c);
  for (int i = 0; i < c.d_head; ++i) EXPECT_NEAR(got[static_cast<size_t>(i)], want[i].item<double>(), 1e-6);
  // Mean-ablating with the mean is close to clean, much closer than zero-ablating is... at least different.
  HeadIntervention mean{2, 1, HeadOp::mean};
  mean.values = got;
  EXPECT_NE(m->nll(chunks, {{mean}}).nll, m->nll(chunks, {{HeadIntervention{2, 1, HeadOp::zero}}}).nll);
}

TEST(Engine, WeightsAreTransformerLensShapedAndEditable) {
  auto m = load_model(model_dir("small", small_spec()), opts());
  const Weights& w = weights(*m);
  ASSERT_EQ(w.blocks.size(), 3u);
  const BlockWeights& b = w.blocks[0];
  EXPECT_EQ(b.W_Q.sizes(), (std::vector<int64_t>{3, 48, 16}));
  EXPECT_EQ(b.b_K.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(b.W_O.sizes(), (std::vector<int64_t>{3, 16, 48}));
  EXPECT_EQ(w.W_U.sizes(), (std::vector<int64_t>{48, 97}));
  EXPECT_FALSE(b.ln1_w.defined());  // folded
  EXPECT_EQ(b.b_V.abs().max().item<double>(), 0.0);  // folded into b_O
  EXPECT_LT(b.W_Q.mean(1).abs().max().item<double>(), 1e-6);  // centred reading weights
  EXPECT_LT(b.W_O.mean(-1).abs().max().item<double>(), 1e-6);  // centred writing weights
  EXPECT_LT(w.W_U.mean(-1).abs().max().item<double>(), 1e-6);  // centred unembed

  const Chunks chunks = random_chunks(1, 16, 97, 11);
  const double clean = m->nll(chunks, {}).nll;
  Weights same = w.clone();
  EXPECT_LT(rel(with_weights(*m, same)->nll(chunks, {}).nll, clean), 1e-7);
  // Reassigning a per-head tensor is picked up (W_QKV is rebuilt).
  Weights edited = w.clone();
  edited.blocks[0].W_Q = at::zeros_like(edited.blocks[0].W_Q);
  auto m2 = with_weights(*m, edited);
  EXPECT_GT(std::abs(m2->nll(chunks, {}).nll - clean), 1e-4);
  EXPECT_LT(rel(m->nll(chunks, {}).nll, clean), 1e-12);  // the original is untouched
  // In-place edits of a view reach the packed matrix of a clone too.
  Weights inplace = w.clone();
  inplace.blocks[0].W_Q.zero_();
  EXPECT_EQ(inplace.blocks[0].W_QKV.narrow(1, 0, 48).abs().max().item<double>(), 0.0);
  EXPECT_LT(rel(with_weights(*m, inplace)->nll(chunks, {}).nll, m2->nll(chunks, {}).nll), 1e-6);
}

TEST(Engine, GeneratedCheckpointStylesLoadAndAgree) {
  // Same seed in F32 with both key styles: identical numbers; F16/BF16 close.
  TestModelSpec s = small_spec();
  s.n_head = 2;
  s.d_model = 40;  // d_head 20
  s.d_mlp = 0;     // n_inner null → 160
  const Chunks chunks = random_chunks(2, 12, 97, 12);
  double ref = 0;
  int i = 0;
  for (const std::string dtype : {"F32", "F16", "BF16"})
    for (bool prefixed : {true, false}) {
      TestModelSpec t = s;
      t.dtype = dtype;
      t.prefixed = prefixed;
      t.attn_bias_buffers = !prefixed;
      auto m = load_model(model_dir("style" + std::to_string(i++), t), opts());
      EXPECT_EQ(m->info().config.d_head, 20);
      EXPECT_EQ(m->info().config.d_mlp, 160);
      EXPECT_EQ(m->info().dtype_on_disk, dtype);
      EXPECT_EQ(m->info().sha256.size(), 64u);
      const double nll = m->nll(chunks, {}).nll;
      if (ref == 0) ref = nll;
      EXPECT_LT(rel(nll, ref), dtype == "F32" ? 1e-7 : 2e-2) << dtype << prefixed;
    }
}

TEST(Engine, Bf16AndTf32PrecisionsRun) {
  const std::string dir = model_dir("small", small_spec());
  const Chunks chunks = random_chunks(2, 20, 97, 13);
  const double fp32 = load_model(dir, opts())->nll(chunks, {}).nll;
  LoadOptions o = opts();
  o.precision = Precision::bf16;
  auto bf = load_model(dir, o);
  EXPECT_EQ(weights(*bf).blocks[0].W_QKV.scalar_type(), at::kBFloat16);
  EXPECT_EQ(weights(*bf).blocks[0].b_QKV.scalar_type(), at::kFloat);
  const double b16 = bf->nll(chunks, {}).nll;
  EXPECT_LT(rel(b16, fp32), 2e-2);
  EXPECT_NE(b16, fp32);
  // Fusion works in bf16 too.
  const std::vector<Variant> vs = {{{HeadIntervention{1, 0, HeadOp::zero}}}, {}};
  const auto many = bf->nll_many(chunks, vs);
  EXPECT_LT(rel(many[1].nll, b16), 1e-3);
  o.precision = Precision::tf32;  // on the CPU tf32 is fp32
  EXPECT_LT(rel(load_model(dir, o)->nll(chunks, {}).nll, fp32), 1e-7);
  set_threads(1);
  EXPECT_FALSE(torch_version().empty());
  EXPECT_NE(device_description("cpu").find("cpu"), std::string::npos);
}

TEST(Engine, VariantJsonRoundTrip) {
  Variant v;
  HeadIntervention a{3, 4, HeadOp::mean};
  a.values = {0.5f, -1.0f};
  a.position = 7;
  HeadIntervention b{0, 8, HeadOp::scale};
  b.scale = 0.25f;
  v.ops = {a, b, HeadIntervention{11, 0, HeadOp::attn_identity}};
  const Variant back = variant_from_json(to_json(v));
  ASSERT_EQ(back.ops.size(), 3u);
  EXPECT_EQ(back.ops[0].values, a.values);
  EXPECT_EQ(back.ops[0].position, 7);
  EXPECT_EQ(back.ops[1].scale, 0.25f);
  EXPECT_EQ(back.ops[2].op, HeadOp::attn_identity);
  EXPECT_EQ(back.min_layer(), 0);
  EXPECT_EQ(Variant{}.min_layer(), std::numeric_limits<int>::max());
  EXPECT_THROW(variant_from_json(nlohmann::json::parse(R"({"ops":[{"layer":0,"head":1,"op":"mean"}]})")),
               std::invalid_argument);
  EXPECT_THROW(parse_head_op("softmax"), std::invalid_argument);
  EXPECT_EQ(parse_precision("bf16"), Precision::bf16);
  EXPECT_THROW(parse_precision("fp16"), std::invalid_argument);
}

}  // namespace
}  // namespace spt::gpt2
