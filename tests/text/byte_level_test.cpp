#include "strata/text/byte_level.h"

#include <gtest/gtest.h>

namespace strata::text {
namespace {

TEST(ByteLevel, PrintableBytesStandForThemselvesAndTheRestCountUpFromU0100) {
  EXPECT_EQ(byte_to_char('a'), U'a');
  EXPECT_EQ(byte_to_char('!'), U'!');
  EXPECT_EQ(byte_to_char(0xA1), U'\u00A1');
  // The bytes that do not stand for themselves, in order: 0x00-0x20 are U+0100-U+0120 (so a
  // space is U+0120 'Ġ', a newline U+010A 'Ċ'), 0x7F is U+0121, 0x80-0xA0 are U+0122-U+0142,
  // and the soft hyphen 0xAD is the last, U+0143.
  EXPECT_EQ(byte_to_char(0x00), U'\u0100');
  EXPECT_EQ(byte_to_char('\n'), U'\u010A');
  EXPECT_EQ(byte_to_char(' '), U'\u0120');
  EXPECT_EQ(byte_to_char(0x7F), U'\u0121');
  EXPECT_EQ(byte_to_char(0x80), U'\u0122');
  EXPECT_EQ(byte_to_char(0xA0), U'\u0142');
  EXPECT_EQ(byte_to_char(0xAD), U'\u0143');
}

TEST(ByteLevel, EveryByteRoundTripsAndNothingElseMapsToABytes) {
  for (int b = 0; b < 256; ++b) EXPECT_EQ(char_to_byte(byte_to_char(static_cast<unsigned char>(b))), b);
  EXPECT_FALSE(char_to_byte(U'\u0144').has_value());
  EXPECT_FALSE(char_to_byte(U'\u00AD').has_value());  // the soft hyphen itself is not in the alphabet
  EXPECT_FALSE(char_to_byte(U'\u4E2D').has_value());
}

TEST(ByteLevel, SpellsBytesAsCharacters) {
  EXPECT_EQ(bytes_to_byte_level(" hi\n"), "\xC4\xA0hi\xC4\x8A");  // "ĠhiĊ"
  EXPECT_EQ(bytes_to_byte_level("\xC3\xA9"), "\xC3\x83\xC2\xA9");  // é's two bytes: "Ã©"
}

}  // namespace
}  // namespace strata::text
