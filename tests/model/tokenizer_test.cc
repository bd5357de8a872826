// GPT-2 tokenizer: exact ids against Hugging Face (golden cases) and an
// independent reference, round trips over arbitrary bytes, the special
// token, and clear errors on bad files.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "spt/hash.h"
#include "spt/util.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

const std::string kGpt2Dir = SPT_GPT2_TOKENIZER_DIR;

// The real GPT-2 files are required: missing files fail loudly.
const Tokenizer& gpt2() {
  static const Tokenizer* tok = [] {
    if (!fs::exists(kGpt2Dir + "/encoder.json") || !fs::exists(kGpt2Dir + "/vocab.bpe"))
      throw std::runtime_error("GPT-2 tokenizer files missing in " + kGpt2Dir + "; run scripts/setup.sh");
    return new Tokenizer(Tokenizer::from_dir(kGpt2Dir));
  }();
  return *tok;
}

class Gpt2Tokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kGpt2Dir + "/encoder.json"))
        << "GPT-2 tokenizer files missing in " << kGpt2Dir << "; run scripts/setup.sh";
  }
};

nlohmann::json cases_file() {
  return nlohmann::json::parse(read_file(std::string(SPT_TEST_DATA) + "/tokenizer_cases.json"));
}

void expect_cases(const nlohmann::json& cases) {
  ASSERT_TRUE(cases.is_array());
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const Ids want = c.at("ids").get<Ids>();
    EXPECT_EQ(gpt2().encode(text), want) << "text: " << text;
    EXPECT_EQ(gpt2().decode(want), text);
  }
}

// A temp folder removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("spt_tok_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(std::random_device()()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name, const std::string& bytes) const {
    const std::string p = (path / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
};

// A tiny byte-level vocab: the 256 byte tokens, then extra tokens given as
// ASCII strings (their bytes are their own alphabet characters).
std::string tiny_vocab(const std::vector<std::string>& extra) {
  nlohmann::json v = nlohmann::json::object();
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int cp = printable ? b : next++;
    std::string utf8;
    if (cp < 0x80) {
      utf8 = std::string(1, static_cast<char>(cp));
    } else {
      utf8 = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    }
    v[utf8] = b;
  }
  int id = 256;
  for (const auto& t : extra) v[t] = id++;
  return v.dump();
}

TEST_F(Gpt2Tokenizer, MatchesHuggingFaceGoldenCases) {
  const auto f = cases_file();
  EXPECT_NE(f.at("source").get<std::string>().find("HF tokenizers"), std::string::npos);
  EXPECT_EQ(f.at("cases").size(), 19u);
  expect_cases(f.at("cases"));
}

TEST_F(Gpt2Tokenizer, MatchesReferenceOnLongUnicodeTexts) { expect_cases(cases_file().at("reference_cases")); }

TEST_F(Gpt2Tokenizer, KnownSentences) {
  EXPECT_EQ(gpt2().encode("Hello, world!"), (Ids{15496, 11, 995, 0}));
  EXPECT_EQ(gpt2().encode("The capital of France is"), (Ids{464, 3139, 286, 4881, 318}));
  EXPECT_EQ(gpt2().encode(""), Ids{});
}

TEST_F(Gpt2Tokenizer, SpecTargetWordsAreSingleTokens) {
  const std::pair<const char*, int32_t> words[] = {{" bank", 3331},  {" bat", 7365},   {" crane", 41175},
                                                   {" spring", 6076}, {" rock", 3881},  {" match", 2872},
                                                   {" light", 1657},  {" pitcher", 18086}, {" bass", 12702}};
  for (const auto& [w, id] : words) {
    EXPECT_EQ(gpt2().encode(w), Ids{id}) << w;
    EXPECT_EQ(gpt2().token_str(id), w);
    EXPECT_EQ(gpt2().token_id(w), id);
  }
  // §1.5: "Sunlight cast a golden light" → [BOS, "Sun", "light", ..., " light"].
  const Ids ids = gpt2().encode("<|endoftext|>Sunlight cast a golden light");
  ASSERT_EQ(ids.size(), 7u);
  EXPECT_EQ(ids.front(), 50256);
  EXPECT_EQ(gpt2().token_str(ids[2]), "light");
  EXPECT_EQ(ids.back(), 1657);
}

TEST_F(Gpt2Tokenizer, EndOfTextIsTheSpecialToken) {
  const Tokenizer& t = gpt2();
  EXPECT_EQ(t.eot(), 50256);
  EXPECT_EQ(t.vocab_size(), 50257u);
  EXPECT_EQ(t.num_merges(), 50000u);
  EXPECT_EQ(t.encode("<|endoftext|>The bat"), (Ids{50256, 464, 7365}));
  EXPECT_EQ(t.encode("a<|endoftext|>b"), (Ids{64, 50256, 65}));
  EXPECT_EQ(t.encode("<|endoftext|><|endoftext|>"), (Ids{50256, 50256}));
  // Text around the special token is encoded as separate strings.
  EXPECT_EQ(t.encode(" <|endoftext|> x"), (Ids{220, 50256, 2124}));
  EXPECT_EQ(t.decode({50256}), "<|endoftext|>");
  const Ids plain = t.encode_ordinary("<|endoftext|>");
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(t.decode(plain), "<|endoftext|>");
  // An unfinished marker is ordinary text.
  EXPECT_EQ(t.encode("<|endoftext"), t.encode_ordinary("<|endoftext"));
}

TEST_F(Gpt2Tokenizer, WhitespaceRuns) {
  const Tokenizer& t = gpt2();
  // "\s+(?!\S)": a run before a word leaves its last space to the word.
  EXPECT_EQ(t.encode("a   b"), (Ids{64, 220, 220, 275}));
  EXPECT_EQ(t.encode("\n\n"), (Ids{628}));
  // Unicode White_Space (NBSP, U+0085) counts as space; U+180E does not.
  EXPECT_EQ(t.encode("x \xC2\xA0y"), (Ids{87, 220, 1849, 88}));
  // A long run exercises the regex engine's backtracking limits.
  const std::string spaces(100000, ' ');
  const Ids ids = t.encode(spaces + "x");
  ASSERT_EQ(ids.size(), 100000u);
  EXPECT_EQ(ids.front(), 220);
  EXPECT_EQ(ids.back(), 2124);  // " x"
  EXPECT_EQ(t.decode(ids), spaces + "x");
}

TEST_F(Gpt2Tokenizer, LongWordsUseTheSameMergeOrder) {
  const Tokenizer& t = gpt2();
  EXPECT_EQ(t.encode(std::string(300, 'a')), Ids(75, 24794));  // "aaaa" × 75, as HF
  EXPECT_EQ(t.encode(std::string(200000, 'q')), Ids(100000, 38227));  // "qq" × 100000
  // Expected length and weighted checksum Σ (i+1)·id mod 1e9+7 from the
  // Python reference (tests/data/tokenizer_cases.json's second source).
  auto check = [&](const std::string& word, size_t n, int64_t sum) {
    const Ids ids = t.encode(word);
    int64_t s = 0;
    for (size_t i = 0; i < ids.size(); ++i) s = (s + static_cast<int64_t>(i + 1) * ids[i]) % 1000000007;
    EXPECT_EQ(ids.size(), n);
    EXPECT_EQ(s, sum);
    EXPECT_EQ(t.decode(ids), word);
  };
  std::string w1, w2;
  for (int i = 0; i < 2000; ++i) w1 += "abcdefghij";
  for (int i = 0; i < 300; ++i) w2 += "pneumonoultramicroscopicsilicovolcanoconiosis";
  check(w1, 8000, 822003375);
  check(w2, 4500, 68786092);
}

TEST_F(Gpt2Tokenizer, InvalidUtf8IsEncodedByteLevel) {
  const Tokenizer& t = gpt2();
  const std::string cases[] = {"\xFF", "abc\xFF\xFE" "def", "\xC3", "caf\xC3", "\xED\xA0\x80 surrogate",
                               "\xF4\x90\x80\x80", "\xC0\xAF overlong", " \x80\x80\x80 x", "\xE6\x97\xA5\xE6"};
  for (const std::string& s : cases) EXPECT_EQ(t.decode(t.encode(s)), s);
  // An invalid run is a pre-token of its own between valid neighbours.
  const Ids a = t.encode("abc"), ff = t.encode("\xFF"), d = t.encode("def");
  Ids joined = a;
  joined.insert(joined.end(), ff.begin(), ff.end());
  joined.insert(joined.end(), d.begin(), d.end());
  EXPECT_EQ(t.encode("abc\xFF" "def"), joined);
  EXPECT_EQ(ff, Ids{t.token_id("\xFF")});
}

TEST_F(Gpt2Tokenizer, RandomByteStringsRoundTrip) {
  const Tokenizer& t = gpt2();
  std::mt19937 rng(12345);
  const std::vector<std::string> pieces = {" ", "  ", "\n", "\t", "a", "Z", "7", "'s", "'", "-", "é", "日",
                                           "🙂", "\xC2\xA0", "<|endoftext|>", "\xFF", "\xE2\x80", "\x00"};
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    const int len = static_cast<int>(rng() % 48);
    for (int i = 0; i < len; ++i) {
      if (rng() % 2) {
        s.push_back(static_cast<char>(rng() % 256));
      } else {
        s += pieces[rng() % pieces.size()];
      }
    }
    const Ids ids = t.encode(s);
    for (int32_t id : ids) ASSERT_LT(static_cast<size_t>(id), t.vocab_size());
    ASSERT_EQ(t.decode(ids), s) << "iteration " << iter;
    ASSERT_EQ(t.decode(t.encode_ordinary(s)), s) << "iteration " << iter;
  }
}

TEST_F(Gpt2Tokenizer, DecodeUtf8ReplacesPartialCharacters) {
  const Tokenizer& t = gpt2();
  const Ids ids = t.encode("🙂");  // split over several byte tokens
  ASSERT_GT(ids.size(), 1u);
  EXPECT_EQ(t.decode_utf8(ids), "🙂");
  EXPECT_EQ(t.token_str(ids[0]), "\xEF\xBF\xBD");
  EXPECT_THROW(t.decode({50257}), std::out_of_range);
  EXPECT_THROW(t.decode({-1}), std::out_of_range);

  EXPECT_EQ(Tokenizer::to_valid_utf8("ok é 日 🙂"), "ok é 日 🙂");
  EXPECT_EQ(Tokenizer::to_valid_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(Tokenizer::to_valid_utf8("\xE2\x82"), "\xEF\xBF\xBD");  // one maximal subpart
  EXPECT_EQ(Tokenizer::to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Tokenizer::to_valid_utf8("\xF0\x9F\x99"), "\xEF\xBF\xBD");
  EXPECT_EQ(Tokenizer::to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(Gpt2Tokenizer, ProvenanceAndLoading) {
  const Tokenizer& t = gpt2();
  const std::string vocab = kGpt2Dir + "/encoder.json", merges = kGpt2Dir + "/vocab.bpe";
  EXPECT_EQ(t.sha256(), sha256_hex(read_file(vocab) + read_file(merges)));
  EXPECT_EQ(t.vocab_path(), vocab);
  const Tokenizer again = Tokenizer::from_files(vocab, merges);
  EXPECT_EQ(again.sha256(), t.sha256());
  EXPECT_EQ(again.encode("Same tables, same ids."), t.encode("Same tables, same ids."));
}

TEST_F(Gpt2Tokenizer, DefaultFindsTheNpmCopyOrTheEnvironment) {
  ::unsetenv("SPT_TOKENIZER_DIR");
  EXPECT_EQ(Tokenizer::default_gpt2().sha256(), gpt2().sha256());

  TempDir d;
  d.file("vocab.json", tiny_vocab({}));
  d.file("merges.txt", "#version: 0.2\n" + std::string("a b\n"));  // "ab" is not in the vocab
  EXPECT_THROW(Tokenizer::default_gpt2(d.path.string()), std::runtime_error);
  d.file("vocab.json", tiny_vocab({"ab"}));
  EXPECT_EQ(Tokenizer::default_gpt2(d.path.string()).vocab_size(), 257u);  // $SPT_TOKENIZER_DIR unset
  ::setenv("SPT_TOKENIZER_DIR", d.path.c_str(), 1);
  EXPECT_EQ(Tokenizer::default_gpt2().vocab_size(), 257u);
  ::setenv("SPT_TOKENIZER_DIR", (d.path / "nothing-here").c_str(), 1);
  EXPECT_EQ(Tokenizer::default_gpt2().vocab_size(), 50257u);  // falls through to the npm copy
  ::unsetenv("SPT_TOKENIZER_DIR");
}

TEST_F(Gpt2Tokenizer, ConcurrentEncodersAgree) {
  const std::string text = cases_file().at("reference_cases")[0].at("text").get<std::string>();
  const Ids want = gpt2().encode(text);
  std::vector<Ids> got(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] {
      const Tokenizer copy = gpt2();  // copies share tables and the cache
      for (int k = 0; k < 50; ++k) {
        // Fresh words each round, so threads fill the shared cache together.
        const std::string salt = " w" + std::to_string(i * 1000 + k) + "x" + std::to_string(k * 7919);
        if (copy.decode(copy.encode(text + salt)) != text + salt) return;
      }
      got[i] = copy.encode(text);
    });
  for (auto& th : threads) th.join();
  for (const Ids& g : got) EXPECT_EQ(g, want);
}

// ---- tiny vocabularies: merge order and error handling ---------------------

TEST(TokenizerMerges, LowestRankFirstLeftmostOnTies) {
  TempDir d;
  // ranks: "a a" 0, "b c" 1, "aa b" 2, "c d" 3
  const auto v = d.file("vocab.json", tiny_vocab({"aa", "bc", "aab", "cd"}));
  const auto m = d.file("merges.txt", "#version: 0.2\na a\nb c\naa b\nc d\n");
  const Tokenizer t = Tokenizer::from_files(v, m);
  EXPECT_EQ(t.vocab_size(), 260u);
  EXPECT_EQ(t.eot(), -1);
  auto strs = [&](const std::string& s) {
    std::vector<std::string> out;
    for (int32_t id : t.encode(s)) out.push_back(t.token_str(id));
    return out;
  };
  EXPECT_EQ(strs("aaa"), (std::vector<std::string>{"aa", "a"}));           // leftmost pair first
  EXPECT_EQ(strs("aabcd"), (std::vector<std::string>{"aa", "bc", "d"}));   // "b c" (1) beats "c d" (3)
  EXPECT_EQ(strs("aab"), (std::vector<std::string>{"aab"}));
  EXPECT_EQ(strs("acd"), (std::vector<std::string>{"a", "cd"}));
  EXPECT_EQ(strs("<|endoftext|>").size(), 13u);  // no special token in this vocab
}

TEST(TokenizerErrors, MissingFilesNameThePath) {
  TempDir d;
  const std::string v = (d.path / "nope.json").string();
  try {
    Tokenizer::from_files(v, (d.path / "nope.txt").string());
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(v), std::string::npos) << e.what();
  }
  try {
    Tokenizer::from_dir(d.path.string());
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("merges.txt"), std::string::npos) << e.what();
  }
}

// Returns the message of the runtime_error from_files throws ("" if none).
std::string load_error(const std::string& vocab, const std::string& merges) {
  TempDir d;
  try {
    Tokenizer::from_files(d.file("vocab.json", vocab), d.file("merges.txt", merges));
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(TokenizerErrors, CorruptFilesAreRejected) {
  const std::string good_merges = "#version: 0.2\na b\n";
  const std::string good_vocab = tiny_vocab({"ab"});
  EXPECT_EQ(load_error(good_vocab, good_merges), "");

  EXPECT_NE(load_error("{\"a\": 1,", good_merges).find("vocab.json: not JSON"), std::string::npos);
  EXPECT_NE(load_error("[1, 2]", good_merges).find("vocab.json"), std::string::npos);
  EXPECT_NE(load_error("{}", good_merges).find("vocab.json"), std::string::npos);
  EXPECT_NE(load_error(tiny_vocab({}), good_merges).find("merges.txt line 2"), std::string::npos);
  EXPECT_NE(load_error(good_vocab, "#version: 0.2\na\n").find("line 2"), std::string::npos);
  EXPECT_NE(load_error(good_vocab, "#version: 0.2\na b c\n").find("line 2"), std::string::npos);
  EXPECT_NE(load_error(good_vocab, "#version: 0.2\n\na b\n").find("empty line"), std::string::npos);
  EXPECT_NE(load_error(good_vocab, "").find("no merges"), std::string::npos);

  nlohmann::json v = nlohmann::json::parse(good_vocab);
  v["ab"] = 5;  // duplicate id
  EXPECT_NE(load_error(v.dump(), good_merges).find("used twice"), std::string::npos);
  v["ab"] = 900;  // out of range
  EXPECT_NE(load_error(v.dump(), good_merges).find("outside"), std::string::npos);
  v["ab"] = "x";
  EXPECT_NE(load_error(v.dump(), good_merges).find("not an integer"), std::string::npos);
  v["ab"] = 256;
  v["日"] = 257;  // not in the byte alphabet
  EXPECT_NE(load_error(v.dump(), good_merges).find("byte alphabet"), std::string::npos);
  v.erase("日");
  v.erase("a");  // byte 'a' has no token
  v["zz"] = 97;
  EXPECT_NE(load_error(v.dump(), good_merges).find("no token for byte 97"), std::string::npos);
}

}  // namespace
}  // namespace spt
