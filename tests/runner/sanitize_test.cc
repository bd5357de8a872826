// The client's print boundary (issue 12): printable() / make_printable()
// and the UTF-8 validator under them (spt/utf8.h).
#include <gtest/gtest.h>

#include "format.h"
#include "spt/utf8.h"

namespace spt::client {
namespace {

TEST(Printable, EscapesControlsAndKeepsText) {
  EXPECT_EQ(printable("gpu-node-7"), "gpu-node-7");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82"),
            "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82");  // UTF-8 text unchanged
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(printable("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
  EXPECT_EQ(printable("x\ry\bz\x7f"), "x\\x0dy\\x08z\\x7f");
  EXPECT_EQ(printable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printable("tab\there"), "tab\there");
  EXPECT_EQ(printable("two\nlines"), "two\\x0alines");
  EXPECT_EQ(printable("two\nlines", true), "two\nlines");
  EXPECT_EQ(printable("csi\xc2\x9b" "31m"), "csi\\u009b31m");     // C1 CSI
  EXPECT_EQ(printable("\xc2\x85"), "\\u0085");                    // C1 NEL
  EXPECT_EQ(printable("\xc2\xa0"), "\xc2\xa0");                   // U+00A0 is text
  EXPECT_EQ(printable("abc\xe2\x80\xae" "cba"), "abc\\u202ecba");  // right-to-left override
  EXPECT_EQ(printable("bad\xff\xfe"), "bad\\xff\\xfe");
  EXPECT_EQ(printable("cut\xe2\x82"), "cut\\xe2\\x82");  // a truncated sequence shows its bytes
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");        // overlong "/"
}

TEST(Printable, NothingEscapableSurvives) {
  // Every single byte and every 2-byte pair: the output holds no byte below
  // 0x20 but \t, no DEL, and is valid UTF-8.
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; b += (a < 0x80 ? 255 : 1)) {
      const std::string in{static_cast<char>(a), static_cast<char>(b)};
      const std::string out = printable(in);
      for (unsigned char c : out) ASSERT_TRUE((c >= 0x20 && c != 0x7f) || c == '\t') << a << "," << b;
      ASSERT_EQ(utf8::invalid_at(out), utf8::Validator::npos) << a << "," << b;
      ASSERT_EQ(out.find("\xc2\x9b"), std::string::npos);
    }
}

TEST(Utf8, Validation) {
  EXPECT_EQ(utf8::invalid_at(""), utf8::Validator::npos);
  EXPECT_EQ(utf8::invalid_at("plain"), utf8::Validator::npos);
  EXPECT_EQ(utf8::invalid_at("\xf4\x8f\xbf\xbf"), utf8::Validator::npos);  // U+10FFFF
  EXPECT_EQ(utf8::invalid_at("ab\xff"), 2u);
  EXPECT_EQ(utf8::invalid_at("ab\xc3(x"), 2u);
  EXPECT_EQ(utf8::invalid_at("x\xed\xa0\x80"), 1u);       // a UTF-16 surrogate
  EXPECT_EQ(utf8::invalid_at("xy\xf4\x90\x80\x80"), 2u);  // above U+10FFFF
  EXPECT_EQ(utf8::invalid_at("\xe0\x80\xaf"), 0u);        // overlong
  EXPECT_EQ(utf8::invalid_at("ok\xe2\x82"), 2u);          // cut short at the end
  EXPECT_EQ(utf8::invalid_at("\x80"), 0u);                // a lone continuation byte
  // Fed in pieces, a sequence may span them.
  utf8::Validator v;
  v.feed("a\xe2");
  v.feed("\x82");
  EXPECT_EQ(v.error_at(), utf8::Validator::npos);
  v.feed("\xac");
  EXPECT_EQ(v.finish(), utf8::Validator::npos);
  utf8::Validator w;
  w.feed("abc\xe2\x82");
  w.feed("z");
  EXPECT_EQ(w.finish(), 3u);
}

TEST(MakePrintable, EveryStringFieldOfAResponse) {
  v1::StatusResponse s;
  auto* w = s.add_workers();
  w->set_name("w\x1b[2J");
  w->mutable_capabilities()->set_device_name("d\x1b[31m");
  w->add_current_job_names("job\r1");
  w->set_quarantined("line one\nline two\x1b[0m");
  auto* e = s.add_experiments();
  e->set_name("exp\x07");
  auto* f = e->add_failures();
  f->set_error("boom\x1b[1m\nsecond line");
  f->set_example_job("map/\x1b" "7");
  make_printable(&s);
  EXPECT_EQ(s.workers(0).name(), "w\\x1b[2J");
  EXPECT_EQ(s.workers(0).capabilities().device_name(), "d\\x1b[31m");
  EXPECT_EQ(s.workers(0).current_job_names(0), "job\\x0d1");
  EXPECT_EQ(s.workers(0).quarantined(), "line one\nline two\\x1b[0m");  // multi-line text keeps \n
  EXPECT_EQ(s.experiments(0).name(), "exp\\x07");
  EXPECT_EQ(s.experiments(0).failures(0).error(), "boom\\x1b[1m\nsecond line");
  EXPECT_EQ(s.experiments(0).failures(0).example_job(), "map/\\x1b7");
  // And the renderings built from it carry no ESC.
  const std::string out = dashboard(s);
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
  EXPECT_NE(out.find("w\\x1b[2J"), std::string::npos) << out;

  v1::LogsResponse l;
  l.set_log("step 1\nstep 2\x1b[2K\n");
  l.mutable_job()->set_name("a\nb");
  make_printable(&l);
  EXPECT_EQ(l.log(), "step 1\nstep 2\\x1b[2K\n");
  EXPECT_EQ(l.job().name(), "a\\x0ab");
}

}  // namespace
}  // namespace spt::client
