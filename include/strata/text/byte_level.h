#pragma once
// GPT-2's byte-level alphabet: each of the 256 bytes as a printable character, so that a BPE
// vocabulary over characters covers every byte string. Printable Latin-1 bytes stand for
// themselves; the others (controls, space, soft hyphen...) become U+0100 onwards in byte order.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace strata::text {

// The character that stands for `byte`.
char32_t byte_to_char(unsigned char byte);
// The byte a character stands for; nullopt for a character outside the alphabet.
std::optional<unsigned char> char_to_byte(char32_t c);

// Each byte of `bytes` as its character, in UTF-8 ("Ġ" for a space).
std::string bytes_to_byte_level(std::string_view bytes);

}  // namespace strata::text
