#pragma once
// The flags of `strata train` (Megatron's names where Megatron has one), and what the command
// line gave: on resume, what it leaves out comes from the checkpoint (train_resume.cpp).
#include <CLI/CLI.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "strata/core/config.h"
#include "strata/model/pipeline_split.h"
#include "strata/parallel/layout.h"
#include "strata/train/data.h"
#include "strata/train/default_run.h"
#include "strata/train/trainer.h"
#include "layer_allocation_flags.h"
#include "tokenizer_flags.h"

namespace strata::tools {

struct TrainFlags {
  train::TrainOptions options;
  std::string device = "cpu";
  std::string model_config;
  std::string load_hf;
  // --data-path: a text or token file, or Megatron indexed datasets "[W1] P1 [W2] P2 ...".
  std::vector<std::string> data_path;
  std::string data_format = "text";
  std::string split = "969,30,1";  // Megatron's default for --data-path
  bool eod_mask_loss = false;
  std::optional<int64_t> eod_token_id;
  TokenizerFlags tokenizer;  // indexed data: the vocabulary size and EOD id unless given
  int64_t mqar_kv_pairs = train::MqarDefaults{}.num_kv_pairs;
  uint64_t seed = 1234;
  std::string recompute_granularity;
  // Model overrides, applied on top of the config file (or the default model).
  std::optional<std::string> hybrid_layer_pattern;
  std::optional<int64_t> num_layers, hidden_size, ffn_hidden_size, num_attention_heads, num_query_groups,
      kv_channels, vocab_size;
  LayerAllocationFlags layer_allocation;  // without a pattern: variant, frequencies, ratios
  bool enable_hyper_connections = false;  // a flag can only turn mHC on; a config file can turn it off
  std::optional<int64_t> num_residual_streams, mhc_sinkhorn_iterations, mhc_recompute_num_layers;
  std::optional<double> mhc_eps, mhc_init_gating_factor;
  std::optional<bool> fp32_residual_connection;
  std::optional<int64_t> mtp_num_layers;
  std::optional<double> mtp_loss_scaling_factor;
  // Parallelism (Megatron's flag names); docs/parallelism.md.
  int nproc = 1;
  parallel::ParallelLayout layout;
  PipelineSplitFlags pipeline_split;  // virtual and uneven pipeline stages
  std::string distributed_backend = "gloo";
  double distributed_timeout_minutes = 10.0;

  CLI::App* command = nullptr;
  bool given(const std::string& flag) const { return command->count(flag) > 0; }
};

// Registers every flag of `strata train` on `command`, bound to `flags`.
void add_train_flags(CLI::App& command, TrainFlags& flags);

// The data the flags name, as open_data_source (train/data.h) reads it. A --data-path that names
// Megatron indexed datasets (PREFIX.bin and PREFIX.idx exist) builds its samples for this run's
// --train-iters x global batch (--global-batch-size, or --micro-batch-size x data_parallel_size).
nlohmann::json data_spec_from_flags(const TrainFlags& flags, int64_t data_parallel_size);

// Applies the model flags on top of `base`.
TransformerConfig apply_model_flags(const TrainFlags& flags, TransformerConfig base);

}  // namespace strata::tools
