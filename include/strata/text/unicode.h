#pragma once
// Unicode character properties and normalisation forms, as HF tokenizers (Rust) sees them; the
// tables are utf8proc's.
#include <string>
#include <string_view>

namespace strata::text {

enum class NormalizationForm { NFC, NFD, NFKC, NFKD };

// `text` (valid UTF-8) in the normalisation form.
std::string normalize(std::string_view text, NormalizationForm form);

// Rust's char::to_lowercase applied to each character: the full (not the simple) mapping, without
// context (no final-sigma rule), as HF's Lowercase normaliser does.
std::string lowercase(std::string_view text);

// Rust's char::is_whitespace: the White_Space property.
bool is_white_space(char32_t c);
// Rust's char::is_numeric: general categories Nd, Nl, No.
bool is_numeric(char32_t c);
// HF's Punctuation pre-tokenizer: ASCII punctuation, or a general category P*.
bool is_punctuation(char32_t c);
// A combining mark (general category Mn, Mc or Me): what HF's StripAccents removes.
bool is_combining_mark(char32_t c);

}  // namespace strata::text
