#pragma once
// tokenizer.json's "normalizer": text -> text before pre-tokenisation, as HF tokenizers does it.
// Implemented: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, ByteLevel,
// Sequence; a "Precompiled" one whose character map is empty (what converters write for an
// identity SentencePiece normaliser). Anything else is refused by name.
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace strata::text {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& text) const = 0;
};

// `spec` is the JSON object (not null); `where` names it for errors ("tokenizer.json normalizer").
std::unique_ptr<Normalizer> parse_normalizer(const nlohmann::json& spec, const std::string& where);

}  // namespace strata::text
