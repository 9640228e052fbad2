#include "strata/text/utf8.h"

#include "strata/core/error.h"

namespace strata::text {

namespace {

// The length of the valid UTF-8 sequence at bytes[at], or 0 if none starts there; `invalid_run`
// gets how many bytes form the maximal subpart of an ill-formed sequence (at least 1), following
// the Unicode Standard's table of well-formed byte sequences (Table 3-7).
int sequence_length(std::string_view bytes, size_t at, int& invalid_run) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  const unsigned char lead = byte(at);
  invalid_run = 1;
  if (lead < 0x80) return 1;
  int length;
  unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // no overlong forms
    if (lead == 0xF4) high = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  for (int i = 1; i < length; ++i) {
    if (at + i >= bytes.size()) return 0;
    const unsigned char b = byte(at + i);
    const bool ok = i == 1 ? (b >= low && b <= high) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return 0;
    invalid_run = i + 1;
  }
  return length;
}

}  // namespace

CodePoint code_point_at(std::string_view text, size_t at) {
  const auto b = [&](size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(text[at + i])); };
  const char32_t lead = b(0);
  if (lead < 0x80) return {lead, 1};
  if (lead < 0xE0) return {((lead & 0x1F) << 6) | (b(1) & 0x3F), 2};
  if (lead < 0xF0) return {((lead & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F), 3};
  return {((lead & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F), 4};
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

size_t valid_utf8_prefix(std::string_view bytes) {
  size_t at = 0;
  int invalid_run;
  while (at < bytes.size()) {
    // ASCII runs are the common case: skip them without the table.
    if (static_cast<unsigned char>(bytes[at]) < 0x80) {
      ++at;
      continue;
    }
    const int length = sequence_length(bytes, at, invalid_run);
    if (length == 0) return at;
    at += length;
  }
  return at;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t at = 0;
  int invalid_run;
  while (at < bytes.size()) {
    const int length = sequence_length(bytes, at, invalid_run);
    if (length == 0) {
      out += kReplacementCharacter;
      at += invalid_run;
    } else {
      out.append(bytes.substr(at, length));
      at += length;
    }
  }
  return out;
}

void check_utf8(std::string_view text, std::string_view what) {
  const size_t valid = valid_utf8_prefix(text);
  if (valid != text.size())
    fail(what, ": not valid UTF-8 at byte ", valid, " (byte 0x", std::hex,
         static_cast<int>(static_cast<unsigned char>(text[valid])), ")");
}

}  // namespace strata::text
