#pragma once
// The data flags strata train and strata eval share (Megatron's names): --data-path names a text
// or token file, or Megatron indexed datasets "[W1] P1 [W2] P2 ..."; --split divides either; the
// spec they make is what open_data_source (train/data.h) opens.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/text/tokenizer.h"

namespace strata::tools {

struct DataFlags {
  std::vector<std::string> data_path;
  std::string data_format = "text";
  // Megatron's default for indexed datasets; a text or token file holds out its last 5 % unless
  // --split is given.
  std::string split = "969,30,1";
  bool eod_mask_loss = false;
  std::optional<int64_t> eod_token_id;

  CLI::App* command = nullptr;
  bool given(const std::string& flag) const { return command->count(flag) > 0; }
};

// Registers --data-path (described by `data_path_help`), --data-format, --split, --eod-mask-loss
// and --eod-token-id.
void add_data_flags(CLI::App& cmd, DataFlags& flags, const std::string& data_path_help);

// What a data spec takes from the command's other settings.
struct DataSpecSettings {
  int64_t seq_length = 0;
  int64_t train_samples = 0;  // indexed data: the training samples the order is built for
  uint64_t seed = 0;
  std::optional<int64_t> vocab_size;  // token files need it; indexed data takes the tokenizer's otherwise
  // Opens the tokenizer that supplies the vocabulary and EOD id of indexed data; empty: none.
  std::function<std::unique_ptr<text::Tokenizer>()> tokenizer;
  // The EOD id when neither --eod-token-id nor a tokenizer gives one (NullTokenizer's last id).
  std::optional<int64_t> fallback_eod_token_id;
};

// The spec of a non-empty --data-path: a file's ({"kind": --data-format, "path"}, split by --split
// when given), or indexed datasets'. A word that names both a file and an indexed dataset, half an
// indexed dataset, or nothing is refused, as are --eod-mask-loss and --eod-token-id beside a file.
nlohmann::json data_spec_from_flags(const DataFlags& flags, const DataSpecSettings& settings);

// A text or token file's spec (`spec`) split by --split: its held-out and test fractions.
void set_file_split(const DataFlags& flags, nlohmann::json& spec);

}  // namespace strata::tools
