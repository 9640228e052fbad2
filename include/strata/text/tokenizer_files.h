#pragma once
// The files a tokenizer is read from, so that it can travel with a model: strata train copies them
// into every checkpoint (tokenizer/), strata export into the HF folder. Each keeps the name an HF
// model folder gives it, whatever the source file is called.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::text {

struct TokenizerFile {
  std::filesystem::path source;
  std::string name;  // "tokenizer.json", "tokenizer.model", "tokenizer_config.json", ...
};

// For --tokenizer-type `type` and --tokenizer-model `model` (a file or a folder, as open_tokenizer
// reads them): the tokenizer.json or tokenizer.model, and the tokenizer_config.json and
// special_tokens_map.json that lie beside it. Errors as open_tokenizer's for a missing file.
std::vector<TokenizerFile> tokenizer_files(std::string_view type, const std::filesystem::path& model);

// The --tokenizer-type of the tokenizer in an HF model folder: HuggingFaceTokenizer for a
// tokenizer.json, else SentencePieceTokenizer for a tokenizer.model; none when it has neither.
std::optional<std::string> tokenizer_type_in(const std::filesystem::path& folder);

}  // namespace strata::text
