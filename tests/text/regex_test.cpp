#include "strata/text/regex.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata::text {
namespace {

std::vector<std::string> matches(const Regex& regex, const std::string& text) {
  std::vector<std::string> out;
  for (const auto& m : regex.find_all(text)) out.push_back(text.substr(m.begin, m.end - m.begin));
  return out;
}

// Qwen2's (and DeepSeek-LLM's) pre-tokenizer regex.
const char* kQwen2 = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

TEST(Regex, Qwen2PatternSplitsWordsDigitsPunctuationAndSpaces) {
  const Regex qwen2(kQwen2, "test");
  EXPECT_EQ(matches(qwen2, "Hello world!! 123"),
            (std::vector<std::string>{"Hello", " world", "!!", " ", "1", "2", "3"}));
  // Contractions case-insensitively; the space before a run of spaces stays with the run, the
  // last space goes with the next word.
  EXPECT_EQ(matches(qwen2, "DON'T  go\n\nnow"),
            (std::vector<std::string>{"DON", "'T", " ", " go", "\n\n", "now"}));
  EXPECT_EQ(matches(qwen2, "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x81"),  // 你好！
            (std::vector<std::string>{"\xE4\xBD\xA0\xE5\xA5\xBD", "\xEF\xBC\x81"}));
}

TEST(Regex, WhitespaceMeansWhatOnigurumaMeans) {
  // PCRE2's \s takes in U+180E and leaves out nothing Oniguruma has; strata spells Oniguruma's
  // \s (the White_Space property) out, so U+0085 is space and U+180E is not.
  const Regex space(R"(\s+)", "test");
  EXPECT_EQ(matches(space, "a\xC2\x85" "b\xE1\xA0\x8E" "c"), (std::vector<std::string>{"\xC2\x85"}));
  const Regex not_space(R"([^\s]+)", "test");
  EXPECT_EQ(matches(not_space, "a\xE1\xA0\x8E" "b c"), (std::vector<std::string>{"a\xE1\xA0\x8E" "b", "c"}));
  EXPECT_EQ(oniguruma_to_pcre2(R"(a\S)"),
            R"(a[^\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}])");
  EXPECT_EQ(oniguruma_to_pcre2(R"([\w-])"), R"([\p{L}\p{M}\p{Nd}\p{Pc}-])");
  // Escaped backslashes and classes that start with ']' are copied as they are.
  EXPECT_EQ(oniguruma_to_pcre2(R"(\\s[]s])"), R"(\\s[]s])");
}

TEST(Regex, AfterAnEmptyMatchTheSearchMovesOneCharacter) {
  const Regex digits_or_nothing(R"(\d*)", "test");
  const auto found = digits_or_nothing.find_all("a\xC3\xA9" "12");
  ASSERT_EQ(found.size(), 4u);  // empty at 0, empty at 1 (before é), "12" at 3, empty at the end
  EXPECT_EQ(found[0].begin, 0u);
  EXPECT_EQ(found[1].begin, 1u);
  EXPECT_EQ(found[2].begin, 3u);
  EXPECT_EQ(found[2].end, 5u);
  EXPECT_EQ(found[3].begin, 5u);
}

TEST(Regex, EscapedLiteralsMatchThemselves) {
  const Regex literal(escape_regex("a.b*(c)"), "test");
  EXPECT_EQ(matches(literal, "xa.b*(c)ya_b"), (std::vector<std::string>{"a.b*(c)"}));
}

TEST(Regex, RefusalsNameThePattern) {
  EXPECT_EQ(testing::error_of([] { Regex(R"(\bword)", "tokenizer.json pre_tokenizer (Split)"); }),
            "tokenizer.json pre_tokenizer (Split): regex '\\bword': \\b (a word boundary) is not supported: Oniguruma and PCRE2 disagree on what a word "
            "character is");
  EXPECT_NE(testing::error_of([] { Regex("(unclosed", "tokenizer.json normalizer (Replace)"); })
                .find("tokenizer.json normalizer (Replace): regex '(unclosed' does not compile (PCRE2: missing closing "
                      "parenthesis"),
            std::string::npos);
}

}  // namespace
}  // namespace strata::text
