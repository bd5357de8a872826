// WikiText-2 rows (HF builder semantics), the text join, and chunkers V and T
// against the spec §2.1 table.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "model/wikitext.h"
#include "spt/hash.h"

namespace spt::data {
namespace {

namespace fs = std::filesystem;

std::vector<int32_t> iota(int n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(WikiText, RowsFollowTheHfBuilder) {
  const std::string raw = " \n = Valkyria = \n \n\tSenjō no\r\n\xc2\xa0\n\xe3\x80\x80 \nlast";
  const auto rows = wikitext_rows(raw);
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_EQ(rows[0], "");                  // whitespace-only → ""
  EXPECT_EQ(rows[1], " = Valkyria = \n");  // keeps its newline
  EXPECT_EQ(rows[2], "");
  EXPECT_EQ(rows[3], "\tSenjō no\n");      // \r\n → \n
  EXPECT_EQ(rows[4], "");                  // NBSP is whitespace to Python
  EXPECT_EQ(rows[5], "");                  // so is U+3000
  EXPECT_EQ(rows[6], "last");              // no trailing newline
  EXPECT_EQ(wikitext_text(raw), "\n\n = Valkyria = \n\n\n\n\n\tSenjō no\n\n\n\n\n\n\nlast");
  EXPECT_EQ(wikitext_rows("").size(), 0u);
  EXPECT_EQ(wikitext_text("a\nb\n"), "a\n\n\nb\n");
}

TEST(WikiText, ChunkerTMatchesSpecTable) {
  const auto toks = iota(300000);
  const auto t200k = chunk_t(toks, 200000, 1024);
  EXPECT_EQ(t200k.size(), 195u);  // T200K
  int64_t predicted = 0;
  for (const auto& c : t200k) {
    ASSERT_EQ(c.size(), 1024u);
    predicted += static_cast<int64_t>(c.size()) - 1;
  }
  EXPECT_EQ(predicted, 195 * 1023);
  EXPECT_EQ(t200k[1][0], 1024);
  EXPECT_EQ(t200k.back()[0], 194 * 1024);
  // N − n a multiple of n: the last full chunk is dropped too.
  EXPECT_EQ(chunk_t(iota(2048), 2048, 1024).size(), 1u);
  EXPECT_EQ(chunk_t(iota(2049), 2049, 1024).size(), 2u);
  EXPECT_EQ(chunk_t(iota(1024), -1, 1024).size(), 0u);
}

TEST(WikiText, ChunkerVMatchesSpecTable) {
  const auto toks = iota(260000);
  const auto v2k = chunk_v(toks, 2048, 1024);  // V2K
  ASSERT_EQ(v2k.size(), 2u);
  EXPECT_EQ(v2k[1].front(), 1024);
  EXPECT_EQ(v2k[1].back(), 2047);
  EXPECT_EQ(chunk_v(iota(251000), 999999, 1024).size(), 245u);  // VFULL-like
  // V50K-n
  EXPECT_EQ(chunk_v(toks, 50000, 128).size(), 390u);
  EXPECT_EQ(chunk_v(toks, 50000, 256).size(), 195u);
  EXPECT_EQ(chunk_v(toks, 50000, 512).size(), 97u);
  EXPECT_EQ(chunk_v(toks, 50000, 1024).size(), 48u);
  // Up to and including N − n.
  EXPECT_EQ(chunk_v(iota(2047), -1, 1024).size(), 1u);
  // Nothing fits: one chunk with all tokens if N ≥ 2.
  const auto small = chunk_v(iota(700), -1, 1024);
  ASSERT_EQ(small.size(), 1u);
  EXPECT_EQ(small[0].size(), 700u);
  EXPECT_EQ(chunk_v(iota(1), -1, 1024).size(), 0u);
}

TEST(WikiText, LoadsAndTokenisesOneSplit) {
  const fs::path dir = fs::temp_directory_path() / ("spt_wt_" + std::to_string(::getpid()));
  fs::create_directories(dir / "wikitext-2-raw");
  const std::string raw = " \n = Robert Boulter = \n \n Robert Boulter is an English film actor .\n";
  std::ofstream(dir / "wikitext-2-raw" / "wiki.valid.raw", std::ios::binary) << raw;
  const Tokenizer tok = Tokenizer::default_gpt2();
  const TokenStream ts = load_wikitext(dir.string(), "validation", tok);
  EXPECT_EQ(ts.rows, 4u);
  EXPECT_EQ(ts.data_sha256, sha256_hex(raw));
  EXPECT_EQ(ts.tokens, tok.encode(wikitext_text(raw)));
  EXPECT_EQ(ts.tokens_sha256, tokens_sha256(ts.tokens));
  EXPECT_EQ(ts.tokenizer_sha256, tok.sha256());
  EXPECT_FALSE(ts.tokens.empty());
  EXPECT_NE(ts.tokens.front(), tok.eot());
  const TokenStream with_bos = load_wikitext(dir.string(), "valid", tok, /*bos=*/true);
  EXPECT_EQ(with_bos.tokens.front(), tok.eot());
  EXPECT_EQ(with_bos.tokens.size(), ts.tokens.size() + 1);
  EXPECT_THROW(load_wikitext(dir.string(), "test", tok), std::runtime_error);
  EXPECT_THROW(load_wikitext(dir.string(), "dev", tok), std::invalid_argument);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace spt::data
