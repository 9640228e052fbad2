#pragma once
// The flags of `strata train` (Megatron-LM's names, types and defaults where Megatron has one;
// docs/megatron.md), and what the command line gave: on resume, what it leaves out comes from the
// checkpoint (train_setup.cpp).
#include <CLI/CLI.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "model_flags.h"
#include "strata/core/config.h"
#include "strata/parallel/layout.h"
#include "strata/train/data.h"
#include "strata/train/default_run.h"
#include "strata/train/trainer.h"

namespace strata::tools {

struct TrainFlags {
  train::TrainOptions options;
  std::string device = "cpu";
  std::string model_config;
  std::string load_hf;
  bool use_checkpoint_opt_param_scheduler = false;  // a resumed run takes the checkpoint's schedule
  // Data (Megatron's --data-path, --split, --vocab-size, --make-vocab-size-divisible-by,
  // --tokenizer-type NullTokenizer, --mock-data; strata's --data-format and --mqar-kv-pairs).
  std::string data_path, data_format = "text";
  std::string split;  // "train,valid,test" weights; empty: the last 5 % held out
  bool mock_data = false;
  std::optional<int64_t> vocab_size;
  std::optional<int64_t> make_vocab_size_divisible_by;  // Megatron's default 128 (docs/megatron.md)
  int64_t mqar_kv_pairs = train::MqarDefaults{}.num_kv_pairs;
  uint64_t seed = 1234;
  ModelFlags model;
  // Parallelism (Megatron's flag names); docs/parallelism.md.
  int nproc = 1;
  parallel::ParallelLayout layout;
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

// The data the flags name, as open_data_source (train/data.h) reads it.
nlohmann::json data_spec_from_flags(const TrainFlags& flags);

// The model's vocabulary for data of `data_vocab_size` tokens: --vocab-size if given, padded to a
// multiple of --make-vocab-size-divisible-by (Megatron's 128; the synthetic task is not padded
// unless the flag is given).
int64_t model_vocab_size(const TrainFlags& flags, int64_t data_vocab_size);

}  // namespace strata::tools
