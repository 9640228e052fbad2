#include "strata/text/normalizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace strata::text {
namespace {

std::string normalized(const std::string& spec, std::string text) {
  parse_normalizer(nlohmann::json::parse(spec), "test")->apply(text);
  return text;
}

TEST(Normalizer, UnicodeFormsAndCase) {
  EXPECT_EQ(normalized(R"({"type": "NFC"})", "cafe\xCC\x81"), "caf\xC3\xA9");
  EXPECT_EQ(normalized(R"({"type": "NFKC"})", "\xEF\xAC\x81nal \xE2\x91\xA0"), "final 1");
  EXPECT_EQ(normalized(R"({"type": "NFKD"})", "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(normalized(R"({"type": "Lowercase"})", "\xC4\xB0stanbul"), "i\xCC\x87stanbul");
  // BERT's uncased chain: decompose, drop the accents, lowercase.
  EXPECT_EQ(normalized(R"({"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"},
                       {"type": "Lowercase"}]})", "Cr\xC3\xA8me Br\xC3\xBBL\xC3\xA9" "E"),
            "creme brulee");
}

TEST(Normalizer, StripReplacePrependAndByteLevel) {
  EXPECT_EQ(normalized(R"({"type": "Strip", "strip_left": true, "strip_right": false})", " \t a b \xE3\x80\x80"),
            "a b \xE3\x80\x80");
  EXPECT_EQ(normalized(R"({"type": "Strip", "strip_left": true, "strip_right": true})", " \t a b \xE3\x80\x80"), "a b");
  // Older Llama files: a ▁ before the text and every space as ▁.
  const std::string llama = R"({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})";
  EXPECT_EQ(normalized(llama, "Hi you"), "▁Hi▁you");
  EXPECT_EQ(normalized(llama, ""), "");  // Prepend leaves an empty text empty
  EXPECT_EQ(normalized(R"({"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "})", "a \t\n b"), "a b");
  EXPECT_EQ(normalized(R"({"type": "ByteLevel"})", "a b"), "a\xC4\xA0" "b");
  EXPECT_EQ(normalized(R"({"type": "Precompiled", "precompiled_charsmap": null})", "As Is"), "As Is");
}

TEST(Normalizer, RefusesWhatItCannotHonourByName) {
  EXPECT_EQ(testing::error_of([] { parse_normalizer(nlohmann::json::parse(R"({"type": "BertNormalizer"})"),
                                                    "tokenizer.json normalizer"); }),
            "tokenizer.json normalizer: normalizer type 'BertNormalizer' is not supported (strata implements NFC, NFD, "
            "NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, ByteLevel, Sequence and an empty Precompiled)");
  EXPECT_NE(testing::error_of([] { parse_normalizer(nlohmann::json::parse(
                R"({"type": "Precompiled", "precompiled_charsmap": "ALQCAACEAAAAAACAAQAAgMz8AgC4BQAAhyIAgMzkAgC4PQAAeyIAgMzs"})"),
                "n"); })
                .find("n (Precompiled): a non-empty precompiled_charsmap"),
            std::string::npos);
  EXPECT_EQ(testing::error_of([] { parse_normalizer(nlohmann::json::parse(R"({"type": "Strip", "strip_left": 1})"), "n"); }),
            "n (Strip): \"strip_left\" is 1, expected true or false");
}

}  // namespace
}  // namespace strata::text
