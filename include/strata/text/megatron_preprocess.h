#pragma once
// JSONL text -> Megatron indexed datasets, as Megatron-LM's tools/preprocess_data.py writes them
// (without --split-sentences): for every line and every JSON key, the key's text (or list of
// texts) tokenised with Megatron's tokenize (the post-processor's tokens included), empty
// sentences dropped, the EOD appended to a non-empty document with append_eod, one document per
// line in PREFIX_KEY_document.bin/.idx, in the dtype Megatron picks for the vocabulary
// (io::megatron_token_dtype). Lines are encoded by `workers` threads, each with its own
// tokenizer, and written in input order: any worker count writes the same bytes.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "strata/text/tokenizer.h"

namespace strata::text {

struct PreprocessOptions {
  std::string input;
  std::vector<std::string> json_keys = {"text"};
  std::string output_prefix;
  bool append_eod = false;
  int workers = 1;
};

// One line's document for one key: its ids and how they divide into sentences.
struct EncodedDocument {
  std::vector<int64_t> ids;
  std::vector<int32_t> sentence_lengths;
};

// Megatron's Encoder.encode of one JSONL line; errors name `where` (the file and line) and the key.
std::vector<EncodedDocument> encode_json_line(const std::string& line, const std::vector<std::string>& json_keys,
                                              const Tokenizer& tokenizer, bool append_eod, const std::string& where);

struct PreprocessProgress {
  uint64_t bytes_read, bytes_total, documents;
};

// Writes PREFIX_KEY_document.{bin,idx} for every key; returns the prefixes written.
// `open_tokenizer` is called once per worker; `progress` after every batch of lines.
std::vector<std::string> preprocess_jsonl(const PreprocessOptions& options,
                                          const std::function<std::unique_ptr<Tokenizer>()>& open_tokenizer,
                                          const std::function<void(const PreprocessProgress&)>& progress);

}  // namespace strata::text
