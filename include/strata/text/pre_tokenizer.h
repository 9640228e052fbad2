#pragma once
// tokenizer.json's "pre_tokenizer": splits normalised text into the words the model tokenises
// one by one, as HF tokenizers does. Implemented: ByteLevel, Split, Metaspace, Digits,
// Punctuation, WhitespaceSplit, CharDelimiterSplit, Sequence. Anything else is refused by name.
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "strata/text/piece.h"

namespace strata::text {

// What a split does with the parts its pattern matched (HF's SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// A stretch of a text and whether the pattern matched it.
struct Span {
  size_t begin, end;
  bool matched;
};

// The byte ranges `text` splits into: `spans` cover the text in order; empty results are dropped.
std::vector<std::pair<size_t, size_t>> apply_split_behavior(const std::vector<Span>& spans, SplitBehavior behavior);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece that is not an added token; added tokens pass through.
  virtual void split(std::vector<Piece>& pieces) const = 0;
};

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& spec, const std::string& where);

}  // namespace strata::text
