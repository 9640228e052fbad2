#pragma once
// The BPE model of a tokenizer.json: a word -> token ids by applying merges in rank order, the
// way HF tokenizers' BPE does (lowest rank first, leftmost first among equal ranks), with its
// options: unk_token / fuse_unk, byte_fallback, continuing_subword_prefix, end_of_word_suffix,
// ignore_merges. Results for words under 256 bytes are cached, so a repeated word costs a lookup.
// Safe to call from several threads at once.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "strata/text/piece.h"

namespace strata::text {

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool ignore_merges = false;
};

// A hash for string keys that also looks up string_views without building a string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocabulary = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // `merges` in rank order (rank 0 first), each pair of vocabulary entries whose concatenation
  // (the second without its continuing_subword_prefix) is in the vocabulary too; `where` names
  // the file for errors.
  BpeModel(Vocabulary vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::string& where);
  ~BpeModel();

  // Appends the ids of one word (a piece that is not an added token).
  void tokenize(const Piece& word, std::vector<int64_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The vocabulary entry of `id`; nullptr where the vocabulary has no such id.
  const std::string* id_to_token(int64_t id) const;
  // One past the largest id in the vocabulary.
  int64_t id_end() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  struct PairTable;
  struct Cache;
  void merge_word(const Piece& word, std::vector<int32_t>& ids) const;
  bool initial_symbols_from_bytes(std::string_view bytes, std::vector<int32_t>& ids) const;
  void initial_symbols(std::string_view chars, std::vector<int32_t>& ids) const;
  void apply_merges(std::vector<int32_t>& ids) const;

  Vocabulary vocab_;
  std::vector<std::string> id_to_token_;
  std::unique_ptr<PairTable> merges_;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  // The id of each byte's byte-level character (-1 where the vocabulary lacks it): a byte-level
  // word starts from these without spelling its characters out.
  std::array<int32_t, 256> byte_level_ids_;
  // Byte-level vocabulary entries by the raw bytes they stand for (ignore_merges looks words up here).
  Vocabulary raw_byte_vocab_;
  // The ids of "<0x00>" .. "<0xFF>" (-1 where missing), for byte_fallback.
  std::array<int32_t, 256> byte_fallback_ids_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace strata::text
