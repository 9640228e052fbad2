#include "strata/text/tokenizer_files.h"

#include "strata/core/error.h"
#include "strata/text/tokenizer.h"

namespace strata::text {

namespace fs = std::filesystem;

std::vector<TokenizerFile> tokenizer_files(std::string_view type, const fs::path& model) {
  std::string name;
  if (type == "HuggingFaceTokenizer") name = "tokenizer.json";
  else if (is_sentencepiece_type(type)) name = "tokenizer.model";
  else
    fail("--tokenizer-type '", type, "' is not supported (strata reads HuggingFaceTokenizer and SentencePieceTokenizer, ",
         "alias GPTSentencePieceTokenizer or Llama2Tokenizer)");
  std::error_code error;
  const fs::path file = fs::is_directory(model, error) ? model / name : model;
  if (!fs::is_regular_file(file, error))
    fail("--tokenizer-model ", model.string(), ": ", fs::is_directory(model, error) ? "the folder has no " + name : "no such file");
  std::vector<TokenizerFile> files = {{file, name}};
  for (const char* beside : {"tokenizer_config.json", "special_tokens_map.json"})
    if (fs::is_regular_file(file.parent_path() / beside, error)) files.push_back({file.parent_path() / beside, beside});
  return files;
}

std::optional<std::string> tokenizer_type_in(const fs::path& folder) {
  std::error_code error;
  if (fs::is_regular_file(folder / "tokenizer.json", error)) return "HuggingFaceTokenizer";
  if (fs::is_regular_file(folder / "tokenizer.model", error)) return "SentencePieceTokenizer";
  return std::nullopt;
}

}  // namespace strata::text
