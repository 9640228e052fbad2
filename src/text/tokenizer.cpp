#include "strata/text/tokenizer.h"

#include "strata/core/error.h"
#include "strata/text/hf_tokenizer.h"
#include "strata/text/sentencepiece_tokenizer.h"
#include "strata/text/utf8.h"

namespace strata::text {

std::unique_ptr<Tokenizer> open_tokenizer(std::string_view type, const std::filesystem::path& model) {
  if (model.empty()) fail("--tokenizer-type ", type, " needs --tokenizer-model (a file or a folder)");
  if (type == "HuggingFaceTokenizer") return HfTokenizer::open(model);
  if (is_sentencepiece_type(type)) return open_sentencepiece(model);
  fail("--tokenizer-type '", type, "' is not supported (strata reads HuggingFaceTokenizer and SentencePieceTokenizer, ",
       "alias GPTSentencePieceTokenizer or Llama2Tokenizer)");
}

bool is_sentencepiece_type(std::string_view type) {
  // Megatron-Core builds its three SentencePiece types with one library and the same settings.
  return type == "SentencePieceTokenizer" || type == "GPTSentencePieceTokenizer" || type == "Llama2Tokenizer";
}

namespace {

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text, AddSpecialTokens) const override {
    return std::vector<int64_t>(reinterpret_cast<const unsigned char*>(text.data()),
                                reinterpret_cast<const unsigned char*>(text.data()) + text.size());
  }
  std::string decode(std::span<const int64_t> ids) const override {
    std::string bytes;
    for (const int64_t id : ids) {
      if (id < 0 || id > 255) fail("token id ", id, " is not a byte (the byte tokenizer's ids run from 0 to 255)");
      bytes += static_cast<char>(id);
    }
    return utf8_lossy(bytes);
  }
  int64_t vocab_size() const override { return 256; }
  std::optional<int64_t> eos_id() const override { return std::nullopt; }
  std::optional<int64_t> bos_id() const override { return std::nullopt; }
  std::optional<int64_t> token_to_id(std::string_view token) const override {
    if (token.size() == 1) return static_cast<unsigned char>(token[0]);
    return std::nullopt;
  }
  std::vector<int64_t> special_ids() const override { return {}; }
};

}  // namespace

std::unique_ptr<Tokenizer> byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace strata::text
