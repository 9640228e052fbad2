#include "strata/train/run_identity.h"

#include <algorithm>
#include <map>
#include <set>

#include "strata/core/error.h"
#include "strata/io/json_fields.h"

namespace strata::train {

namespace {

using Json = nlohmann::json;

// The flag that sets a run setting or model field: Megatron's, which is mostly the name spelled
// with dashes.
std::string flag_of(std::string key) {
  static const std::map<std::string, std::string> renamed = {
      {"num_moe_experts", "--num-experts"},
      {"layernorm_epsilon", "--norm-epsilon"},
      {"layernorm_zero_centered_gamma", "--apply-layernorm-1p"},
      {"add_bias_linear", "--disable-bias-linear"},
      {"share_embeddings_and_output_weights", "--untie-embeddings-and-output-weights"},
      {"gated_linear_unit", "--swiglu"},
      {"activation_func", "--swiglu, --squared-relu"}};
  if (auto it = renamed.find(key); it != renamed.end()) return it->second;
  std::replace(key.begin(), key.end(), '_', '-');
  return "--" + key;
}

// Data is the same when everything but where its files lie is: a moved file is the same data
// (an indexed dataset's "datasets" hold a path each).
Json without_path(Json data) {
  if (data.is_object()) {
    data.erase("path");
    for (auto& [key, value] : data.items()) value = without_path(value);
  } else if (data.is_array()) {
    for (auto& value : data) value = without_path(value);
  }
  return data;
}

std::string shown(const Json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

}  // namespace

Json schedule_identity(const TrainOptions& o) {
  // Sample-based: --train-samples given, or (read back from a checkpoint, which does not hold
  // the run's length) a resolved decay length in samples.
  const bool samples = o.train_samples > 0 || o.lr_decay_samples > 0;
  return {{"lr", o.lr},
          {"min_lr", o.min_lr},
          {"lr_decay_style", o.lr_decay_style},
          {"lr_warmup_init", o.lr_warmup_init},
          {"lr_warmup_fraction", o.lr_warmup_fraction ? Json(*o.lr_warmup_fraction) : Json(nullptr)},
          {"lr_warmup_iters", o.lr_warmup_iters},
          {"lr_decay_iters", samples ? o.lr_decay_iters : o.lr_decay_iters ? o.lr_decay_iters : o.train_iters},
          {"lr_wsd_decay_style", o.lr_wsd_decay_style},
          {"lr_wsd_decay_iters", o.lr_wsd_decay_iters},
          {"lr_warmup_samples", o.lr_warmup_samples},
          {"lr_decay_samples", samples && !o.lr_decay_samples ? o.train_samples : o.lr_decay_samples},
          {"lr_wsd_decay_samples", o.lr_wsd_decay_samples},
          {"weight_decay", o.adam.weight_decay},
          {"adam_beta1", o.adam.beta1},
          {"adam_beta2", o.adam.beta2},
          {"adam_eps", o.adam.eps},
          {"apply_wd_to_qk_layernorm", o.adam.apply_wd_to_qk_layernorm},
          {"clip_grad", o.clip_grad}};
}

void apply_schedule(const Json& schedule, TrainOptions& o, const std::string& source) {
  const io::JsonFields f(schedule, source, "run.schedule");
  o.lr = f.required<double>("lr");
  o.min_lr = f.required<double>("min_lr");
  o.lr_warmup_iters = f.required<int64_t>("lr_warmup_iters");
  o.lr_decay_iters = f.required<int64_t>("lr_decay_iters");
  o.adam.weight_decay = f.required<double>("weight_decay");
  o.adam.beta1 = f.required<double>("adam_beta1");
  o.adam.beta2 = f.required<double>("adam_beta2");
  o.adam.eps = f.required<double>("adam_eps");
  o.clip_grad = f.required<double>("clip_grad");
  // Written since strata has Megatron's schedules; a checkpoint from before trained with cosine
  // decay from 0, iteration-based.
  o.lr_decay_style = f.optional<std::string>("lr_decay_style", "cosine");
  o.lr_warmup_init = f.optional<double>("lr_warmup_init", 0.0);
  o.lr_warmup_fraction = f.optional_value<double>("lr_warmup_fraction");
  o.lr_wsd_decay_style = f.optional<std::string>("lr_wsd_decay_style", "exponential");
  o.lr_wsd_decay_iters = f.optional<int64_t>("lr_wsd_decay_iters", 0);
  o.lr_warmup_samples = f.optional<int64_t>("lr_warmup_samples", 0);
  o.lr_decay_samples = f.optional<int64_t>("lr_decay_samples", 0);
  o.lr_wsd_decay_samples = f.optional<int64_t>("lr_wsd_decay_samples", 0);
  o.adam.apply_wd_to_qk_layernorm = f.optional<bool>("apply_wd_to_qk_layernorm", false);
}

Json run_identity(const DataSource& data, const TrainOptions& o, int64_t global_batch_size) {
  return {{"data", data.identity()},
          {"seq_length", o.seq_length},
          {"micro_batch_size", o.micro_batch_size},
          {"global_batch_size", global_batch_size},
          {"schedule", schedule_identity(o)}};
}

bool resumable_model_change(const std::string& field) {
  static const std::set<std::string> numerics_only = {
      "hidden_dropout",        "attention_dropout", "fp32_residual_connection", "init_method_std",
      "linear_chunk_size",     "mamba_chunk_size",  "mhc_recompute_layer_num",  "recompute_granularity",
      "recompute_method",      "recompute_num_layers", "recompute_modules"};
  return numerics_only.count(field) != 0;
}

void check_resumable(const Json& saved_config, const Json& saved_run, const Json& config, const Json& run,
                     bool override_scheduler, const std::string& source) {
  std::vector<std::string> problems;
  auto differs = [&](const std::string& what, const Json& was, const Json& now, const std::string& hint = "") {
    if (was != now) problems.push_back(cat(what, ": checkpoint ", shown(was), ", this run ", shown(now), hint));
  };
  for (const auto& [field, value] : config.items()) {
    if (resumable_model_change(field)) continue;
    differs(cat("model ", field, " (", flag_of(field), " or --model-config)"), saved_config.value(field, Json()), value);
  }
  if (without_path(saved_run.at("data")) != without_path(run.at("data")))
    differs("data (--data-path, --data-format, --vocab-size, --split, --eod-mask-loss, --mqar-kv-pairs, --seed)", saved_run.at("data"),
            run.at("data"));
  for (const char* key : {"seq_length", "global_batch_size"}) differs(flag_of(key), saved_run.at(key), run.at(key));
  if (!override_scheduler) {
    // Read back as apply_schedule reads it: a checkpoint written before a schedule setting existed
    // ran with what strata did then.
    TrainOptions saved;
    apply_schedule(saved_run.at("schedule"), saved, source);
    const auto saved_schedule = schedule_identity(saved);
    for (const auto& [key, value] : run.at("schedule").items())
      differs(flag_of(key), saved_schedule.value(key, Json()), value,
              " (changing the schedule on resume needs --override-opt_param-scheduler)");
  }
  if (problems.empty()) return;
  std::string text = cat(source, ": this command contradicts the run it resumes:");
  for (const auto& p : problems) text += "\n  " + p;
  text += "\nLeave these flags out to continue the run as it was; --finetune starts a new run from its weights.";
  throw Error(text);
}

}  // namespace strata::train
