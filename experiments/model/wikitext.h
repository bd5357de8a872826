#pragma once
// WikiText-2 (raw) evaluation data (spec §2.1): the token stream the
// original scripts built with `"\n\n".join(dataset["text"])` and one
// tokenizer.encode call, and the two chunkers cut from it. Torch-free.
//
// Source files are the raw release's wiki.{train,valid,test}.raw. Rows follow
// the Hugging Face wikitext builder: the file is read with Python's universal
// newlines (\r\n and \r become \n), each line keeps its trailing "\n", and a
// line that is only whitespace (Python's str.isspace set) becomes "".
// Validation = wiki.valid.raw (3,760 rows), test = wiki.test.raw (4,358).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "spt/gpt2.h"
#include "tokenizer.h"

namespace spt::data {

std::vector<std::string> wikitext_rows(std::string_view raw);
// "\n\n".join(wikitext_rows(raw)).
std::string wikitext_text(std::string_view raw);

// The file for `split` ("valid"/"validation", "test", "train"): `path` itself
// if it is a file, else path/wiki.<split>.raw or path/wikitext-2-raw/wiki.<split>.raw.
// Throws std::runtime_error listing what it tried.
std::string find_wikitext_file(const std::string& path, const std::string& split);

struct TokenStream {
  std::vector<int32_t> tokens;
  std::string source;            // the file read
  std::string data_sha256;       // of the file's bytes
  std::string tokenizer_sha256;
  std::string tokens_sha256;     // of the ids as int32 little-endian bytes
  size_t rows = 0;
  bool bos = false;
};

// Reads, joins and tokenises one split. bos = prepend eot() (off by
// default: the original's tokenizer.encode adds none, spec §1.5).
TokenStream load_wikitext(const std::string& path, const std::string& split, const Tokenizer& tok,
                          bool bos = false);

// SHA-256 of token ids as int32 little-endian bytes.
std::string tokens_sha256(const std::vector<int32_t>& tokens);

// Chunker V (exp10 family): first max_tokens tokens (all if < 0); chunks
// start at 0, n, 2n, … up to and including N − n; if none fits and N ≥ 2,
// one chunk with all N tokens.
gpt2::Chunks chunk_v(const std::vector<int32_t>& tokens, int64_t max_tokens, int64_t n = 1024);
// Chunker T (exp6/7/8/9): first max_tokens tokens (all if < 0); chunks start
// at 0, n, … strictly below N − n; the tail is dropped. N = 200,000 → 195.
gpt2::Chunks chunk_t(const std::vector<int32_t>& tokens, int64_t max_tokens = 200000, int64_t n = 1024);

}  // namespace spt::data
