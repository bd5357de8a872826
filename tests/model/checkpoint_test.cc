// Torch-free engine pieces: safetensors reading/writing and its errors,
// config.json checks, checkpoint folders (prefixes, buffers, shards), HF
// cache resolution, and the random test-model writer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "model/testmodel.h"
#include "spt/hash.h"
#include "spt/hf_folder.h"
#include "spt/util.h"

namespace spt::gpt2 {
namespace {

namespace fs = std::filesystem;

fs::path temp_root() { return fs::temp_directory_path() / ("spt_ckpt_test_" + std::to_string(::getpid())); }

fs::path temp_dir(const std::string& tag) {
  fs::path p = temp_root() / tag;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// Removes this process's scratch folders at exit.
class Cleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(temp_root()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

std::string golden(const std::string& name) { return std::string(SPT_TEST_DATA) + "/golden/" + name; }

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(HalfFloat, RoundTripsAndRounds) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f})
    EXPECT_EQ(st::half_to_float(st::float_to_half(f)), f) << f;
  EXPECT_TRUE(std::isinf(st::half_to_float(st::float_to_half(1e6f))));
  EXPECT_TRUE(std::isnan(st::half_to_float(st::float_to_half(NAN))));
  // 1 + 2^-11 is halfway between 1 and the next half: ties to even → 1.
  EXPECT_EQ(st::half_to_float(st::float_to_half(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  EXPECT_EQ(st::half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(st::half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  for (float f : {1.0f, -3.0f, 0.15625f}) EXPECT_EQ(st::bf16_to_float(st::float_to_bf16(f)), f);
  EXPECT_EQ(st::bf16_to_float(st::float_to_bf16(1.00390625f)), 1.0f);  // tie → even
}

TEST(Safetensors, WriteReadRoundTrip) {
  const auto dir = temp_dir("rt");
  const std::string path = (dir / "x.safetensors").string();
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {0.5f, -0.25f};
  st::write(path, {{"a", "F32", {2, 3}, st::encode_f32(a, "F32")},
                   {"b", "F16", {2}, st::encode_f32(b, "F16")},
                   {"c", "BF16", {2}, st::encode_f32(b, "BF16")}});
  auto f = st::File::open(path);
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->find("a")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f->to_f32(*f->find("a")), a);
  EXPECT_EQ(f->to_f32(*f->find("b")), b);
  EXPECT_EQ(f->to_f32(*f->find("c")), b);
  EXPECT_EQ(f->find("zz"), nullptr);
  EXPECT_EQ(f->metadata().at("format"), "pt");
}

TEST(Safetensors, TruncatedAndCorruptFilesGiveClearErrors) {
  const auto dir = temp_dir("bad");
  const std::string good = (dir / "good.safetensors").string();
  st::write(good, {{"w", "F32", {16}, st::encode_f32(std::vector<float>(16, 1.0f), "F32")}});
  const std::string bytes = read_file(good);

  auto write_bytes = [&](const std::string& name, const std::string& b) {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << b;
    return p;
  };
  // Cut inside the data.
  std::string e = error_of([&] { st::File::open(write_bytes("cut.st", bytes.substr(0, bytes.size() - 10))); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("cut.st"), std::string::npos) << e;
  // Cut inside the header.
  e = error_of([&] { st::File::open(write_bytes("cuthdr.st", bytes.substr(0, 20))); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // Shorter than the length field.
  e = error_of([&] { st::File::open(write_bytes("tiny.st", "abc")); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // Garbage header.
  std::string g = bytes;
  g[9] = '#';
  e = error_of([&] { st::File::open(write_bytes("json.st", g)); });
  EXPECT_NE(e.find("corrupt"), std::string::npos) << e;
  // Absurd header length.
  std::string h = bytes;
  h[7] = '\x7f';
  e = error_of([&] { st::File::open(write_bytes("len.st", h)); });
  EXPECT_NE(e.find("corrupt"), std::string::npos) << e;
  // Offsets that disagree with the shape.
  auto with_header = [&](const std::string& json, size_t data) {
    std::string hdr = json;
    while (hdr.size() % 8) hdr += ' ';
    uint64_t n = hdr.size();
    std::string out(reinterpret_cast<const char*>(&n), 8);
    return out + hdr + std::string(data, '\0');
  };
  e = error_of([&] {
    st::File::open(write_bytes("shape.st", with_header(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})", 16)));
  });
  EXPECT_NE(e.find("shape needs"), std::string::npos) << e;
  e = error_of([&] {
    st::File::open(write_bytes("dtype.st", with_header(R"({"w":{"dtype":"Q7","shape":[4],"data_offsets":[0,16]}})", 16)));
  });
  EXPECT_NE(e.find("unknown dtype"), std::string::npos) << e;
  e = error_of([&] {
    st::File::open(write_bytes("overlap.st", with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                                          16)));
  });
  EXPECT_NE(e.find("overlap"), std::string::npos) << e;
  e = error_of([&] { st::File::open((dir / "missing.st").string()); });
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
}

TEST(Config, ReadsGoldenAndRejectsUnsupported) {
  Config c = read_config(golden("g2_f16_dhead32"));
  EXPECT_EQ(c.n_layer, 3);
  EXPECT_EQ(c.n_head, 3);
  EXPECT_EQ(c.d_model, 96);
  EXPECT_EQ(c.d_head, 32);
  EXPECT_EQ(c.vocab, 512);
  EXPECT_DOUBLE_EQ(c.eps, 1e-5);

  const auto dir = temp_dir("cfg");
  auto cfg = nlohmann::json::parse(read_file(golden("g1_f32_prefixed") + "/config.json"));
  cfg["n_inner"] = nullptr;
  std::ofstream(dir / "config.json") << cfg.dump();
  EXPECT_EQ(read_config(dir.string()).d_mlp, 4 * 64);  // null → 4·n_embd
  cfg["activation_function"] = "gelu";
  std::ofstream(dir / "config.json") << cfg.dump();
  EXPECT_NE(error_of([&] { read_config(dir.string()); }).find("gelu_new"), std::string::npos);
  cfg["activation_function"] = "gelu_new";
  cfg["n_head"] = 5;
  std::ofstream(dir / "config.json") << cfg.dump();
  EXPECT_NE(error_of([&] { read_config(dir.string()); }).find("divisible"), std::string::npos);
  cfg.erase("n_layer");
  std::ofstream(dir / "config.json") << cfg.dump();
  EXPECT_NE(error_of([&] { read_config(dir.string()); }).find("n_layer"), std::string::npos);
}

TEST(Checkpoint, OpensGoldenFoldersOfEveryStyle) {
  for (const char* name : {"g1_f32_prefixed", "g2_f16_dhead32", "g3_bf16_legacy_keys"}) {
    const Checkpoint ck = Checkpoint::open(golden(name), name);
    EXPECT_TRUE(ck.has("wte.weight")) << name;
    EXPECT_TRUE(ck.has("h.0.attn.c_attn.weight")) << name;
    EXPECT_FALSE(ck.has("h.0.attn.bias")) << name;  // mask buffer ignored
    EXPECT_EQ(ck.info().sha256, sha256_file(golden(name) + "/model.safetensors")) << name;
    EXPECT_EQ(ck.shape("h.0.mlp.c_fc.weight"), (std::vector<int64_t>{ck.config().d_model, ck.config().d_mlp}));
  }
  EXPECT_EQ(Checkpoint::open(golden("g2_f16_dhead32"), "x").info().dtype_on_disk, "F16");
  EXPECT_EQ(Checkpoint::open(golden("g3_bf16_legacy_keys"), "x").info().dtype_on_disk, "BF16");
}

TEST(Checkpoint, ShardedIndexIsReadInShardOrder) {
  const auto src = temp_dir("shsrc");
  TestModelSpec spec;
  spec.vocab = 100;
  spec.n_layer = 2;
  write_test_model(src.string(), spec);
  auto f = st::File::open((src / "model.safetensors").string());
  const auto dir = temp_dir("sharded");
  fs::copy_file(src / "config.json", dir / "config.json");
  std::vector<st::OutTensor> s1, s2;
  nlohmann::json map;
  for (const auto& t : f->tensors()) {
    const bool first = t.name.find("h.1.") == std::string::npos;
    st::OutTensor o{t.name, t.dtype, t.shape,
                    std::string(reinterpret_cast<const char*>(f->data(t)), t.end - t.begin)};
    (first ? s1 : s2).push_back(o);
    map[t.name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  st::write((dir / "model-00001-of-00002.safetensors").string(), s1);
  st::write((dir / "model-00002-of-00002.safetensors").string(), s2);
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"metadata", {}}, {"weight_map", map}}.dump();

  const Checkpoint ck = Checkpoint::open(dir.string(), "sharded");
  EXPECT_TRUE(ck.has("h.1.mlp.c_proj.bias"));
  EXPECT_EQ(ck.f32("h.1.mlp.c_proj.bias"), f->to_f32(*f->find("transformer.h.1.mlp.c_proj.bias")));
  const std::string both = read_file((dir / "model-00001-of-00002.safetensors").string()) +
                           read_file((dir / "model-00002-of-00002.safetensors").string());
  EXPECT_EQ(ck.info().sha256, sha256_hex(both));

  fs::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_NE(error_of([&] { Checkpoint::open(dir.string(), "x"); }).find("missing"), std::string::npos);
}

TEST(Checkpoint, MissingOrMisshapenTensorsAreErrors) {
  const auto dir = temp_dir("missing");
  TestModelSpec spec;
  spec.vocab = 50;
  write_test_model(dir.string(), spec);
  // Claim 3 layers: h.2.* is missing.
  auto cfg = nlohmann::json::parse(read_file((dir / "config.json").string()));
  cfg["n_layer"] = 3;
  std::ofstream(dir / "config.json") << cfg.dump();
  EXPECT_NE(error_of([&] { Checkpoint::open(dir.string(), "x"); }).find("lacks tensors h.2."), std::string::npos);
  cfg["n_layer"] = 2;
  cfg["vocab_size"] = 51;
  std::ofstream(dir / "config.json") << cfg.dump();
  EXPECT_NE(error_of([&] { Checkpoint::open(dir.string(), "x"); }).find("shape"), std::string::npos);
  fs::remove(dir / "model.safetensors");
  EXPECT_NE(error_of([&] { Checkpoint::open(dir.string(), "x"); }).find("model.safetensors"), std::string::npos);
}

TEST(TestModel, WritesLoadableCheckpointsOfEveryStyle) {
  for (const std::string dtype : {"F32", "F16", "BF16"})
    for (bool prefixed : {true, false}) {
      const auto dir = temp_dir("tm" + dtype + (prefixed ? "p" : "l"));
      TestModelSpec spec;
      spec.dtype = dtype;
      spec.prefixed = prefixed;
      spec.attn_bias_buffers = !prefixed;
      spec.n_head = 3;
      spec.d_model = 48;  // d_head 16
      spec.d_mlp = 80;
      spec.vocab = 300;
      spec.seed = 7;
      write_test_model(dir.string(), spec);
      const Checkpoint ck = Checkpoint::open(dir.string(), "t");
      EXPECT_EQ(ck.config().d_head, 16);
      EXPECT_EQ(ck.config().d_mlp, 80);
      EXPECT_EQ(ck.info().dtype_on_disk, dtype);
      const auto g = ck.f32("h.0.ln_1.weight");
      double mean = 0;
      for (float x : g) mean += x / g.size();
      EXPECT_NEAR(mean, 1.0, 0.15);  // γ ~ 1 + N(0, 0.2²), not all ones
      EXPECT_NE(g[0], 1.0f);
    }
  // Deterministic from the seed.
  const auto a = temp_dir("seedA"), b = temp_dir("seedB"), c = temp_dir("seedC");
  TestModelSpec spec;
  spec.vocab = 64;
  write_test_model(a.string(), spec);
  write_test_model(b.string(), spec);
  spec.seed = 1;
  write_test_model(c.string(), spec);
  EXPECT_EQ(sha256_file((a / "model.safetensors").string()), sha256_file((b / "model.safetensors").string()));
  EXPECT_NE(sha256_file((a / "model.safetensors").string()), sha256_file((c / "model.safetensors").string()));
  spec.n_head = 5;
  EXPECT_THROW(write_test_model(c.string(), spec), std::invalid_argument);
}

TEST(ResolveModelDir, FoldersCacheSnapshotsAndErrors) {
  const auto root = temp_dir("hub");
  const auto snaps = root / "models--openai-community--gpt2" / "snapshots";
  TestModelSpec spec;
  spec.vocab = 32;
  write_test_model((snaps / "aaa").string(), spec);
  write_test_model((snaps / "bbb").string(), spec);
  fs::create_directories(root / "models--openai-community--gpt2" / "refs");
  std::ofstream(root / "models--openai-community--gpt2" / "refs" / "main") << "bbb";

  const char* old_hub = std::getenv("HF_HUB_CACHE");
  const std::string saved = old_hub ? old_hub : "";
  setenv("HF_HUB_CACHE", root.string().c_str(), 1);
  setenv("HF_HUB_OFFLINE", "1", 1);  // the download path has its own test (hub_test.cc)
  EXPECT_EQ(fs::path(resolve_model_dir("gpt2")), snaps / "bbb");  // refs/main wins
  fs::remove(root / "models--openai-community--gpt2" / "refs" / "main");
  EXPECT_EQ(fs::path(resolve_model_dir("gpt2")), snaps / "aaa");  // else any complete snapshot
  EXPECT_EQ(resolve_model_dir((snaps / "aaa").string()), (snaps / "aaa").string());  // a folder as is

  const std::string e = error_of([] { resolve_model_dir("gpt2-xl"); });
  EXPECT_NE(e.find("models--gpt2-xl"), std::string::npos) << e;
  EXPECT_NE(e.find(root.string()), std::string::npos) << e;
  EXPECT_NE(e.find("huggingface-cli"), std::string::npos) << e;
  EXPECT_NE(e.find("pass a folder"), std::string::npos) << e;
  EXPECT_NE(e.find("HF_HUB_OFFLINE"), std::string::npos) << e;
  unsetenv("HF_HUB_OFFLINE");
  EXPECT_NE(error_of([] { resolve_model_dir("/no/such/folder"); }).find("does not exist"), std::string::npos);
  if (old_hub) setenv("HF_HUB_CACHE", saved.c_str(), 1);
  else unsetenv("HF_HUB_CACHE");
}

// The one lookup spt-client (--upload of a hub name) and the worker's loader
// share: every cache root, the hub's aliases, complete snapshots only.
TEST(CachedSnapshot, XdgRootAliasesAndIncompleteSnapshots) {
  const auto xdg = temp_dir("xdg");
  const auto snaps = xdg / "huggingface" / "hub" / "models--openai-community--gpt2" / "snapshots";
  TestModelSpec spec;
  spec.vocab = 32;
  write_test_model((snaps / "b-complete").string(), spec);
  fs::create_directories(snaps / "a-config-only");
  std::ofstream(snaps / "a-config-only" / "config.json") << "{}";

  std::map<std::string, std::string> saved;
  for (const char* k : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"}) {
    if (const char* v = std::getenv(k)) saved[k] = v;
    unsetenv(k);
  }
  setenv("XDG_CACHE_HOME", xdg.string().c_str(), 1);
  std::vector<std::string> looked;
  EXPECT_EQ(fs::path(hf::cached_snapshot("gpt2", &looked)), snaps / "b-complete");
  EXPECT_NE(std::find(looked.begin(), looked.end(), (xdg / "huggingface/hub/models--gpt2").string()), looked.end());
  EXPECT_EQ(hf::cached_snapshot("gpt2-medium"), "");
  unsetenv("XDG_CACHE_HOME");
  for (const auto& [k, v] : saved) setenv(k.c_str(), v.c_str(), 1);
}

}  // namespace
}  // namespace spt::gpt2
