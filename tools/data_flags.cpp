#include "data_flags.h"

#include <filesystem>

#include "flag_checks.h"
#include "strata/core/error.h"
#include "strata/core/parse_number.h"
#include "strata/io/megatron_indexed.h"
#include "strata/train/megatron_blend.h"

namespace strata::tools {

void add_data_flags(CLI::App& cmd, DataFlags& f, const std::string& data_path_help) {
  f.command = &cmd;
  cmd.add_option("--data-path", f.data_path, data_path_help);
  cmd.add_option("--data-format", f.data_format, "text (bytes as tokens), uint16 or uint32 (token files)")
      ->check(CLI::IsMember({"text", "uint16", "uint32"}));
  cmd.add_option("--split", f.split,
                 "train,valid,test weights: of each indexed dataset's documents (default 969,30,1), or of a text or "
                 "token file in order (default: the last 5% held out)");
  cmd.add_flag("--eod-mask-loss", f.eod_mask_loss, "indexed data: no loss on the prediction made at an EOD token");
  cmd.add_option("--eod-token-id", f.eod_token_id,
                 "the end-of-document token's id (for --eod-mask-loss; default: the tokenizer's)")
      ->check(integer_at_least(0));
}

namespace {

// Megatron's --split "train,valid,test" (or with '/'): the weights, normalised.
std::vector<double> split_fractions(const std::string& text) {
  std::vector<double> weights;
  size_t start = 0;
  while (start <= text.size()) {
    const auto end = text.find_first_of(",/", start);
    const auto part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    weights.push_back(parse_finite_double(part, cat("--split '", text, "' weight")));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (weights.size() > 3) fail("--split '", text, "': expected at most 3 weights (train, validation, test)");
  weights.resize(3, 0.0);
  double sum = 0.0;
  for (auto w : weights) {
    if (w < 0.0) fail("--split '", text, "': weight ", w, " is negative");
    sum += w;
  }
  if (!(weights[0] > 0.0)) fail("--split '", text, "': expected a positive training weight");
  for (auto& w : weights) w /= sum;
  return weights;
}

bool exists(const std::string& path) {
  std::error_code error;
  return std::filesystem::exists(path, error);
}

// Whether a --data-path word names Megatron indexed datasets rather than a file, by what exists;
// both existing is refused unless --data-format says the file is meant.
bool names_indexed_dataset(const DataFlags& f, const std::string& path) {
  const bool bin = exists(io::megatron_bin_path(path)), idx = exists(io::megatron_idx_path(path));
  if (exists(path)) {
    if (bin && idx && !f.given("--data-format"))
      fail("--data-path ", path, ": both the file ", path, " and the indexed dataset ", path, ".bin/.idx exist; give ",
           "--data-format text, uint16 or uint32 to read the file, or move one of them");
    return false;
  }
  if (bin != idx)
    fail("--data-path ", path, ": ", path, bin ? ".bin" : ".idx", " exists but ", path, bin ? ".idx" : ".bin",
         " does not; an indexed dataset is the pair (Megatron's tools/preprocess_data.py writes both)");
  if (!bin) fail("--data-path ", path, ": no such file, and no indexed dataset ", path, ".bin/.idx");
  return true;
}

nlohmann::json indexed_data_spec(const DataFlags& f, const DataSpecSettings& s) {
  const auto blend = train::parse_blend(f.data_path);
  for (const auto& prefix : blend.prefixes)
    if (!names_indexed_dataset(f, prefix))
      fail("--data-path ", prefix, ": a file; several --data-path words name Megatron indexed datasets (PREFIX.bin/.idx)");
  if (s.seed > 0xffffffffull) fail("--seed ", s.seed, ": Megatron's datasets take seeds below 2^32");
  // The tokenizer, when there is one, supplies what the flags leave out: the vocabulary and the EOD id.
  std::optional<int64_t> vocab_size = s.vocab_size, eod_token_id = f.eod_token_id;
  if (s.tokenizer && (!vocab_size || !eod_token_id)) {
    const auto tokenizer = s.tokenizer();
    if (!vocab_size) vocab_size = tokenizer->vocab_size();
    if (!eod_token_id) eod_token_id = tokenizer->eod_id();
  }
  if (!eod_token_id) eod_token_id = s.fallback_eod_token_id;
  auto datasets = nlohmann::json::array();
  for (size_t d = 0; d < blend.prefixes.size(); ++d) {
    nlohmann::json dataset = {{"path", blend.prefixes[d]}};
    if (blend.weights) dataset["weight"] = (*blend.weights)[d];
    datasets.push_back(dataset);
  }
  return {{"kind", "megatron"},
          {"datasets", datasets},
          {"split", f.split},
          {"seq_length", s.seq_length},
          {"train_samples", s.train_samples},
          {"seed", s.seed},
          {"vocab_size", vocab_size.value_or(0)},  // none given: refused when opened
          {"eod_mask_loss", f.eod_mask_loss},
          {"eod_token_id", eod_token_id ? nlohmann::json(*eod_token_id) : nlohmann::json()}};
}

}  // namespace

nlohmann::json data_spec_from_flags(const DataFlags& f, const DataSpecSettings& s) {
  if (f.data_path.size() > 1 || names_indexed_dataset(f, f.data_path.at(0))) return indexed_data_spec(f, s);
  for (const char* flag : {"--eod-mask-loss", "--eod-token-id"})
    if (f.given(flag)) fail(flag, ": applies to Megatron indexed datasets; --data-path ", f.data_path[0], " is a file");
  nlohmann::json spec = {{"kind", f.data_format}, {"path", f.data_path[0]}};
  if (f.data_format != "text") {
    if (!s.vocab_size) fail("--data-format ", f.data_format, ": give the tokenizer's --vocab-size");
    spec["vocab_size"] = *s.vocab_size;
  }
  if (f.given("--split")) set_file_split(f, spec);
  return spec;
}

void set_file_split(const DataFlags& f, nlohmann::json& spec) {
  const auto fractions = split_fractions(f.split);
  spec["held_out_fraction"] = fractions[1];
  spec.erase("test_fraction");
  if (fractions[2] > 0.0) spec["test_fraction"] = fractions[2];
}

}  // namespace strata::tools
