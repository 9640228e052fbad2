#include "tokenizer_flags.h"

#include "strata/core/error.h"

namespace strata::tools {

std::unique_ptr<text::Tokenizer> TokenizerFlags::open() const {
  if (type.empty()) fail("--tokenizer-model ", model, " needs --tokenizer-type (HuggingFaceTokenizer or SentencePieceTokenizer)");
  return text::open_tokenizer(type, model);
}

void add_tokenizer_flags(CLI::App& cmd, TokenizerFlags& flags) {
  cmd.add_option("--tokenizer-type", flags.type, "HuggingFaceTokenizer (tokenizer.json) or SentencePieceTokenizer (tokenizer.model; also spelled "
                 "GPTSentencePieceTokenizer or Llama2Tokenizer)");
  cmd.add_option("--tokenizer-model", flags.model, "the tokenizer file, or a folder holding it");
}

}  // namespace strata::tools
