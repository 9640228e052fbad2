#pragma once
// What a training run is, saved with every checkpoint (state.json: "config" and "run") so that a
// resumed run is the same run: the model, the data, the batch shapes and the optimizer's schedule.
// `strata train --load` restores what its flags leave out; a value that contradicts the
// checkpoint is refused with both values named (check_resumable). Changing the schedule on
// resume is legitimate with Megatron's --override-opt_param-scheduler; other data or shapes are a
// new run: --finetune starts one from the checkpoint's weights.
//
//   "run": {"data": DataSource::identity(), "seq_length": 64, "micro_batch_size": 16,
//           "global_batch_size": 16,
//           "schedule": {"lr": ..., "min_lr": ..., "lr_decay_style": ..., "lr_warmup_iters": ...,
//                        "lr_decay_iters": ..., "lr_warmup_samples": ..., ..., "weight_decay": ...,
//                        "adam_beta1": ..., "adam_beta2": ..., "adam_eps": ..., "clip_grad": ...}}
// Keys are the flags' names with '_' for '-'. micro_batch_size is restored but free to change (the
// data order depends only on the global batch); lr_decay_iters (lr_decay_samples in a sample-based
// run) is the resolved length, so a longer resumed run keeps the decay it started with.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "strata/core/config.h"
#include "strata/train/data.h"
#include "strata/train/trainer.h"

namespace strata::train {

// The "run" object of this run; global_batch_size is micro-batch x data-parallel ranks x
// accumulation steps.
nlohmann::json run_identity(const DataSource& data, const TrainOptions& options, int64_t global_batch_size);

// The schedule fields of options as the identity spells them, and back.
nlohmann::json schedule_identity(const TrainOptions& options);
void apply_schedule(const nlohmann::json& schedule, TrainOptions& options, const std::string& source);

// Model config fields that change numerics but not the weights: a resumed run may change them.
bool resumable_model_change(const std::string& field);

// Refuses a resumed run that contradicts its checkpoint: every model field (but the ones above),
// the data, seq_length, global_batch_size, and (unless override_scheduler) the schedule. One error
// lists every difference, each as "--flag: checkpoint X, this run Y". `source` names the checkpoint.
void check_resumable(const nlohmann::json& saved_config, const nlohmann::json& saved_run,
                     const nlohmann::json& config, const nlohmann::json& run, bool override_scheduler,
                     const std::string& source);

}  // namespace strata::train
