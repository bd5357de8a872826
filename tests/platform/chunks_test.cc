// The model host's chunk sets by split (spec §2.1): ChunkKey's defaults and
// errors, and chunks_for cutting a folder's wiki.test.raw with chunker T and
// its wiki.valid.raw with chunker V, each equal to the wikitext functions
// applied directly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/testmodel.h"
#include "model/tokenizer.h"
#include "model/wikitext.h"
#include "platform/model_host.h"

namespace spt::platform {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json with_split(json p) {
  p["split"] = "test";
  return p;
}

TEST(ChunkKey, DefaultsDependOnTheSplit) {
  const ChunkKey v = ChunkKey::from_params(json::object());
  EXPECT_EQ(v.dataset, "wikitext-2-raw");
  EXPECT_EQ(v.split, "valid");
  EXPECT_EQ(v.max_tokens, 2048);  // V2K
  EXPECT_EQ(v.chunk_len, 1024);
  EXPECT_FALSE(v.bos);
  const ChunkKey t = ChunkKey::from_params({{"split", "test"}});
  EXPECT_EQ(t.split, "test");
  EXPECT_EQ(t.max_tokens, 200000);  // T200K
  EXPECT_EQ(ChunkKey::from_params({{"split", "test"}, {"max_tokens", 5000}, {"bos", 1}}).max_tokens, 5000);
  // Keys: valid keeps its historical form; test differs from valid of the same size.
  EXPECT_EQ(v.str().find("valid"), std::string::npos);
  EXPECT_NE(ChunkKey::from_params({{"split", "test"}, {"max_tokens", 2048}}).str(), v.str());
  EXPECT_THROW(ChunkKey::from_params({{"split", "train"}}), std::invalid_argument);
  EXPECT_THROW(ChunkKey::from_params({{"split", "validation"}}), std::invalid_argument);
}

TEST(ChunkKey, ChunksForUsesChunkerTForTestAndVForValid) {
  const fs::path dir = fs::temp_directory_path() / ("spt_chunks_test_" + std::to_string(::getpid()));
  fs::create_directories(dir / "data");
  std::stringstream raw;
  raw << std::ifstream(std::string(SPT_TEST_DATA) + "/tiny_wiki.raw").rdbuf();
  const std::string text = raw.str();
  ASSERT_GT(text.size(), 1000u);
  std::ofstream(dir / "data" / "wiki.valid.raw") << text;
  std::ofstream(dir / "data" / "wiki.test.raw") << text.substr(text.size() / 3) + text.substr(0, text.size() / 3);
  gpt2::TestModelSpec spec;
  gpt2::write_test_model((dir / "model").string(), spec);

  ModelHost host;
  ExecContext ctx;
  ctx.scratch_dir = (dir / "scratch").string();
  const json p = {{"model", (dir / "model").string()}, {"dataset", (dir / "data").string()}, {"chunk_len", 64},
                  {"max_tokens", 640}};
  const auto lm = host.model_for(p, ctx);
  const ChunkKey kv = ChunkKey::from_params(p), kt = ChunkKey::from_params(with_split(p));
  const auto v = host.chunks_for(kv, *lm, ctx), t = host.chunks_for(kt, *lm, ctx);
  const auto tv = data::load_wikitext((dir / "data").string(), "valid", *lm->tokenizer, false);
  const auto tt = data::load_wikitext((dir / "data").string(), "test", *lm->tokenizer, false);
  EXPECT_EQ(v->chunks, data::chunk_v(tv.tokens, 640, 64));
  EXPECT_EQ(t->chunks, data::chunk_t(tt.tokens, 640, 64));
  EXPECT_EQ(v->chunks.size(), 10u);  // V: starts up to and including N − n
  EXPECT_EQ(t->chunks.size(), 9u);   // T: starts strictly below N − n
  EXPECT_NE(v->chunks.front(), t->chunks.front());
  EXPECT_EQ(fs::path(t->data_file).filename(), "wiki.test.raw");
  EXPECT_EQ(fs::path(v->data_file).filename(), "wiki.valid.raw");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace spt::platform
