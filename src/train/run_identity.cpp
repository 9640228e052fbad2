#include "strata/train/run_identity.h"

#include <algorithm>
#include <set>

#include "strata/core/error.h"
#include "strata/io/json_fields.h"

namespace strata::train {

namespace {

using Json = nlohmann::json;

std::string flag_of(std::string key) {
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

Json schedule_identity(const TrainOptions& o, int64_t resolved_decay_iters) {
  return {{"lr", o.lr},
          {"min_lr", o.min_lr},
          {"lr_warmup_iters", o.lr_warmup_iters},
          {"lr_decay_iters", resolved_decay_iters},
          {"weight_decay", o.adam.weight_decay},
          {"adam_beta1", o.adam.beta1},
          {"adam_beta2", o.adam.beta2},
          {"adam_eps", o.adam.eps},
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
}

Json run_identity(const DataSource& data, const TrainOptions& o, int64_t global_batch_size) {
  return {{"data", data.identity()},
          {"seq_length", o.seq_length},
          {"micro_batch_size", o.micro_batch_size},
          {"global_batch_size", global_batch_size},
          {"schedule", schedule_identity(o, o.lr_decay_iters ? o.lr_decay_iters : o.train_iters)}};
}

bool resumable_model_change(const std::string& field) {
  static const std::set<std::string> numerics_only = {
      "hidden_dropout",   "attention_dropout", "fp32_residual_connection", "mhc_recompute_num_layers",
      "init_method_std",  "linear_chunk_size", "mamba_chunk_size"};
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
    for (const auto& [key, value] : run.at("schedule").items())
      differs(flag_of(key), saved_run.at("schedule").value(key, Json()), value,
              " (changing the schedule on resume needs --override-opt_param-scheduler)");
  }
  if (problems.empty()) return;
  std::string text = cat(source, ": this command contradicts the run it resumes:");
  for (const auto& p : problems) text += "\n  " + p;
  text += "\nLeave these flags out to continue the run as it was; --finetune starts a new run from its weights.";
  throw Error(text);
}

}  // namespace strata::train
