#include "wikitext.h"

#include <filesystem>
#include <stdexcept>

#include "spt/hash.h"
#include "spt/util.h"

namespace fs = std::filesystem;

namespace spt::data {
namespace {

bool py_space(uint32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Python's `not line.strip()`: empty or only whitespace code points. Bytes
// that are not valid UTF-8 count as non-space.
bool blank(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t len;
    if (b < 0x80) cp = b, len = 1;
    else if ((b >> 5) == 6) cp = b & 0x1f, len = 2;
    else if ((b >> 4) == 14) cp = b & 0x0f, len = 3;
    else if ((b >> 3) == 30) cp = b & 0x07, len = 4;
    else return false;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cb = static_cast<unsigned char>(s[i + k]);
      if ((cb >> 6) != 2) return false;
      cp = (cp << 6) | (cb & 0x3f);
    }
    if (!py_space(cp)) return false;
    i += len;
  }
  return true;
}

}  // namespace

std::vector<std::string> wikitext_rows(std::string_view raw) {
  std::vector<std::string> rows;
  std::string line;
  auto flush = [&] {
    rows.push_back(blank(line) ? std::string() : line);
    line.clear();
  };
  for (size_t i = 0; i < raw.size(); ++i) {
    char ch = raw[i];
    if (ch == '\r') {  // universal newlines
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
      ch = '\n';
    }
    line.push_back(ch);
    if (ch == '\n') flush();
  }
  if (!line.empty()) flush();
  return rows;
}

std::string wikitext_text(std::string_view raw) {
  const auto rows = wikitext_rows(raw);
  std::string text;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i) text += "\n\n";
    text += rows[i];
  }
  return text;
}

std::string find_wikitext_file(const std::string& path, const std::string& split) {
  std::string s = split;
  if (s == "validation") s = "valid";
  if (s != "valid" && s != "test" && s != "train")
    throw std::invalid_argument("unknown WikiText split '" + split + "' (valid, test or train)");
  if (fs::is_regular_file(path)) return path;
  const std::string name = "wiki." + s + ".raw";
  const std::vector<fs::path> tries = {fs::path(path) / name, fs::path(path) / "wikitext-2-raw" / name};
  for (const auto& p : tries)
    if (fs::is_regular_file(p)) return p.string();
  throw std::runtime_error("WikiText-2 raw file for split '" + split + "' not found (tried " + path + ", " +
                           tries[0].string() + ", " + tries[1].string() +
                           "); get wikitext-2-raw-v1 (wiki." + s + ".raw) on a machine with internet");
}

std::string tokens_sha256(const std::vector<int32_t>& tokens) {
  std::string bytes(tokens.size() * 4, '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto v = static_cast<uint32_t>(tokens[i]);
    for (int k = 0; k < 4; ++k) bytes[4 * i + k] = static_cast<char>((v >> (8 * k)) & 0xff);
  }
  return sha256_hex(bytes);
}

TokenStream load_wikitext(const std::string& path, const std::string& split, const Tokenizer& tok, bool bos) {
  TokenStream ts;
  ts.source = find_wikitext_file(path, split);
  const std::string raw = spt::read_file(ts.source);
  ts.data_sha256 = sha256_hex(raw);
  ts.rows = wikitext_rows(raw).size();
  const std::string text = wikitext_text(raw);
  if (bos) {
    if (tok.eot() < 0) throw std::runtime_error("tokenizer has no <|endoftext|> token for BOS");
    ts.tokens.push_back(tok.eot());
  }
  const auto ids = tok.encode(text);
  ts.tokens.insert(ts.tokens.end(), ids.begin(), ids.end());
  ts.tokenizer_sha256 = tok.sha256();
  ts.tokens_sha256 = tokens_sha256(ts.tokens);
  ts.bos = bos;
  return ts;
}

gpt2::Chunks chunk_v(const std::vector<int32_t>& tokens, int64_t max_tokens, int64_t n) {
  if (n < 1) throw std::invalid_argument("chunk length must be >= 1");
  const int64_t N = max_tokens < 0 ? static_cast<int64_t>(tokens.size())
                                   : std::min<int64_t>(max_tokens, static_cast<int64_t>(tokens.size()));
  gpt2::Chunks out;
  for (int64_t s = 0; s + n <= N; s += n) out.emplace_back(tokens.begin() + s, tokens.begin() + s + n);
  if (out.empty() && N >= 2) out.emplace_back(tokens.begin(), tokens.begin() + N);
  return out;
}

gpt2::Chunks chunk_t(const std::vector<int32_t>& tokens, int64_t max_tokens, int64_t n) {
  if (n < 1) throw std::invalid_argument("chunk length must be >= 1");
  const int64_t N = max_tokens < 0 ? static_cast<int64_t>(tokens.size())
                                   : std::min<int64_t>(max_tokens, static_cast<int64_t>(tokens.size()));
  gpt2::Chunks out;
  for (int64_t s = 0; s < N - n; s += n) out.emplace_back(tokens.begin() + s, tokens.begin() + s + n);
  return out;
}

}  // namespace spt::data
