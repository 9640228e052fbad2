#pragma once
// UTF-8 at the byte level: reading and writing code points, checking text, and the lossy
// conversion HF's decoders end with (Rust's String::from_utf8_lossy).
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::text {

// The code point that starts at text[at] and its length in bytes. `text` must be valid UTF-8.
struct CodePoint {
  char32_t value;
  int length;
};
CodePoint code_point_at(std::string_view text, size_t at);

// Appends `c` as UTF-8.
void append_utf8(std::string& out, char32_t c);

// The length of the longest prefix of `bytes` that is valid UTF-8.
size_t valid_utf8_prefix(std::string_view bytes);

// `bytes` as valid UTF-8: each maximal invalid subsequence becomes one U+FFFD (Unicode's
// "substitution of maximal subparts", which Rust's from_utf8_lossy and so HF decoding follow).
std::string utf8_lossy(std::string_view bytes);

// Refuses `text` unless it is valid UTF-8; `what` names where it came from.
void check_utf8(std::string_view text, std::string_view what);

// The replacement character U+FFFD as UTF-8.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

}  // namespace strata::text
