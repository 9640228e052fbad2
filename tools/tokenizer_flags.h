#pragma once
// --tokenizer-type / --tokenizer-model, as Megatron-LM spells them, for every command that
// tokenises text.
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "strata/text/tokenizer.h"

namespace strata::tools {

struct TokenizerFlags {
  // Megatron's NullTokenizer: the data are token ids already; the vocabulary is --vocab-size and
  // the EOD id its last id. Nothing to open.
  static constexpr const char* kNull = "NullTokenizer";

  std::string type, model;
  bool given() const { return !type.empty() || !model.empty(); }
  bool is_null() const { return type == kNull; }
  // The tokenizer they name; refuses a missing half of the pair.
  std::unique_ptr<text::Tokenizer> open() const;
};

void add_tokenizer_flags(CLI::App& cmd, TokenizerFlags& flags);

}  // namespace strata::tools
