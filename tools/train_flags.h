#pragma once
// The flags of `strata train` (Megatron-LM's names, types and defaults where Megatron has one;
// docs/megatron.md), and what the command line gave: on resume, what it leaves out comes from the
// checkpoint (train_setup.cpp).
#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "data_flags.h"
#include "model_flags.h"
#include "strata/core/config.h"
#include "strata/model/pipeline_split.h"
#include "strata/parallel/layout.h"
#include "strata/train/data.h"
#include "strata/train/default_run.h"
#include "strata/train/trainer.h"
#include "tokenizer_flags.h"

namespace strata::tools {

struct TrainFlags {
  train::TrainOptions options;
  std::string device = "cpu";
  std::string model_config;
  std::string load_hf;
  bool use_checkpoint_opt_param_scheduler = false;  // a resumed run takes the checkpoint's schedule
  // Data (Megatron's --data-path, --split, --vocab-size, --make-vocab-size-divisible-by,
  // --tokenizer-type / --tokenizer-model, --mock-data, --eod-mask-loss; strata's --data-format,
  // --eod-token-id and --mqar-kv-pairs).
  DataFlags data;  // none: synthetic associative recall
  bool mock_data = false;
  TokenizerFlags tokenizer;  // indexed data: the vocabulary size and EOD id unless given
  std::optional<int64_t> vocab_size;
  std::optional<int64_t> make_vocab_size_divisible_by;  // Megatron's default 128 (docs/megatron.md)
  int64_t mqar_kv_pairs = train::MqarDefaults{}.num_kv_pairs;
  uint64_t seed = 1234;
  ModelFlags model;
  // Parallelism (Megatron's flag names); docs/parallelism.md.
  int nproc = 1;
  parallel::ParallelLayout layout;
  PipelineSplitFlags pipeline_split;  // virtual and uneven pipeline stages
  std::string distributed_backend = "gloo";
  double distributed_timeout_minutes = 10.0;
  std::optional<int64_t> ddp_bucket_size;  // parameters per gradient all-reduce bucket

  CLI::App* command = nullptr;
  bool given(const std::string& flag) const { return command->count(flag) > 0; }
};

// Registers every flag of `strata train` on `command`, bound to `flags`.
void add_train_flags(CLI::App& command, TrainFlags& flags);

// After parsing, before anything runs: Megatron's defaults for what a command line that defines its
// model leaves out (ModelFlags::define_a_model), Megatron's rules between the flags, and the notes
// of the Megatron flags accepted without being applied (megatron_flags.h), one line each.
std::vector<std::string> settle_train_flags(TrainFlags& flags);

// The data the flags name, as open_data_source (train/data.h) reads it. A --data-path that names
// Megatron indexed datasets (PREFIX.bin and PREFIX.idx exist) builds its samples for this run's
// --train-samples, or --train-iters x global batch (--global-batch-size, or --micro-batch-size x
// data_parallel_size). Indexed data takes the vocabulary and EOD id the flags leave out from
// --tokenizer-model (NullTokenizer: --vocab-size, its last id the EOD), else from the tokenizer in
// `tokenizer_folder` (the one that came with the starting weights: an --load-hf folder's, a
// checkpoint's tokenizer/).
nlohmann::json data_spec_from_flags(const TrainFlags& flags, int64_t data_parallel_size,
                                    const std::optional<std::filesystem::path>& tokenizer_folder = std::nullopt);

// The model's vocabulary for data of `data_vocab_size` tokens: --vocab-size if given, padded to a
// multiple of --make-vocab-size-divisible-by (Megatron's 128; the synthetic task is not padded
// unless the flag is given).
int64_t model_vocab_size(const TrainFlags& flags, int64_t data_vocab_size);

}  // namespace strata::tools
