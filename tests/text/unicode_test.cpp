#include "strata/text/unicode.h"

#include <gtest/gtest.h>

namespace strata::text {
namespace {

TEST(Unicode, NormalisationForms) {
  EXPECT_EQ(normalize("cafe\xCC\x81", NormalizationForm::NFC), "caf\xC3\xA9");  // e + U+0301 -> é
  EXPECT_EQ(normalize("caf\xC3\xA9", NormalizationForm::NFD), "cafe\xCC\x81");
  // NFKC folds compatibility characters: the ﬁ ligature, circled one, superscript two, full-width A.
  EXPECT_EQ(normalize("\xEF\xAC\x81 \xE2\x91\xA0\xC2\xB2\xEF\xBC\xA1", NormalizationForm::NFKC), "fi 12A");
  EXPECT_EQ(normalize("\xEF\xAC\x81", NormalizationForm::NFC), "\xEF\xAC\x81");  // NFC keeps it
  EXPECT_EQ(normalize("\xE1\x84\x80\xE1\x85\xA1", NormalizationForm::NFC), "\xEA\xB0\x80");  // jamo -> 가
}

TEST(Unicode, LowercaseUsesFullMappingsCharacterByCharacter) {
  EXPECT_EQ(lowercase("ABC \xC3\x89"), "abc \xC3\xA9");
  EXPECT_EQ(lowercase("\xC4\xB0"), "i\xCC\x87");  // İ -> i + COMBINING DOT ABOVE
  // No final-sigma rule: every capital sigma becomes σ, as Rust's char::to_lowercase does.
  EXPECT_EQ(lowercase("\xCE\xA3\xCE\x91\xCE\xA3"), "\xCF\x83\xCE\xB1\xCF\x83");
}

TEST(Unicode, CharacterClasses) {
  EXPECT_TRUE(is_white_space(U'\u0085'));   // NEXT LINE is White_Space
  EXPECT_FALSE(is_white_space(U'\u180E'));  // MONGOLIAN VOWEL SEPARATOR no longer is
  EXPECT_FALSE(is_white_space(U'\u200B'));  // nor ZERO WIDTH SPACE
  EXPECT_TRUE(is_white_space(U'\u3000'));
  EXPECT_TRUE(is_numeric(U'7'));
  EXPECT_TRUE(is_numeric(U'\u2160'));  // Ⅰ (Nl)
  EXPECT_TRUE(is_numeric(U'\u00B2'));  // ² (No)
  EXPECT_FALSE(is_numeric(U'x'));
  EXPECT_TRUE(is_punctuation(U'$'));   // ASCII punctuation includes symbols
  EXPECT_TRUE(is_punctuation(U'\u3001'));  // 、
  EXPECT_FALSE(is_punctuation(U'\u20AC'));  // € is a symbol (Sc), not punctuation
  EXPECT_TRUE(is_combining_mark(U'\u0301'));
  EXPECT_FALSE(is_combining_mark(U'e'));
}

}  // namespace
}  // namespace strata::text
