#pragma once
// Text as a model generates it, one token at a time: what can be printed after each token
// (whole UTF-8 characters only, with the spacing the tokenizer gives the token in context), and
// where a --stop string ends it.
#include <cstdint>
#include <string>
#include <vector>

#include "strata/text/tokenizer.h"

namespace strata::text {

// Decodes a growing list of ids incrementally: each push returns the text that the new id adds,
// once it is final. A token that ends mid-character (a byte-fallback or byte-level piece of a
// longer character) holds its text back until the character is whole. Each step decodes a short
// window of recent ids rather than everything so far, so a long generation costs linear time.
class TextStream {
 public:
  // `context`: the ids before the generated ones (the prompt), which decide how the first
  // generated token decodes (whether its leading space shows).
  TextStream(const Tokenizer& tokenizer, const std::vector<int64_t>& context);
  std::string push(int64_t id);
  // What is still held back (a character cut short by the end of generation: U+FFFD).
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  std::vector<int64_t> ids_;
  // ids_[prefix_, read_) were decoded and printed already: they are decoded again with the new
  // ids as context, and only the text after theirs is new.
  size_t prefix_ = 0, read_ = 0;
};

// Cuts streamed text at the first of some stop strings, holding back any tail that could be the
// start of one.
class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds text; returns what can be printed now. After a stop string is seen, returns the text
  // before it and stopped() is true.
  std::string push(const std::string& text);
  // The text held back, at the end of generation.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace strata::text
