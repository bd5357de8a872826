#pragma once
// UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF), for input checks at the door: params, dataset files,
// text printed to a terminal. Header-only and dependency-free; the
// validator is a value type, not shared between threads.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace spt::utf8 {

// Incremental validator: feed bytes in pieces (a file in chunks); a
// sequence may span pieces. `error_at()` is the offset (over all bytes fed)
// of the first byte of the first invalid sequence, or npos while valid.
class Validator {
 public:
  static constexpr size_t npos = static_cast<size_t>(-1);

  void feed(std::string_view s) {
    for (size_t i = 0; i < s.size() && error_ == npos; ++i) step(static_cast<unsigned char>(s[i]));
  }
  // Call after the last piece: a sequence cut short at the end is invalid.
  size_t finish() {
    if (error_ == npos && need_ > 0) error_ = start_;
    return error_;
  }
  size_t error_at() const { return error_; }
  size_t consumed() const { return pos_; }

 private:
  void step(unsigned char c) {
    if (need_ == 0) {
      start_ = pos_;
      if (c < 0x80) {
      } else if (c >= 0xC2 && c <= 0xDF) {
        need_ = 1, lo_ = 0x80, hi_ = 0xBF;
      } else if (c >= 0xE0 && c <= 0xEF) {
        // E0: no overlong forms; ED: no UTF-16 surrogates.
        need_ = 2, lo_ = c == 0xE0 ? 0xA0 : 0x80, hi_ = c == 0xED ? 0x9F : 0xBF;
      } else if (c >= 0xF0 && c <= 0xF4) {
        // F0: no overlong forms; F4: nothing above U+10FFFF.
        need_ = 3, lo_ = c == 0xF0 ? 0x90 : 0x80, hi_ = c == 0xF4 ? 0x8F : 0xBF;
      } else {
        error_ = pos_;
      }
    } else {
      if (c < lo_ || c > hi_) {
        error_ = start_;
        return;
      }
      --need_, lo_ = 0x80, hi_ = 0xBF;
    }
    ++pos_;
  }

  size_t pos_ = 0, start_ = 0, error_ = npos;
  int need_ = 0;
  unsigned char lo_ = 0x80, hi_ = 0xBF;
};

// Offset of the first invalid byte of `s`, or npos when `s` is valid UTF-8.
inline size_t invalid_at(std::string_view s) {
  Validator v;
  v.feed(s);
  return v.finish();
}

// Length of the valid UTF-8 sequence starting at s[i] (1-4), or 0 if the
// bytes there do not start one.
inline size_t sequence_length(std::string_view s, size_t i) {
  Validator v;
  for (size_t n = 1; n <= 4 && i + n <= s.size(); ++n) {
    v.feed(s.substr(i + n - 1, 1));
    if (v.error_at() != Validator::npos) return 0;
    Validator probe = v;
    if (probe.finish() == Validator::npos) return n;
  }
  return 0;
}

// Bidirectional overrides and isolates: they reorder what follows them on
// screen ("Trojan Source"), so a name could disguise the text after it.
inline bool bidi_control(uint32_t cp) { return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069); }

// `s` safe for a terminal or a log line: C0 controls (except \t, and \n
// when `multiline`), DEL and bytes that are not UTF-8 become "\xNN"; C1
// controls (U+0080-U+009F; U+009B is CSI on some terminals) and bidi
// controls become "\uNNNN". Valid printable UTF-8 passes unchanged.
inline std::string escape_controls(std::string_view s, bool multiline = false) {
  auto esc = [](const char* f, uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, f, v);
    return std::string(buf);
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      const bool control = (c < 0x20 && c != '\t' && !(multiline && c == '\n')) || c == 0x7F;
      out += control ? esc("\\x%02x", c) : std::string(1, static_cast<char>(c));
      ++i;
      continue;
    }
    const size_t n = sequence_length(s, i);
    if (n == 0) {
      out += esc("\\x%02x", c);
      ++i;
      continue;
    }
    static constexpr unsigned char kLeadMask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = c & kLeadMask[n];
    for (size_t k = 1; k < n; ++k) cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    if (cp <= 0x9F || bidi_control(cp))
      out += esc("\\u%04x", cp);
    else
      out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace spt::utf8
