#include "strata/text/utf8.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata::text {
namespace {

TEST(Utf8, ReadsAndWritesCodePointsOfEachLength) {
  const std::string text = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  EXPECT_EQ(code_point_at(text, 0).value, U'a');
  EXPECT_EQ(code_point_at(text, 1).value, U'\u00E9');
  EXPECT_EQ(code_point_at(text, 1).length, 2);
  EXPECT_EQ(code_point_at(text, 3).value, U'\u4E2D');
  EXPECT_EQ(code_point_at(text, 6).value, U'\U0001F600');
  EXPECT_EQ(code_point_at(text, 6).length, 4);
  std::string out;
  for (char32_t c : {U'a', U'\u00E9', U'\u4E2D', U'\U0001F600'}) append_utf8(out, c);
  EXPECT_EQ(out, text);
}

TEST(Utf8, ValidPrefixStopsAtACharacterCutShort) {
  EXPECT_EQ(valid_utf8_prefix("ab\xE4\xB8"), 2u);        // 中 without its last byte
  EXPECT_EQ(valid_utf8_prefix("ab\xED\xA0\x80"), 2u);    // a surrogate
  EXPECT_EQ(valid_utf8_prefix("\xC0\xAF"), 0u);          // an overlong '/'
  EXPECT_EQ(valid_utf8_prefix("ok \xE4\xB8\xAD"), 6u);
}

TEST(Utf8, LossyReplacesEachMaximalInvalidSubpartOnce) {
  // Unicode's "substitution of maximal subparts": a truncated 3-byte sequence is one U+FFFD; an
  // overlong or surrogate sequence is one per byte, since no prefix of it is valid.
  EXPECT_EQ(utf8_lossy("a\xE4\xB8z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(Utf8, CheckNamesTheByteThatIsWrong) {
  EXPECT_EQ(testing::error_of([] { check_utf8("ab\xFF", "the text"); }), "the text: not valid UTF-8 at byte 2 (byte 0xff)");
}

}  // namespace
}  // namespace strata::text
