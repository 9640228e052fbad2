#pragma once
// What a `strata train` run is made of, before anything large is built: the model config and the
// data, from the flags (a new run), from an HF model (--load-hf), or from the checkpoint it
// resumes (--load: what the flags leave out is restored, including shapes and schedule in
// flags.options; contradictions are refused here, before anything is built: train/run_identity.h).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "strata/core/config.h"
#include "strata/text/tokenizer_files.h"
#include "strata/train/data.h"
#include "train_flags.h"

namespace strata::tools {

struct TrainSetup {
  std::shared_ptr<const TransformerConfig> config;
  std::unique_ptr<train::DataSource> data;
  std::map<std::string, at::Tensor> initial_weights;  // canonical names; --load-hf's model
  std::string origin;  // "a new run", "resumes runs/a at iteration 60", ...
  std::vector<std::string> warnings;  // what resolving the layer settings said (model/layer_allocation.h)
  // The run's tokenizer: the flags', else the --load-hf folder's or the loaded checkpoint's.
  std::vector<text::TokenizerFile> tokenizer;
};

// `data_parallel_size` resolves the global batch for the resume check (the trainer checks again).
TrainSetup set_up_run(TrainFlags& flags, int64_t data_parallel_size);

// The model a new run starts from before its config file and flags: Megatron's defaults when the
// run names a config file (TransformerConfig's) or its flags define the model (ModelFlags's), else
// the embedded default model; its vocabulary the data's (`data_vocab_size`), padded as Megatron pads.
TransformerConfig new_run_base(const TrainFlags& flags, int64_t data_vocab_size);

// `base` (new_run_base, or a checkpoint's model), under the --model-config file, under --vocab-size
// (padded) and the model flags, its unset sizes derived (derive_unset_fields); its layer settings
// not yet resolved (model/layer_allocation.h).
TransformerConfig model_config_from_flags(const TrainFlags& flags, TransformerConfig base);

}  // namespace strata::tools
