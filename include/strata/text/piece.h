#pragma once
// A stretch of text on its way through a tokenizer.json pipeline: text still to be normalised,
// split and run through the model, or an added token already recognised in it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata::text {

struct Piece {
  std::string text;
  // Set: an added token, found in the text before the model ran; `text` is what it matched.
  std::optional<int32_t> token;
  // The piece begins at byte 0 of the text given to encode (Metaspace's prepend_scheme "first"
  // prepends to that piece only).
  bool at_start = false;
  // `text` holds raw bytes that the model reads as GPT-2 byte-level characters: the ByteLevel
  // pre-tokenizer marks its pieces so, rather than spelling each byte out as a character, which
  // saves the model a second pass over every character. A later step that must see the
  // characters spells them out first (materialize_byte_level).
  bool byte_level = false;
};

// `piece` with its bytes spelt as byte-level characters (unchanged if not byte_level).
void materialize_byte_level(Piece& piece);

}  // namespace strata::text
