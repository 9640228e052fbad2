#include "train_flags.h"

#include "flag_checks.h"
#include "megatron_flags.h"
#include "strata/core/error.h"
#include "strata/core/parse_number.h"

namespace strata::tools {

namespace {

constexpr const char* kNullTokenizer = "NullTokenizer";

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
  cmd.add_option("--eval-iters", o.eval_iters, "held-out batches per evaluation (0: no evaluation)")->check(count);
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

void add_data_flags(CLI::App& cmd, TrainFlags& f) {
  const auto positive = integer_at_least(1);
  cmd.add_option("--data-path", f.data_path, "training data (default: synthetic associative recall)");
  cmd.add_option("--data-format", f.data_format, "text (bytes as tokens), uint16 or uint32 (token files)")
      ->check(CLI::IsMember({"text", "uint16", "uint32"}));
  cmd.add_option("--split", f.split,
                 "train,validation,test weights of --data-path, in file order (default: the last 5% held out)");
  cmd.add_flag("--mock-data", f.mock_data, "random tokens of --vocab-size instead of --data-path");
  cmd.add_option_function<int64_t>(
         "--vocab-size", [&f](const int64_t& v) { f.vocab_size = v; }, "vocabulary (token files: the tokenizer's)")
      ->check(positive);
  cmd.add_option_function<int64_t>(
         "--make-vocab-size-divisible-by", [&f](const int64_t& v) { f.make_vocab_size_divisible_by = v; },
         "pad the model's vocabulary to a multiple of this (default 128; the synthetic task: 1)")
      ->check(positive);
  cmd.add_option("--tokenizer-type", "NullTokenizer: the data are token ids already (token files)");
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

// Megatron's --split "train,valid,test" (or with '/'): the weights, normalised.
std::vector<double> split_fractions(const std::string& text) {
  std::vector<double> weights;
  size_t start = 0;
  while (start <= text.size()) {
    const auto end = text.find_first_of(",/", start);
    const auto part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    weights.push_back(parse_finite_double(part, cat("--split '", text, "' weight")));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (weights.size() > 3) fail("--split '", text, "': expected at most 3 weights (train, validation, test)");
  weights.resize(3, 0.0);
  double sum = 0.0;
  for (auto w : weights) {
    if (w < 0.0) fail("--split '", text, "': weight ", w, " is negative");
    sum += w;
  }
  if (!(weights[0] > 0.0)) fail("--split '", text, "': expected a positive training weight");
  for (auto& w : weights) w /= sum;
  return weights;
}

}  // namespace

void add_train_flags(CLI::App& cmd, TrainFlags& f) {
  f.command = &cmd;
  cmd.option_defaults()->always_capture_default();
  // As in Megatron (argparse), a flag given twice takes its last value.
  cmd.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add_schedule_flags(cmd, f.options);
  add_run_flags(cmd, f);
  add_data_flags(cmd, f);
  add_model_flags(cmd, f.model);
  add_parallel_flags(cmd, f);
  add_megatron_flags(cmd);
}

std::vector<std::string> settle_train_flags(TrainFlags& f) {
  auto notes = megatron_flag_notes(*f.command);
  if (f.given("--tokenizer-type")) {
    const auto tokenizer = f.command->get_option("--tokenizer-type")->as<std::string>();
    if (tokenizer != kNullTokenizer)
      fail("--tokenizer-type ", tokenizer, ": strata has no tokenizers; give text (one token per byte) or a ",
           "pre-tokenised token file (--data-format uint16 or uint32 with --vocab-size, i.e. --tokenizer-type ",
           kNullTokenizer, ")");
    if (f.data_format == "text" && !f.mock_data)
      fail("--tokenizer-type ", kNullTokenizer, ": the data must be token ids: give --data-format uint16 or uint32");
  }
  if (f.mock_data && !f.data_path.empty()) fail("--mock-data and --data-path: give one data source");
  if (!f.split.empty() && f.data_path.empty()) fail("--split ", f.split, ": applies to --data-path");

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

nlohmann::json data_spec_from_flags(const TrainFlags& f) {
  if (f.mock_data) {
    if (!f.vocab_size) fail("--mock-data: give the vocabulary of its random tokens with --vocab-size");
    return {{"kind", "random"}, {"vocab_size", *f.vocab_size}};
  }
  if (f.data_path.empty())
    return {{"kind", "mqar"},
            {"vocab_size", train::MqarDefaults{}.vocab_size},
            {"num_kv_pairs", f.mqar_kv_pairs},
            {"seed", f.seed}};
  nlohmann::json spec = {{"kind", f.data_format}, {"path", f.data_path}};
  if (f.data_format != "text") {
    if (!f.vocab_size) fail("--data-format ", f.data_format, ": give the tokenizer's --vocab-size");
    spec["vocab_size"] = *f.vocab_size;
  }
  if (!f.split.empty()) {
    const auto fractions = split_fractions(f.split);
    spec["held_out_fraction"] = fractions[1];
    if (fractions[2] > 0.0) spec["test_fraction"] = fractions[2];
  }
  return spec;
}

int64_t model_vocab_size(const TrainFlags& f, int64_t data_vocab_size) {
  const bool synthetic = f.data_path.empty() && !f.mock_data;
  const int64_t multiple = f.make_vocab_size_divisible_by.value_or(synthetic ? 1 : 128);
  const int64_t vocab = f.vocab_size.value_or(data_vocab_size);
  return (vocab + multiple - 1) / multiple * multiple;
}

}  // namespace strata::tools
