#include "strata/train/megatron_data.h"

#include <filesystem>

#include "strata/core/error.h"

namespace strata::train {

namespace {

const char* const kSplitNames[3] = {"training", "held-out (valid)", "test"};

}  // namespace

MegatronData::MegatronData(MegatronDataSpec spec) : spec_(std::move(spec)), split_shares_(parse_split(spec_.split)) {
  const auto& blend = spec_.blend;
  if (blend.prefixes.empty()) fail("--data-path: no dataset given");
  if (blend.weights && blend.weights->size() != blend.prefixes.size())
    fail("--data-path: ", blend.weights->size(), " weights for ", blend.prefixes.size(), " datasets");
  if (blend.prefixes.size() >= 32767) fail("--data-path: ", blend.prefixes.size(), " datasets; Megatron blends fewer than 32767");
  if (spec_.seq_length < 2) fail("--seq-length ", spec_.seq_length, ": expected at least 2");
  if (spec_.vocab_size < 1)
    fail("--data-path ", blend.prefixes[0],
         ": an indexed dataset needs the tokenizer's vocabulary size: give --vocab-size or --tokenizer-type and "
         "--tokenizer-model");
  if (spec_.eod_mask_loss && !spec_.eod_token_id)
    fail("--eod-mask-loss: give the end-of-document token's id with --eod-token-id (or a tokenizer that has one)");
  if (spec_.eod_token_id && (*spec_.eod_token_id < 0 || *spec_.eod_token_id >= spec_.vocab_size))
    fail("--eod-token-id ", *spec_.eod_token_id, ": outside the vocabulary (--vocab-size ", spec_.vocab_size, ")");
  for (const auto& prefix : blend.prefixes) {
    datasets_.push_back(std::make_unique<io::MegatronIndexedDataset>(prefix));
    idx_fingerprints_.push_back(io::file_fingerprint(io::megatron_idx_path(prefix)));
    bin_fingerprints_.push_back(io::file_fingerprint(io::megatron_bin_path(prefix)));
  }
  train_ = build_split(0, spec_.train_samples);
  valid_ = build_split(1, std::nullopt);
}

MegatronData::Split MegatronData::build_split(int which, std::optional<int64_t> target) const {
  Split split;
  split.name = kSplitNames[which];
  const auto samples_of = [&](size_t d, std::optional<int64_t> count) {
    const auto& lengths = datasets_[d]->sequence_lengths();
    const auto [first, last] = split_range(split_shares_, which, static_cast<int64_t>(lengths.size()));
    return std::make_unique<GptSamples>(lengths, first, last, spec_.seq_length, count, spec_.seed);
  };
  const auto& weights = spec_.blend.weights;
  if (datasets_.size() == 1 && !weights) {  // Megatron's one prefix: no blend
    split.samples.push_back(samples_of(0, target));
    split.size = split.samples[0]->size();
    return split;
  }
  if (weights) {
    const auto normalized = normalize(*weights);
    if (!target) {
      // Megatron needs a size to blend by weight; the held-out split takes one epoch of every
      // dataset's share in all (strata's evaluation reads the same batches each time).
      int64_t epoch = 0;
      for (size_t d = 0; d < datasets_.size(); ++d) epoch += samples_of(d, std::nullopt)->size();
      target = epoch;
    }
    const auto built = samples_per_dataset(normalized, *target, kMidLevelDatasetSurplus);
    for (size_t d = 0; d < datasets_.size(); ++d) split.samples.push_back(samples_of(d, built[d]));
    for (const auto share : samples_per_dataset(normalized, *target, 0.0)) split.size += share;
    split.blend = blending_index(normalized, split.size);
    return split;
  }
  // Several prefixes without weights: each dataset's one epoch, mixed by their sizes. Datasets
  // with no sample in this split take no part (Megatron would fail on a zero weight).
  std::vector<int64_t> sizes;
  for (size_t d = 0; d < datasets_.size(); ++d) {
    split.samples.push_back(samples_of(d, std::nullopt));
    sizes.push_back(split.samples[d]->size());
  }
  int64_t total = 0;
  for (const auto size : sizes) total += size;
  if (total == 0) return split;
  if (!target) {
    split.blend = exhaustive_blending_index(sizes);
  } else {
    std::vector<double> lengths;
    for (const auto size : sizes) lengths.push_back(static_cast<double>(size));
    split.blend = blending_index(normalize(lengths), std::min(*target, total));
  }
  split.size = static_cast<int64_t>(split.blend->dataset.size());
  return split;
}

std::vector<int64_t> MegatronData::sample(const Split& split, uint64_t index) const {
  if (split.size == 0) fail(describe(), ": the ", split.name, " split holds no sample");
  const auto k = static_cast<int64_t>(index % static_cast<uint64_t>(split.size));
  const size_t d = split.blend ? static_cast<size_t>(split.blend->dataset[k]) : 0;
  const int64_t j = split.blend ? split.blend->sample[k] : k;
  const auto& samples = *split.samples[d];
  if (j >= samples.size())
    fail(datasets_[d]->prefix(), ": the ", split.name, " blend asks for sample ", j, " of a dataset built with ",
         samples.size());
  std::vector<int64_t> tokens;
  tokens.reserve(static_cast<size_t>(spec_.seq_length + 1));
  for (const auto& piece : samples.pieces(j)) {
    const auto at = tokens.size();
    tokens.resize(at + static_cast<size_t>(piece.length));
    datasets_[d]->read(piece.sequence, piece.offset, piece.length, tokens.data() + at);
    for (int64_t t = 0; t < piece.length; ++t) {
      const int64_t id = tokens[at + t];
      if (id < 0 || id >= spec_.vocab_size)
        fail(io::megatron_bin_path(datasets_[d]->prefix()).string(), ": token ", id, " at position ",
             piece.offset + t, " of sequence ", piece.sequence, " is outside the vocabulary (--vocab-size ",
             spec_.vocab_size, ")");
    }
  }
  return tokens;
}

Batch MegatronData::rows(const Split& split, uint64_t first, int64_t batch_size, int64_t seq_length) const {
  check_seq_length(seq_length);
  auto ids = at::empty({batch_size, seq_length}, at::kLong);
  auto labels = at::empty({batch_size, seq_length}, at::kLong);
  auto* in = ids.data_ptr<int64_t>();
  auto* out = labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch_size; ++b) {
    const auto tokens = sample(split, first + static_cast<uint64_t>(b));
    for (int64_t t = 0; t < seq_length; ++t) {
      in[b * seq_length + t] = tokens[t];
      out[b * seq_length + t] = tokens[t];
    }
    if (spec_.eod_mask_loss)
      for (int64_t t = 0; t + 1 < seq_length; ++t)
        if (tokens[t] == *spec_.eod_token_id) out[b * seq_length + t + 1] = -100;
  }
  return {ids, labels};
}

Batch MegatronData::next(int64_t batch_size, int64_t seq_length) {
  auto batch = rows(train_, position_, batch_size, seq_length);
  position_ += static_cast<uint64_t>(batch_size);
  return batch;
}

Batch MegatronData::held_out(int64_t index, int64_t batch_size, int64_t seq_length) const {
  return rows(valid_, static_cast<uint64_t>(index * batch_size), batch_size, seq_length);
}

void MegatronData::check_seq_length(int64_t seq_length) const {
  if (seq_length != spec_.seq_length)
    fail("--seq-length ", seq_length, ": the samples of ", spec_.blend.prefixes[0], " were built for --seq-length ",
         spec_.seq_length);
}

void MegatronData::check_fits(int64_t seq_length, bool evaluates) const {
  check_seq_length(seq_length);
  auto refuse_empty = [&](const Split& split, int which, const std::string& remedy) {
    if (split.size > 0) return;
    std::string sizes;
    for (const auto& d : datasets_) {
      const auto [first, last] = split_range(split_shares_, which, d->num_sequences());
      uint64_t tokens = 0;
      for (int64_t s = first; s < last; ++s) tokens += static_cast<uint64_t>(d->sequence_lengths()[s]);
      sizes += cat(sizes.empty() ? "" : ", ", d->prefix(), ": ", last - first, " of ", d->num_sequences(),
                   " sequences, ", tokens, " tokens");
    }
    fail("--split ", spec_.split, ": the ", split.name, " split holds no sample of --seq-length ", seq_length, " + 1 tokens (",
         sizes, ")", remedy);
  };
  refuse_empty(train_, 0, ": give it a larger share or use more data");
  if (evaluates)
    refuse_empty(valid_, 1, ": give it a larger share (e.g. --split 969,30,1), a shorter --seq-length, or --eval-iters 0 "
                            "to train without evaluation");
}

std::string MegatronData::describe() const {
  std::string text = "Megatron indexed data ";
  for (size_t d = 0; d < datasets_.size(); ++d) {
    const auto& data = *datasets_[d];
    text += cat(d ? ", " : "", spec_.blend.weights ? cat((*spec_.blend.weights)[d], " x ") : "", data.prefix(), " (",
                data.num_documents(), " documents, ", data.num_tokens(), " ", io::megatron_dtype_name(data.dtype()),
                " tokens)");
  }
  return cat(text, ", --split ", spec_.split, ": ", train_.size, " training and ", valid_.size,
             " held-out samples of ", spec_.seq_length, " + 1 tokens, seed ", spec_.seed,
             spec_.eod_mask_loss ? cat(", no loss after EOD ", *spec_.eod_token_id) : "");
}

nlohmann::json MegatronData::identity() const {
  auto datasets = nlohmann::json::array();
  for (size_t d = 0; d < datasets_.size(); ++d) {
    nlohmann::json entry = {{"path", std::filesystem::absolute(spec_.blend.prefixes[d]).string()},
                            {"idx_size", idx_fingerprints_[d].size},
                            {"idx_fingerprint", idx_fingerprints_[d].hash},
                            {"bin_size", bin_fingerprints_[d].size},
                            {"bin_fingerprint", bin_fingerprints_[d].hash}};
    if (spec_.blend.weights) entry["weight"] = (*spec_.blend.weights)[d];
    datasets.push_back(entry);
  }
  return {{"kind", "megatron"},
          {"datasets", datasets},
          {"split", spec_.split},
          {"seq_length", spec_.seq_length},
          {"train_samples", spec_.train_samples},
          {"seed", spec_.seed},
          {"vocab_size", spec_.vocab_size},
          {"eod_mask_loss", spec_.eod_mask_loss},
          {"eod_token_id", spec_.eod_token_id ? nlohmann::json(*spec_.eod_token_id) : nlohmann::json()}};
}

}  // namespace strata::train
