#include "train_flags.h"

#include <filesystem>

#include "flag_checks.h"
#include "strata/io/megatron_indexed.h"
#include "strata/train/megatron_blend.h"
#include "strata/model/layer_pattern.h"

namespace strata::tools {

void add_train_flags(CLI::App& cmd, TrainFlags& f) {
  f.command = &cmd;
  auto& o = f.options;
  cmd.option_defaults()->always_capture_default();
  const auto count = integer_at_least(0), positive = integer_at_least(1);
  const auto probability = real_in(0.0, 1.0, /*max_open=*/true);
  cmd.add_option("--train-iters", o.train_iters, "train up to this iteration (a resumed run continues to it)")
      ->check(positive);
  cmd.add_option("--micro-batch-size", o.micro_batch_size, "sequences per forward pass (per data-parallel rank)")
      ->check(positive);
  cmd.add_option("--global-batch-size", o.global_batch_size,
                 "sequences per step, accumulated over micro-batches (0: one micro-batch per data-parallel rank)")
      ->check(count);
  cmd.add_option("--seq-length", o.seq_length, "tokens per sequence")->check(integer_at_least(2));
  cmd.add_option("--lr", o.lr, "peak learning rate")->check(real_above(0.0));
  cmd.add_option("--min-lr", o.min_lr, "learning rate at the end of the cosine decay")->check(real_at_least(0.0));
  cmd.add_option("--lr-warmup-iters", o.lr_warmup_iters, "linear warmup steps")->check(count);
  cmd.add_option("--lr-decay-iters", o.lr_decay_iters, "cosine decay length (0: --train-iters)")->check(count);
  cmd.add_option("--weight-decay", o.adam.weight_decay, "AdamW weight decay (matrices only)")->check(real_at_least(0.0));
  cmd.add_option("--adam-beta1", o.adam.beta1, "AdamW decay rate of the gradient mean")->check(probability);
  cmd.add_option("--adam-beta2", o.adam.beta2, "AdamW decay rate of the squared-gradient mean")->check(probability);
  cmd.add_option("--adam-eps", o.adam.eps, "AdamW denominator floor")->check(real_above(0.0));
  cmd.add_option("--clip-grad", o.clip_grad, "global gradient-norm clip (0: off)")->check(real_at_least(0.0));
  cmd.add_flag("--bf16", o.bf16, "bfloat16 autocast (CUDA)");
  cmd.add_option("--fp32-residual-connection", f.fp32_residual_connection,
                 "true (default): under --bf16 the residual stream stays float32; false: bfloat16");
  cmd.add_option("--recompute-granularity", f.recompute_granularity, "full: recompute layer activations in backward")
      ->check(CLI::IsMember({"full"}));
  cmd.add_option("--save", o.save, "checkpoint folder (refused when it holds another run)");
  cmd.add_option("--load", o.load,
                 "resume the run in this checkpoint folder: flags left out are taken from it, flags that contradict "
                 "it are refused");
  cmd.add_flag("--finetune", o.finetune, "take only the weights of --load: a new run from iteration 0, any data");
  cmd.add_flag("--override-opt_param-scheduler", o.override_opt_param_scheduler,
               "a resumed run takes --lr, --min-lr, warmup, decay, AdamW and clip flags from the command line");
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
  cmd.add_option("--model-config", f.model_config, "model config JSON (Megatron TransformerConfig field names)");
  cmd.add_option("--data-path", f.data_path,
                 "training data: a text or token file, or Megatron indexed datasets \"[W1] PREFIX1 [W2] PREFIX2 ...\" "
                 "(PREFIX.bin/.idx; default: synthetic associative recall)");
  cmd.add_option("--data-format", f.data_format, "text (bytes as tokens), uint16 or uint32 (token files)")
      ->check(CLI::IsMember({"text", "uint16", "uint32"}));
  cmd.add_option("--split", f.split, "train,valid,test shares of each indexed dataset's documents");
  cmd.add_flag("--eod-mask-loss", f.eod_mask_loss, "indexed data: no loss on the prediction made at an EOD token");
  cmd.add_option("--eod-token-id", f.eod_token_id,
                 "the end-of-document token's id (for --eod-mask-loss; default: the tokenizer's)")
      ->check(count);
  add_tokenizer_flags(cmd, f.tokenizer);
  cmd.add_option("--mqar-kv-pairs", f.mqar_kv_pairs, "key-value pairs per recall sequence")->check(positive);
  cmd.add_option("--hybrid-layer-pattern", f.hybrid_layer_pattern,
                 "layer pattern, e.g. \"[*-][G-]\" (docs/layer_patterns.md)");
  cmd.add_option("--num-layers", f.num_layers,
                 "layers: attention+MLP layers without a pattern (a pattern's own count wins, with a warning)")
      ->check(positive);
  add_layer_allocation_flags(cmd, f.layer_allocation);
  cmd.add_option("--hidden-size", f.hidden_size, "model width")->check(positive);
  cmd.add_option("--ffn-hidden-size", f.ffn_hidden_size, "MLP inner width")->check(positive);
  cmd.add_option("--num-attention-heads", f.num_attention_heads, "query heads")->check(positive);
  cmd.add_option("--num-query-groups", f.num_query_groups, "key/value heads (GQA)")->check(positive);
  cmd.add_option("--kv-channels", f.kv_channels, "per-head dimension")->check(positive);
  cmd.add_option("--vocab-size", f.vocab_size, "vocabulary (token files: the tokenizer's)")->check(positive);
  cmd.add_flag("--enable-hyper-connections", f.enable_hyper_connections,
               "mHC residual streams on every layer (docs/hyper_connections.md)");
  cmd.add_option("--num-residual-streams", f.num_residual_streams, "mHC streams n")->check(positive);
  cmd.add_option("--mhc-sinkhorn-iterations", f.mhc_sinkhorn_iterations, "Sinkhorn-Knopp iterations of mHC's map")
      ->check(positive);
  cmd.add_option("--mhc-eps", f.mhc_eps, "mHC's floor of the pre map and Sinkhorn's denominators")
      ->check(real_at_least(0.0));
  cmd.add_option("--mhc-init-gating-factor", f.mhc_init_gating_factor, "initial scale of mHC's maps")
      ->check(finite_real());
  cmd.add_option("--mhc-recompute-num-layers", f.mhc_recompute_num_layers,
                 "recompute the mHC maps of the first N layers in backward")
      ->check(count);
  cmd.add_option("--mtp-num-layers", f.mtp_num_layers,
                 "multi-token prediction depths (a hybrid pattern gives them after '/')")
      ->check(count);
  cmd.add_option("--mtp-loss-scaling-factor", f.mtp_loss_scaling_factor,
                 "weight of the mean MTP loss in the training loss (default 0.1)")
      ->check(real_at_least(0.0));
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
  cmd.add_flag("--sequence-parallel", f.layout.sequence_parallel, "split norms and residuals along the sequence over tp");
  cmd.add_option("--distributed-backend", f.distributed_backend, "gloo (CPU) or nccl (CUDA)")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  cmd.add_option("--distributed-timeout-minutes", f.distributed_timeout_minutes,
                 "how long the rendezvous and each collective may wait for another rank")
      ->check(real_above(0.0));
}

namespace {

bool exists(const std::string& path) {
  std::error_code error;
  return std::filesystem::exists(path, error);
}

// Whether a --data-path word names Megatron indexed datasets rather than a file, by what exists;
// both existing is refused unless --data-format says the file is meant.
bool names_indexed_dataset(const TrainFlags& f, const std::string& path) {
  const bool bin = exists(io::megatron_bin_path(path)), idx = exists(io::megatron_idx_path(path));
  if (exists(path)) {
    if (bin && idx && !f.given("--data-format"))
      fail("--data-path ", path, ": both the file ", path, " and the indexed dataset ", path, ".bin/.idx exist; give ",
           "--data-format text, uint16 or uint32 to read the file, or move one of them");
    return false;
  }
  if (bin != idx)
    fail("--data-path ", path, ": ", path, bin ? ".bin" : ".idx", " exists but ", path, bin ? ".idx" : ".bin",
         " does not; an indexed dataset is the pair (Megatron's tools/preprocess_data.py writes both)");
  if (!bin) fail("--data-path ", path, ": no such file, and no indexed dataset ", path, ".bin/.idx");
  return true;
}

nlohmann::json indexed_data_spec(const TrainFlags& f, int64_t data_parallel_size) {
  const auto blend = train::parse_blend(f.data_path);
  for (const auto& prefix : blend.prefixes)
    if (!names_indexed_dataset(f, prefix))
      fail("--data-path ", prefix, ": a file; several --data-path words name Megatron indexed datasets (PREFIX.bin/.idx)");
  if (f.seed > 0xffffffffull) fail("--seed ", f.seed, ": Megatron's datasets take seeds below 2^32");
  // The tokenizer, when given, supplies what the flags leave out: the vocabulary and the EOD id.
  std::optional<int64_t> vocab_size = f.vocab_size, eod_token_id = f.eod_token_id;
  if (f.tokenizer.given()) {
    const auto tokenizer = f.tokenizer.open();
    if (!vocab_size) vocab_size = tokenizer->vocab_size();
    if (!eod_token_id) eod_token_id = tokenizer->eod_id();
  }
  const auto& o = f.options;
  const int64_t global_batch = o.global_batch_size ? o.global_batch_size : o.micro_batch_size * data_parallel_size;
  auto datasets = nlohmann::json::array();
  for (size_t d = 0; d < blend.prefixes.size(); ++d) {
    nlohmann::json dataset = {{"path", blend.prefixes[d]}};
    if (blend.weights) dataset["weight"] = (*blend.weights)[d];
    datasets.push_back(dataset);
  }
  return {{"kind", "megatron"},
          {"datasets", datasets},
          {"split", f.split},
          {"seq_length", o.seq_length},
          {"train_samples", o.train_iters * global_batch},
          {"seed", f.seed},
          {"vocab_size", vocab_size.value_or(0)},  // none given: refused when opened
          {"eod_mask_loss", f.eod_mask_loss},
          {"eod_token_id", eod_token_id ? nlohmann::json(*eod_token_id) : nlohmann::json()}};
}

}  // namespace

nlohmann::json data_spec_from_flags(const TrainFlags& f, int64_t data_parallel_size) {
  if (f.data_path.empty())
    return {{"kind", "mqar"},
            {"vocab_size", train::MqarDefaults{}.vocab_size},
            {"num_kv_pairs", f.mqar_kv_pairs},
            {"seed", f.seed}};
  if (f.data_path.size() > 1 || names_indexed_dataset(f, f.data_path[0])) return indexed_data_spec(f, data_parallel_size);
  for (const char* flag : {"--split", "--eod-mask-loss", "--eod-token-id"})
    if (f.given(flag))
      fail(flag, ": applies to Megatron indexed datasets; --data-path ", f.data_path[0],
           " is a file (text and token files hold out their last 5 %)");
  nlohmann::json spec = {{"kind", f.data_format}, {"path", f.data_path[0]}};
  if (f.data_format != "text") {
    if (!f.vocab_size) fail("--data-format ", f.data_format, ": give the tokenizer's --vocab-size");
    spec["vocab_size"] = *f.vocab_size;
  }
  return spec;
}

TransformerConfig apply_model_flags(const TrainFlags& f, TransformerConfig c) {
  if (f.hybrid_layer_pattern) c.hybrid_layer_pattern = *f.hybrid_layer_pattern;
  if (f.num_layers) c.num_layers = *f.num_layers;
  if (f.hybrid_layer_pattern && !f.num_layers)  // a pattern names its own layer count
    c.num_layers = parse_layer_pattern(c.hybrid_layer_pattern).num_canonical_layers();
  apply_layer_allocation_flags(f.layer_allocation, f.hybrid_layer_pattern.has_value(), c);
  if (f.hidden_size) c.hidden_size = *f.hidden_size;
  if (f.ffn_hidden_size) c.ffn_hidden_size = *f.ffn_hidden_size;
  if (f.num_attention_heads) c.num_attention_heads = *f.num_attention_heads;
  if (f.num_query_groups) c.num_query_groups = *f.num_query_groups;
  if (f.kv_channels) c.kv_channels = *f.kv_channels;
  if (f.vocab_size) c.vocab_size = *f.vocab_size;
  if (f.enable_hyper_connections) c.enable_hyper_connections = true;
  if (f.num_residual_streams) c.num_residual_streams = *f.num_residual_streams;
  if (f.mhc_sinkhorn_iterations) c.mhc_sinkhorn_iterations = *f.mhc_sinkhorn_iterations;
  if (f.mhc_eps) c.mhc_eps = *f.mhc_eps;
  if (f.mhc_init_gating_factor) c.mhc_init_gating_factor = *f.mhc_init_gating_factor;
  if (f.mhc_recompute_num_layers) c.mhc_recompute_num_layers = *f.mhc_recompute_num_layers;
  if (f.fp32_residual_connection) c.fp32_residual_connection = *f.fp32_residual_connection;
  if (f.mtp_num_layers) c.mtp_num_layers = *f.mtp_num_layers;
  if (f.mtp_loss_scaling_factor) c.mtp_loss_scaling_factor = *f.mtp_loss_scaling_factor;
  return c;
}

}  // namespace strata::tools
