#include "run_log.h"

#include <cstdio>
#include <fstream>

#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/core/version.h"
#include "strata/io/atomic_file.h"
#include "train_flags.h"

namespace strata::tools {

namespace fs = std::filesystem;

namespace {

using Json = nlohmann::json;

// The key that marks a config.json as one this command wrote.
constexpr const char* kMarker = "strata_run_configuration";

Json or_null(const std::optional<int64_t>& value) { return value ? Json(*value) : Json(nullptr); }

Json training_options(const TrainFlags& f) {
  const auto& o = f.options;
  return {{"train_iters", o.train_iters},
          {"train_samples", o.train_samples},
          {"micro_batch_size", o.micro_batch_size},
          {"global_batch_size", o.global_batch_size},
          {"seq_length", o.seq_length},
          {"lr", o.lr},
          {"min_lr", o.min_lr},
          {"lr_decay_style", o.lr_decay_style},
          {"lr_warmup_init", o.lr_warmup_init},
          {"lr_warmup_fraction", o.lr_warmup_fraction ? Json(*o.lr_warmup_fraction) : Json(nullptr)},
          {"lr_warmup_iters", o.lr_warmup_iters},
          {"lr_decay_iters", o.lr_decay_iters},
          {"lr_wsd_decay_style", o.lr_wsd_decay_style},
          {"lr_wsd_decay_iters", o.lr_wsd_decay_iters},
          {"lr_warmup_samples", o.lr_warmup_samples},
          {"lr_decay_samples", o.lr_decay_samples},
          {"lr_wsd_decay_samples", o.lr_wsd_decay_samples},
          {"weight_decay", o.adam.weight_decay},
          {"apply_wd_to_qk_layernorm", o.adam.apply_wd_to_qk_layernorm},
          {"adam_beta1", o.adam.beta1},
          {"adam_beta2", o.adam.beta2},
          {"adam_eps", o.adam.eps},
          {"clip_grad", o.clip_grad},
          {"bf16", o.bf16},
          {"save", o.save},
          {"load", o.load},
          {"load_hf", f.load_hf},
          {"finetune", o.finetune},
          {"override_opt_param_scheduler", o.override_opt_param_scheduler},
          {"save_interval", o.save_interval},
          {"metrics", o.metrics},
          {"log_interval", o.log_interval},
          {"eval_interval", o.eval_interval},
          {"eval_iters", o.eval_iters},
          {"exit_signal_handler", o.exit_signal_handler},
          {"exit_duration_in_mins", o.exit_duration_in_mins},
          {"exit_interval", o.exit_interval},
          {"seed", f.seed},
          {"device", o.device.str()},
          {"nproc", f.nproc},
          {"tensor_model_parallel_size", f.layout.tensor_parallel},
          {"pipeline_model_parallel_size", f.layout.pipeline_parallel},
          {"num_virtual_stages_per_pipeline_rank", or_null(f.pipeline_split.num_virtual_stages_per_pipeline_rank)},
          {"num_layers_per_virtual_pipeline_stage", or_null(f.pipeline_split.num_layers_per_virtual_pipeline_stage)},
          {"decoder_first_pipeline_num_layers", or_null(f.pipeline_split.decoder_first_pipeline_num_layers)},
          {"decoder_last_pipeline_num_layers", or_null(f.pipeline_split.decoder_last_pipeline_num_layers)},
          {"expert_model_parallel_size", f.layout.expert_parallel},
          {"sequence_parallel", f.layout.sequence_parallel},
          {"distributed_backend", f.distributed_backend},
          {"distributed_timeout_minutes", f.distributed_timeout_minutes},
          {"split", f.data.split},
          {"tokenizer_type", f.tokenizer.type},
          {"tokenizer_model", f.tokenizer.model},
          {"make_vocab_size_divisible_by",
           f.make_vocab_size_divisible_by ? Json(*f.make_vocab_size_divisible_by) : Json(nullptr)}};
}

std::string shown(const Json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// Megatron's layout: one "  name ....... value" line per setting, in name order.
void print_arguments(const Json& training, const Json& model, const Json& data) {
  std::printf("------------------------ arguments ------------------------\n");
  std::map<std::string, std::string> lines;
  for (const auto& [name, value] : training.items()) lines[name] = shown(value);
  for (const auto& [name, value] : model.items()) lines[name] = shown(value);
  lines["data"] = data.dump();
  for (const auto& [name, value] : lines) {
    const auto dots = name.size() < 48 ? 48 - name.size() : 1;
    std::printf("  %s %s %s\n", name.c_str(), std::string(dots, '.').c_str(), value.c_str());
  }
  std::printf("-------------------- end of arguments ---------------------\n");
  std::fflush(stdout);
}

void write_run_config(const fs::path& path, const Json& config) {
  std::error_code error;
  if (fs::exists(path, error)) {
    std::ifstream in(path);
    const auto existing = Json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!existing.is_object() || !existing.contains(kMarker))
      fail("--metrics: ", path.string(), " exists and is not a strata run configuration; writing the run's ",
           "configuration there would replace it (put the metrics file in another folder)");
  }
  fs::create_directories(path.parent_path().empty() ? fs::path(".") : path.parent_path(), error);
  io::write_file_atomically(path, config.dump(2) + "\n");
}

}  // namespace

fs::path run_config_path(const std::string& metrics) { return fs::path(metrics).parent_path() / "config.json"; }

void log_run_configuration(const TrainFlags& f, const TransformerConfig& config, const train::DataSource& data,
                           const std::string& origin) {
  const auto training = training_options(f);
  const auto model = to_json(config);
  const auto data_identity = data.identity();
  print_arguments(training, model, data_identity);
  if (f.options.metrics.empty()) return;
  write_run_config(run_config_path(f.options.metrics), {{kMarker, build_description()},
                                                        {"origin", origin},
                                                        {"training", training},
                                                        {"model", model},
                                                        {"data", data_identity}});
}

}  // namespace strata::tools
