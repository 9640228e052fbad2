#include "strata/text/pre_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace strata::text {
namespace {

std::vector<std::string> words(const std::string& spec, const std::string& text, bool at_start = true) {
  std::vector<Piece> pieces{{text, std::nullopt, at_start, false}};
  parse_pre_tokenizer(nlohmann::json::parse(spec), "test")->split(pieces);
  std::vector<std::string> out;
  for (auto& p : pieces) {
    materialize_byte_level(p);
    out.push_back(p.text);
  }
  return out;
}

std::vector<std::string> split_dashes(SplitBehavior behavior) {
  const std::string text = "the-final--countdown";
  std::vector<Span> spans;
  size_t previous = 0;
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '-') {
      if (previous < i) spans.push_back({previous, i, false});
      spans.push_back({i, i + 1, true});
      previous = i + 1;
    }
  spans.push_back({previous, text.size(), false});
  std::vector<std::string> out;
  for (const auto& [begin, end] : apply_split_behavior(spans, behavior)) out.push_back(text.substr(begin, end - begin));
  return out;
}

// HF's documented example of each SplitDelimiterBehavior.
TEST(PreTokenizer, SplitBehaviours) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_dashes(SplitBehavior::Removed), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split_dashes(SplitBehavior::Isolated), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split_dashes(SplitBehavior::MergedWithPrevious), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split_dashes(SplitBehavior::MergedWithNext), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split_dashes(SplitBehavior::Contiguous), (V{"the", "-", "final", "--", "countdown"}));
}

TEST(PreTokenizer, SplitWithAStringPatternAndInvert) {
  using V = std::vector<std::string>;
  EXPECT_EQ(words(R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": false})", "a b  c"),
            (V{"a", "b", "c"}));
  // invert: the pattern says what to keep, and the rest is what gets removed.
  EXPECT_EQ(words(R"({"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Removed", "invert": true})",
                  "ab, cd!"),
            (V{"ab", "cd"}));
}

TEST(PreTokenizer, ByteLevelSpellsBytesAndMayAddAPrefixSpace) {
  using V = std::vector<std::string>;
  // GPT-2's regex and prefix space: "Hello world" -> "ĠHello", "Ġworld".
  EXPECT_EQ(words(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})", "Hello world"),
            (V{"\xC4\xA0Hello", "\xC4\xA0world"}));
  EXPECT_EQ(words(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})", "a b\n"),
            (V{"a\xC4\xA0" "b\xC4\x8A"}));
}

TEST(PreTokenizer, MetaspaceReplacesSpacesAndPrependsByScheme) {
  using V = std::vector<std::string>;
  const std::string always = R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true})";
  EXPECT_EQ(words(always, "Hey friend"), (V{"▁Hey", "▁friend"}));
  EXPECT_EQ(words(always, "Hey", false), (V{"▁Hey"}));
  // "first": only the piece at the start of the text gets one; no split keeps one word.
  const std::string first = R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})";
  EXPECT_EQ(words(first, "Hey  you"), (V{"▁Hey▁▁you"}));
  EXPECT_EQ(words(first, "Hey you", false), (V{"Hey▁you"}));
  EXPECT_EQ(words(R"({"type": "Metaspace", "replacement": "▁", "add_prefix_space": false})", "a b"), (V{"a", "▁b"}));
}

TEST(PreTokenizer, DigitsPunctuationAndWhitespace) {
  using V = std::vector<std::string>;
  EXPECT_EQ(words(R"({"type": "Digits", "individual_digits": true})", "ab123c"), (V{"ab", "1", "2", "3", "c"}));
  EXPECT_EQ(words(R"({"type": "Digits", "individual_digits": false})", "ab123c"), (V{"ab", "123", "c"}));
  EXPECT_EQ(words(R"({"type": "Punctuation", "behavior": "Isolated"})", "Hi, you!?"), (V{"Hi", ",", " you", "!", "?"}));
  EXPECT_EQ(words(R"({"type": "WhitespaceSplit"})", " a\tb\u3000c "), (V{"a", "b", "c"}));
  EXPECT_EQ(words(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Digits",
                  "individual_digits": true}]})", "x1 y22"),
            (V{"x", "1", "y", "2", "2"}));
}

TEST(PreTokenizer, RefusesWhatItDoesNotImplementByName) {
  EXPECT_EQ(testing::error_of([] { parse_pre_tokenizer(nlohmann::json::parse(R"({"type": "BertPreTokenizer"})"),
                                                       "tokenizer.json pre_tokenizer"); }),
            "tokenizer.json pre_tokenizer: pre_tokenizer type 'BertPreTokenizer' is not supported (strata implements "
            "ByteLevel, Split, Metaspace, Digits, Punctuation, WhitespaceSplit, CharDelimiterSplit and Sequence)");
  EXPECT_EQ(testing::error_of([] { parse_pre_tokenizer(nlohmann::json::parse(
      R"({"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"})"), "p"); }),
            "p (Split): behavior 'Sideways' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

}  // namespace
}  // namespace strata::text
