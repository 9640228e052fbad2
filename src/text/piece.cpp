#include "strata/text/piece.h"

#include "strata/text/byte_level.h"

namespace strata::text {

void materialize_byte_level(Piece& piece) {
  if (!piece.byte_level) return;
  piece.text = bytes_to_byte_level(piece.text);
  piece.byte_level = false;
}

}  // namespace strata::text
