#pragma once
// Text <-> token ids: the one interface strata's commands use (tokenize, generate, preprocess),
// and the function that opens a tokenizer by Megatron-LM's --tokenizer-type / --tokenizer-model.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace strata::text {

// Whether encode adds the tokens the tokenizer's post-processor puts around every text (the BOS
// a Llama tokenizer.json's TemplateProcessing adds). Special tokens written in the text itself
// ("<|im_end|>") become their ids either way.
enum class AddSpecialTokens { yes, no };

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // UTF-8 text -> ids. With AddSpecialTokens::yes this is what Megatron's tokenizer.tokenize(text)
  // gives (HF: tokenizer(text).input_ids); with ::no, HF's encode(text, add_special_tokens=False).
  // Text that is not valid UTF-8 is refused.
  virtual std::vector<int64_t> encode(std::string_view text,
                                      AddSpecialTokens add = AddSpecialTokens::yes) const = 0;

  // ids -> UTF-8 text, special tokens kept (HF: decode(ids, skip_special_tokens=False)). Bytes
  // that do not form valid UTF-8 (a sequence cut mid-character) come out as U+FFFD, as in HF.
  // An id outside [0, vocab_size()) is refused.
  virtual std::string decode(std::span<const int64_t> ids) const = 0;

  // One past the largest id: the model's vocabulary plus added tokens (HF's len(tokenizer) for
  // every real tokenizer, whose ids have no holes). Megatron sizes its embedding and chooses the
  // indexed dataset's dtype from this.
  virtual int64_t vocab_size() const = 0;

  // The end-of-sequence token: what Megatron calls `eod` and `preprocess --append-eod` appends,
  // and where generation stops. HF: tokenizer_config.json's eos_token; SentencePiece: eos_id.
  virtual std::optional<int64_t> eos_id() const = 0;
  std::optional<int64_t> eod_id() const { return eos_id(); }
  virtual std::optional<int64_t> bos_id() const = 0;

  // A token's id, by its text as the vocabulary spells it ("<|im_end|>", "Ġthe", "<0x0A>").
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  // The ids of the special tokens (HF added tokens marked special; SentencePiece control symbols).
  virtual std::vector<int64_t> special_ids() const = 0;
};

// The --tokenizer-type values strata reads, as Megatron-LM spells them:
//   HuggingFaceTokenizer    model: a tokenizer.json, or a folder holding one (and, beside it,
//                           tokenizer_config.json for the EOS / BOS tokens)
//   SentencePieceTokenizer  model: a SentencePiece tokenizer.model, or a folder holding one; also
//                           spelled GPTSentencePieceTokenizer or Llama2Tokenizer, which
//                           Megatron-Core builds with the same library and settings
// Anything else, or a file strata cannot honour exactly (a tokenizer.json component it does not
// implement), is refused with an Error that names it.
std::unique_ptr<Tokenizer> open_tokenizer(std::string_view type, const std::filesystem::path& model);

// Whether `type` names the SentencePiece tokenizer (any of its three spellings).
bool is_sentencepiece_type(std::string_view type);

// The tokenizer strata train uses for text without one: one token per UTF-8 byte, vocabulary
// 256, no special tokens.
std::unique_ptr<Tokenizer> byte_tokenizer();

}  // namespace strata::text
