#pragma once
// A SentencePiece tokenizer.model (a file, or a folder holding tokenizer.model), as Megatron's
// SentencePieceTokenizer reads it.
#include <filesystem>
#include <memory>

#include "strata/text/tokenizer.h"

namespace strata::text {

std::unique_ptr<Tokenizer> open_sentencepiece(const std::filesystem::path& path);

}  // namespace strata::text
