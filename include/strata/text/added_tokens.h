#pragma once
// tokenizer.json's "added_tokens" (chat markers, EOS, ...): found in the text before the model
// runs and kept whole, as HF tokenizers does: leftmost-longest matching, then each token's
// single_word, lstrip and rstrip rules. Tokens with normalized=false are found in the raw text,
// the others in the normalised text.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "strata/text/piece.h"

namespace strata::text {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// Finds one set of added tokens (those matched before, or those matched after, normalisation).
class AddedTokenMatcher {
 public:
  // `patterns[i]` is what token i is found as (its content, normalised where it is matched in
  // normalised text).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  ~AddedTokenMatcher();
  AddedTokenMatcher(AddedTokenMatcher&&) noexcept;

  bool empty() const { return tokens_.empty(); }
  // Cuts every text piece at the tokens found in it; a found token becomes a piece of its own.
  void split(std::vector<Piece>& pieces) const;

 private:
  struct Trie;
  std::vector<AddedToken> tokens_;
  std::unique_ptr<Trie> trie_;
};

}  // namespace strata::text
