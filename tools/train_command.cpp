// strata train: Megatron-style flags over a model config (JSON) and a data source.
#include <cstdio>

#include "commands.h"
#include "output_paths.h"
#include "run_log.h"
#include "strata/core/error.h"
#include "strata/model/build_model.h"
#include "strata/model/layer_allocation.h"
#include "strata/model/layer_pattern.h"
#include "strata/model/pipeline_layout.h"
#include "strata/model/pipeline_split.h"
#include "strata/parallel/model_state.h"
#include "strata/parallel/parallel_model.h"
#include "strata/parallel/run.h"
#include "strata/train/memory_estimate.h"
#include "strata/train/trainer.h"
#include "train_flags.h"
#include "train_setup.h"

namespace strata::tools {

namespace {

int run_train(TrainFlags& f) {
  const auto notes = settle_train_flags(f);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(f.distributed_timeout_minutes * 60e3));
  parallel::check_nproc(f.nproc, parallel::parse_comm_backend(f.distributed_backend));
  if (parallel::should_launch(f.nproc)) return parallel::launch_this_command(f.nproc, timeout);
  auto run = parallel::join_parallel_run(f.layout, parallel::parse_comm_backend(f.distributed_backend), timeout);
  const bool logs = !run || run->logs();
  auto& o = f.options;
  o.progress = logs;
  if (!logs) o.metrics.clear();
  o.device = parse_device(f.device);
  if (run && o.device.is_cuda()) o.device = at::Device(at::kCUDA, run->local_rank);
  refuse_outputs_over_inputs(f);
  train::refuse_load_without_checkpoint(o);
  train::refuse_save_over_another_run(o);

  at::manual_seed(f.seed);
  auto setup = set_up_run(f, run ? run->groups.dp_size() : 1);
  if (auto warning = unmarked_stages_warning(*setup.config, f.layout.pipeline_parallel); !warning.empty())
    setup.warnings.push_back(warning);
  if (logs)
    for (const auto& warning : setup.warnings) std::fprintf(stderr, "strata: warning: %s\n", warning.c_str());
  train::check_train_options(o);  // once a resumed run's options hold the checkpoint's values
  validate(*setup.config);         // before its size is estimated: a bad layer count must not allocate
  const auto& config = *setup.config;
  // Megatron asserts it whatever the position embedding; a rope or none model may leave the size unset.
  const bool table = config.position_embedding_type == PositionEmbeddingType::LearnedAbsolute;
  if ((table || config.max_position_embeddings > 0) && o.seq_length > config.max_position_embeddings)
    fail("--seq-length ", o.seq_length, ": longer than ", table ? "the learned position table, " : "",
         "--max-position-embeddings ", config.max_position_embeddings);
  setup.data->check_fits(o.seq_length, o.eval_iters > 0);
  // Checked in every process, a single one included (flags that need pipeline ranks are refused there).
  const auto split = resolve_pipeline_split(resolve_layer_pattern(*setup.config), f.layout.pipeline_parallel,
                                            f.pipeline_split);
  const auto shards = run ? f.layout.tensor_parallel * f.layout.pipeline_parallel : 1;
  const auto ranks_sharing_memory = run && o.device.is_cpu() ? run->world->size() : 1;
  const bool recompute = setup.config->recompute_granularity == "full";
  train::check_memory_fits(train::estimate_training_memory(*setup.config, o.micro_batch_size, o.seq_length, recompute,
                                                           o.bf16, shards),
                           ranks_sharing_memory, o.device, o.micro_batch_size, o.seq_length);
  auto model = run ? parallel::build_parallel_language_model(setup.config, run->groups, split)
                   : build_language_model(setup.config);
  if (!setup.initial_weights.empty()) {
    if (run) {
      parallel::load_canonical_state_dict(*model, setup.initial_weights, f.load_hf);
    } else {
      model->load_canonical_state_dict(setup.initial_weights, f.load_hf);
    }
  }
  if (logs) {
    int64_t parameters = 0;
    for (const auto& [name, p] : model->canonical_state_dict()) parameters += p.numel();
    const auto mtp = model->mtp_depths() ? cat(" + ", model->mtp_depths(), " MTP depths") : std::string();
    std::printf("strata train: %s\nmodel: pattern %s%s, %lld parameters%s\ndata: %s\n", setup.origin.c_str(),
                resolve_layer_pattern(*setup.config).layers_text().c_str(), mtp.c_str(), static_cast<long long>(parameters),
                run ? cat(" on rank 0 of ", run->world->size()).c_str() : "", setup.data->describe().c_str());
    log_run_configuration(f, *setup.config, *setup.data, setup.origin);
    for (const auto& note : notes) std::printf("note: %s\n", note.c_str());
  }
  o.tokenizer = setup.tokenizer;
  auto result = train::train(*model, *setup.data, o);
  if (!logs) return result.stop.exit_code();
  if (!result.steps.empty()) {
    const auto& first = result.steps.front();
    const auto& last = result.steps.back();
    std::printf("train: step %lld loss %.4f acc %.3f -> step %lld loss %.4f acc %.3f\n",
                static_cast<long long>(first.step), first.loss, first.accuracy, static_cast<long long>(last.step),
                last.loss, last.accuracy);
  }
  if (!result.steps.empty() && !result.steps.back().mtp_losses.empty()) {
    auto losses = [](const train::StepRecord& r) {
      std::string out;
      for (const double l : r.mtp_losses) out += cat(out.empty() ? "" : ",", std::to_string(l).substr(0, 6));
      return out;
    };
    std::printf("mtp: step %lld losses %s -> step %lld losses %s\n", static_cast<long long>(result.steps.front().step),
                losses(result.steps.front()).c_str(), static_cast<long long>(result.steps.back().step),
                losses(result.steps.back()).c_str());
  }
  if (!result.evals.empty())
    std::printf("held-out: loss %.4f accuracy %.3f\n", result.evals.back().loss, result.evals.back().accuracy);
  if (result.stop.stopped()) {
    std::printf("%s\n", result.stop.describe(o.save).c_str());
  } else if (!o.save.empty()) {
    std::printf("saved to %s\n", o.save.c_str());
  }
  return result.stop.exit_code();
}

}  // namespace

Subcommand add_train(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  auto* cmd = app.add_subcommand(
      "train", "train a model (with no data or model flags: a small hybrid model on associative recall)");
  add_train_flags(*cmd, *f);
  return {cmd, [f] { return run_train(*f); }};
}

}  // namespace strata::tools
