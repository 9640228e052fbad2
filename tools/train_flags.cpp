#include "train_flags.h"

#include <filesystem>

#include "flag_checks.h"
#include "megatron_flags.h"
#include "strata/core/error.h"
#include "strata/text/tokenizer_files.h"

namespace strata::tools {

namespace {

void add_schedule_flags(CLI::App& cmd, train::TrainOptions& o) {
  const auto count = integer_at_least(0), positive = integer_at_least(1);
  const auto probability = real_in(0.0, 1.0, /*max_open=*/true);
  cmd.add_option("--train-iters", o.train_iters, "train up to this iteration (a resumed run continues to it)")
      ->check(positive);
  cmd.add_option("--train-samples", o.train_samples,
                 "train on this many sequences: --train-samples / global batch iterations (sample-based schedule)")
      ->check(positive);
  cmd.add_option("--lr", o.lr, "peak learning rate")->check(real_above(0.0));
  cmd.add_option("--min-lr", o.min_lr, "learning rate at the end of the decay")->check(real_at_least(0.0));
  cmd.add_option("--lr-decay-style", o.lr_decay_style,
                 "constant, linear (Megatron's default), cosine (the default run's), inverse-square-root or WSD")
      ->check(CLI::IsMember({"constant", "linear", "cosine", "inverse-square-root", "WSD"}));
  cmd.add_option("--lr-decay-iters", o.lr_decay_iters, "decay length (0: --train-iters)")->check(count);
  cmd.add_option("--lr-decay-samples", o.lr_decay_samples, "decay length in sequences (default: --train-samples)")
      ->check(positive);
  cmd.add_option("--lr-warmup-iters", o.lr_warmup_iters, "linear warmup steps")->check(count);
  cmd.add_option("--lr-warmup-samples", o.lr_warmup_samples, "linear warmup in sequences")->check(count);
  cmd.add_option_function<double>(
         "--lr-warmup-fraction", [&o](const double& v) { o.lr_warmup_fraction = v; },
         "warmup as this fraction of the decay length")
      ->check(real_in(0.0, 1.0));
  cmd.add_option("--lr-warmup-init", o.lr_warmup_init, "learning rate warmup starts from")->check(real_at_least(0.0));
  cmd.add_option("--lr-wsd-decay-style", o.lr_wsd_decay_style,
                 "WSD's final decay: exponential, linear, cosine or minus_sqrt")
      ->check(CLI::IsMember({"exponential", "linear", "cosine", "minus_sqrt"}));
  cmd.add_option("--lr-wsd-decay-iters", o.lr_wsd_decay_iters, "WSD's final decay length")->check(positive);
  cmd.add_option("--lr-wsd-decay-samples", o.lr_wsd_decay_samples, "WSD's final decay length in sequences")
      ->check(positive);
  cmd.add_option("--weight-decay", o.adam.weight_decay, "AdamW weight decay (matrices only)")
      ->check(real_at_least(0.0));
  cmd.add_flag("--apply-wd-to-qk-layernorm", o.adam.apply_wd_to_qk_layernorm, "weight decay on the q/k norms too");
  cmd.add_option("--adam-beta1", o.adam.beta1, "AdamW decay rate of the gradient mean")->check(probability);
  cmd.add_option("--adam-beta2", o.adam.beta2, "AdamW decay rate of the squared-gradient mean")->check(probability);
  cmd.add_option("--adam-eps", o.adam.eps, "AdamW denominator floor")->check(real_above(0.0));
  cmd.add_option("--clip-grad", o.clip_grad, "global gradient-norm clip (0: off)")->check(real_at_least(0.0));
}

void add_run_flags(CLI::App& cmd, TrainFlags& f) {
  auto& o = f.options;
  const auto count = integer_at_least(0), positive = integer_at_least(1);
  cmd.add_option("--micro-batch-size", o.micro_batch_size, "sequences per forward pass (per data-parallel rank)")
      ->check(positive);
  cmd.add_option("--global-batch-size", o.global_batch_size,
                 "sequences per step, accumulated over micro-batches (0: one micro-batch per data-parallel rank)")
      ->check(count);
  cmd.add_option("--seq-length", o.seq_length, "tokens per sequence")->check(integer_at_least(2));
  cmd.add_flag("--bf16", o.bf16, "bfloat16 autocast (CUDA)");
  cmd.add_option("--save", o.save, "checkpoint folder (refused when it holds another run)");
  cmd.add_option("--load", o.load,
                 "resume the run in this checkpoint folder: flags left out are taken from it, flags that contradict "
                 "it are refused");
  cmd.add_flag("--finetune", o.finetune, "take only the weights of --load: a new run from iteration 0, any data");
  cmd.add_flag("--override-opt_param-scheduler,--override-opt-param-scheduler", o.override_opt_param_scheduler,
               "a resumed run takes --lr, --min-lr, warmup, decay, AdamW and clip flags from the command line");
  cmd.add_flag("--use-checkpoint-opt_param-scheduler,--use-checkpoint-opt-param-scheduler",
               f.use_checkpoint_opt_param_scheduler,
               "a resumed run takes its schedule from the checkpoint, whatever the schedule flags say");
  cmd.add_option("--load-hf", f.load_hf, "start a new run from an HF model folder (config.json + safetensors)");
  cmd.add_option("--save-interval", o.save_interval, "save every N steps (0: only at the end)")->check(count);
  cmd.add_option("--metrics", o.metrics,
                 "append one JSON object per logged step and evaluation to this file; the run's configuration is "
                 "written beside it as config.json");
  cmd.add_option("--log-interval", o.log_interval, "log every N steps")->check(positive);
  cmd.add_option("--eval-interval", o.eval_interval, "evaluate on held-out data every N steps (0: only at the end)")
      ->check(count);
  cmd.add_option("--eval-iters", o.eval_iters, "held-out global batches per evaluation (0: no evaluation)")->check(count);
  cmd.add_flag("--exit-signal-handler", o.exit_signal_handler,
               "on SIGTERM or SIGINT, save and stop at the next step boundary (always on; Megatron's flag)");
  cmd.add_option("--exit-duration-in-mins", o.exit_duration_in_mins,
                 "save and stop after this many minutes of training (exit code 0; 0: no limit)")
      ->check(real_at_least(0.0));
  cmd.add_option("--exit-interval", o.exit_interval,
                 "save and stop at an iteration that is a multiple of N (exit code 0; 0: never)")
      ->check(count);
  cmd.add_option("--seed", f.seed, "seed for initialisation and synthetic data")->check(unsigned_integer());
  cmd.add_option("--device", f.device, "cpu or cuda");
  cmd.add_option("--model-config", f.model_config,
                 "model config JSON (Megatron TransformerConfig field names; unset fields take its defaults)");
}

void add_train_data_flags(CLI::App& cmd, TrainFlags& f) {
  const auto positive = integer_at_least(1);
  add_data_flags(cmd, f.data,
                 "training data: a text or token file, or Megatron indexed datasets \"[W1] PREFIX1 [W2] PREFIX2 ...\" "
                 "(PREFIX.bin/.idx; default: synthetic associative recall)");
  cmd.add_flag("--mock-data", f.mock_data, "random tokens of --vocab-size instead of --data-path");
  add_tokenizer_flags(cmd, f.tokenizer);
  cmd.add_option_function<int64_t>(
         "--vocab-size", [&f](const int64_t& v) { f.vocab_size = v; },
         "vocabulary (token files and NullTokenizer: the data's; default: the tokenizer's)")
      ->check(positive);
  cmd.add_option_function<int64_t>(
         "--make-vocab-size-divisible-by", [&f](const int64_t& v) { f.make_vocab_size_divisible_by = v; },
         "pad the model's vocabulary to a multiple of this (default 128; the synthetic task: 1)")
      ->check(positive);
  cmd.add_option("--mqar-kv-pairs", f.mqar_kv_pairs, "key-value pairs per recall sequence")->check(positive);
}

void add_parallel_flags(CLI::App& cmd, TrainFlags& f) {
  const auto positive = integer_at_least(1);
  cmd.add_option("--nproc", f.nproc, "start this many ranks on this machine (a parallel run over c10d)")
      ->check(positive);
  cmd.add_option("--tensor-model-parallel-size", f.layout.tensor_parallel, "ranks that split each layer's weights")
      ->check(positive);
  cmd.add_option("--pipeline-model-parallel-size", f.layout.pipeline_parallel,
                 "pipeline stages (the pattern's '|' stages, or an even split)")
      ->check(positive);
  auto& split = f.pipeline_split;
  cmd.add_option("--num-virtual-stages-per-pipeline-rank", split.num_virtual_stages_per_pipeline_rank,
                 "model chunks per pipeline rank, interleaved 1F1B (a pattern with '|' sets them by its segments)")
      ->check(positive);
  cmd.add_option("--num-layers-per-virtual-pipeline-stage", split.num_layers_per_virtual_pipeline_stage,
                 "layers per virtual pipeline stage (virtual stages per rank = layers / pp / this)")
      ->check(positive);
  cmd.add_option("--decoder-first-pipeline-num-layers", split.decoder_first_pipeline_num_layers,
                 "layers of the first pipeline stage, over all its virtual stages (uneven split; patterns without '|')")
      ->check(positive);
  cmd.add_option("--decoder-last-pipeline-num-layers", split.decoder_last_pipeline_num_layers,
                 "layers of the last pipeline stage, over all its virtual stages (uneven split; patterns without '|')")
      ->check(positive);
  cmd.add_option("--expert-model-parallel-size", f.layout.expert_parallel, "ranks that split each MoE layer's experts")
      ->check(positive);
  cmd.add_flag("--sequence-parallel", f.layout.sequence_parallel,
               "split norms and residuals along the sequence over tp");
  cmd.add_option("--distributed-backend", f.distributed_backend, "gloo (CPU) or nccl (CUDA)")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  cmd.add_option("--distributed-timeout-minutes", f.distributed_timeout_minutes,
                 "how long the rendezvous and each collective may wait for another rank")
      ->check(real_above(0.0));
  cmd.add_option_function<int64_t>(
         "--ddp-bucket-size", [&f](const int64_t& v) { f.ddp_bucket_size = v; },
         "parameters per data-parallel gradient all-reduce bucket (default: 25 MB of float32)")
      ->check(positive);
}

// Megatron's defaults for the training settings a command line that defines its model leaves out,
// where the embedded default run keeps its own (a short demo schedule; docs/megatron.md).
void use_megatron_training_defaults(TrainFlags& f) {
  auto& o = f.options;
  const auto set = [&](const char* flag, auto& value, auto megatron_default) {
    if (!f.given(flag)) value = megatron_default;
  };
  set("--weight-decay", o.adam.weight_decay, 0.01);
  set("--adam-beta2", o.adam.beta2, 0.999);
  set("--min-lr", o.min_lr, 0.0);
  set("--lr-warmup-iters", o.lr_warmup_iters, int64_t{0});
  set("--lr-decay-style", o.lr_decay_style, std::string("linear"));
  set("--eval-iters", o.eval_iters, int64_t{100});
  set("--log-interval", o.log_interval, int64_t{100});
}

}  // namespace

void add_train_flags(CLI::App& cmd, TrainFlags& f) {
  f.command = &cmd;
  cmd.option_defaults()->always_capture_default();
  // As in Megatron (argparse), a flag given twice takes its last value.
  cmd.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add_schedule_flags(cmd, f.options);
  add_run_flags(cmd, f);
  add_train_data_flags(cmd, f);
  add_model_flags(cmd, f.model);
  add_parallel_flags(cmd, f);
  add_megatron_flags(cmd);
}

std::vector<std::string> settle_train_flags(TrainFlags& f) {
  auto notes = megatron_flag_notes(*f.command);
  if (f.given("--mhc-recompute-layer-num"))
    notes.push_back(
        "--mhc-recompute-layer-num: not applied: strata reruns each hyper-connection's maps in its own backward (a "
        "block of one), which gives the same outputs and gradients");
  if (f.tokenizer.is_null()) {
    if (!f.tokenizer.model.empty())
      fail("--tokenizer-model ", f.tokenizer.model, ": ", TokenizerFlags::kNull, " reads no tokenizer file");
    if (!f.vocab_size) fail("--tokenizer-type ", TokenizerFlags::kNull, ": give the vocabulary with --vocab-size");
  } else if (f.tokenizer.given()) {
    f.tokenizer.open();  // a bad type or file is refused before anything is built
  }
  if (f.mock_data && !f.data.data_path.empty()) fail("--mock-data and --data-path: give one data source");

  if (f.model.define_a_model() || !f.model_config.empty()) use_megatron_training_defaults(f);
  auto& o = f.options;
  if (f.given("--train-samples")) {
    if (f.given("--train-iters"))
      fail("--train-iters and --train-samples: give one (iteration- or sample-based training, as in Megatron)");
    if (!f.given("--lr-warmup-iters")) o.lr_warmup_iters = 0;  // the default run's warmup is in iterations
  }
  if (o.override_opt_param_scheduler && f.use_checkpoint_opt_param_scheduler)
    fail("--override-opt_param-scheduler and --use-checkpoint-opt_param-scheduler: give one");
  if (f.use_checkpoint_opt_param_scheduler && o.load.empty())
    fail("--use-checkpoint-opt_param-scheduler: applies to a resumed run; give its checkpoint with --load");
  if (f.ddp_bucket_size) o.grad_bucket_bytes = *f.ddp_bucket_size * static_cast<int64_t>(sizeof(float));
  return notes;
}

nlohmann::json data_spec_from_flags(const TrainFlags& f, int64_t data_parallel_size,
                                    const std::optional<std::filesystem::path>& tokenizer_folder) {
  if (f.data.data_path.empty()) {
    for (const char* flag : {"--split", "--eod-mask-loss", "--eod-token-id", "--data-format"})
      if (f.given(flag)) fail(flag, ": applies to --data-path");
  }
  if (f.mock_data) {
    if (!f.vocab_size) fail("--mock-data: give the vocabulary of its random tokens with --vocab-size");
    return {{"kind", "random"}, {"vocab_size", *f.vocab_size}};
  }
  if (f.data.data_path.empty())
    return {{"kind", "mqar"},
            {"vocab_size", train::MqarDefaults{}.vocab_size},
            {"num_kv_pairs", f.mqar_kv_pairs},
            {"seed", f.seed}};
  const auto& o = f.options;
  const int64_t global_batch = o.global_batch_size ? o.global_batch_size : o.micro_batch_size * data_parallel_size;
  DataSpecSettings settings{.seq_length = o.seq_length,
                            .train_samples = o.train_samples ? o.train_samples : o.train_iters * global_batch,
                            .seed = f.seed,
                            .vocab_size = f.vocab_size};
  if (f.tokenizer.is_null()) {
    if (f.vocab_size) settings.fallback_eod_token_id = *f.vocab_size - 1;
  } else if (f.tokenizer.given()) {
    settings.tokenizer = [&f] { return f.tokenizer.open(); };
  } else if (const auto type = tokenizer_folder ? text::tokenizer_type_in(*tokenizer_folder) : std::nullopt) {
    settings.tokenizer = [type, folder = *tokenizer_folder] { return text::open_tokenizer(*type, folder); };
  }
  auto spec = tools::data_spec_from_flags(f.data, settings);
  if (spec.value("kind", "") != "megatron" && f.tokenizer.is_null() && f.data.data_format == "text")
    fail("--tokenizer-type ", TokenizerFlags::kNull, ": the data must be token ids: give --data-format uint16 or uint32");
  return spec;
}

int64_t model_vocab_size(const TrainFlags& f, int64_t data_vocab_size) {
  const bool synthetic = f.data.data_path.empty() && !f.mock_data;
  const int64_t multiple = f.make_vocab_size_divisible_by.value_or(synthetic ? 1 : 128);
  const int64_t vocab = f.vocab_size.value_or(data_vocab_size);
  return (vocab + multiple - 1) / multiple * multiple;
}

}  // namespace strata::tools
