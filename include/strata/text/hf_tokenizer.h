#pragma once
// An HF tokenizer.json with a BPE model, run as HF tokenizers runs it: added tokens found first,
// then normaliser, pre-tokenizer, the BPE model on each word, and the post-processor; decoding
// through the file's decoder chain.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>

#include "strata/text/added_tokens.h"
#include "strata/text/bpe.h"
#include "strata/text/decoder.h"
#include "strata/text/normalizer.h"
#include "strata/text/post_processor.h"
#include "strata/text/pre_tokenizer.h"
#include "strata/text/tokenizer.h"

namespace strata::text {

class HfTokenizer : public Tokenizer {
 public:
  // `tokenizer` is tokenizer.json's content; `config` tokenizer_config.json's (null if none),
  // which names the EOS and BOS tokens. `where` names the file in errors.
  HfTokenizer(const nlohmann::json& tokenizer, const nlohmann::json& config, const std::string& where);
  // A tokenizer.json file, or a folder holding one (and perhaps tokenizer_config.json).
  static std::unique_ptr<HfTokenizer> open(const std::filesystem::path& path);

  std::vector<int64_t> encode(std::string_view text, AddSpecialTokens add = AddSpecialTokens::yes) const override;
  std::string decode(std::span<const int64_t> ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int64_t> eos_id() const override { return eos_id_; }
  std::optional<int64_t> bos_id() const override { return bos_id_; }
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::vector<int64_t> special_ids() const override;

  // The words the pre-tokenizer makes of `text` (after added tokens and normalisation), with the
  // added tokens found; for tests and for seeing what a tokenizer.json does.
  std::vector<Piece> pre_tokenize(std::string_view text) const;

 private:
  std::optional<int64_t> config_token_id(const nlohmann::json& config, const char* name, const std::string& where) const;

  std::vector<AddedToken> added_;
  std::unique_ptr<AddedTokenMatcher> raw_matcher_, normalized_matcher_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  SpecialTokenFrame frame_;
  // The text an added token decodes from, by id (its content, normalised where HF normalises it).
  std::unordered_map<int64_t, std::string> added_text_;
  std::optional<int64_t> eos_id_, bos_id_;
  int64_t vocab_size_ = 0;
};

}  // namespace strata::text
