// strata train: Megatron-style flags over a model config (JSON) and a data source.
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/model/build_model.h"
#include "strata/parallel/parallel_model.h"
#include "strata/parallel/run.h"
#include "strata/train/default_run.h"
#include "strata/train/train_checkpoint.h"
#include "strata/train/trainer.h"

namespace strata::tools {

namespace {

struct TrainFlags {
  train::TrainOptions options;
  std::string device = "cpu";
  std::string model_config;
  std::string data_path, data_format = "text";
  int64_t mqar_kv_pairs = train::MqarDefaults{}.num_kv_pairs;
  uint64_t seed = 1234;
  std::string recompute_granularity;
  // Model overrides, applied on top of the config file (or the default model).
  std::optional<std::string> hybrid_layer_pattern;
  std::optional<int64_t> num_layers, hidden_size, ffn_hidden_size, num_attention_heads, num_query_groups,
      kv_channels, vocab_size;
  bool enable_hyper_connections = false;  // a flag can only turn mHC on; a config file can turn it off
  std::optional<int64_t> num_residual_streams, mhc_sinkhorn_iterations, mhc_recompute_num_layers;
  std::optional<double> mhc_eps, mhc_init_gating_factor;
  std::optional<bool> fp32_residual_connection;
  // Parallelism (Megatron's flag names); docs/parallelism.md.
  int nproc = 1;
  parallel::ParallelLayout layout;
  std::string distributed_backend = "gloo";
  double distributed_timeout_minutes = 10.0;
};

nlohmann::json read_json_file(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) fail(flag, " ", path, ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    fail(flag, " ", path, ": not valid JSON (", e.what(), ")");
  }
}

std::unique_ptr<train::DataSource> make_data(const TrainFlags& f) {
  if (f.data_path.empty())
    return std::make_unique<train::MqarData>(train::MqarDefaults{}.vocab_size, f.mqar_kv_pairs, f.seed);
  if (f.data_format == "text") return std::make_unique<train::ByteTextData>(f.data_path);
  if (f.data_format == "uint16" || f.data_format == "uint32") {
    if (!f.vocab_size) fail("--data-format ", f.data_format, ": give the tokenizer's --vocab-size");
    return std::make_unique<train::TokenFileData>(f.data_path, f.data_format == "uint16" ? 2 : 4, *f.vocab_size);
  }
  fail("--data-format '", f.data_format, "': expected text, uint16 or uint32");
}

TransformerConfig make_config(const TrainFlags& f, const train::DataSource& data) {
  TransformerConfig c = train::default_model_config();
  c.vocab_size = data.vocab_size();
  if (!f.model_config.empty()) {
    c = config_from_json(read_json_file(f.model_config, "--model-config"), f.model_config, c);
  } else if (!f.options.load.empty() && train::latest_iteration(f.options.load)) {
    c = config_from_json(train::checkpoint_config(f.options.load), f.options.load);
  }
  if (f.hybrid_layer_pattern) c.hybrid_layer_pattern = *f.hybrid_layer_pattern;
  if (f.num_layers) c.num_layers = *f.num_layers;
  if (f.hybrid_layer_pattern && !f.num_layers)  // a pattern names its own layer count
    c.num_layers = parse_layer_pattern(c.hybrid_layer_pattern).num_canonical_layers();
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
  return c;
}

}  // namespace

Subcommand add_train(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  auto& o = f->options;
  auto* cmd = app.add_subcommand(
      "train", "train a model (with no data or model flags: a small hybrid model on associative recall)");
  cmd->add_option("--train-iters", o.train_iters, "optimizer steps");
  cmd->add_option("--micro-batch-size", o.micro_batch_size, "sequences per forward pass");
  cmd->add_option("--global-batch-size", o.global_batch_size, "sequences per step (gradient accumulation)");
  cmd->add_option("--seq-length", o.seq_length, "tokens per sequence");
  cmd->add_option("--lr", o.lr, "peak learning rate");
  cmd->add_option("--min-lr", o.min_lr, "learning rate at the end of the cosine decay");
  cmd->add_option("--lr-warmup-iters", o.lr_warmup_iters, "linear warmup steps");
  cmd->add_option("--lr-decay-iters", o.lr_decay_iters, "cosine decay length (default: --train-iters)");
  cmd->add_option("--weight-decay", o.adam.weight_decay, "AdamW weight decay (matrices only)");
  cmd->add_option("--adam-beta1", o.adam.beta1);
  cmd->add_option("--adam-beta2", o.adam.beta2);
  cmd->add_option("--adam-eps", o.adam.eps);
  cmd->add_option("--clip-grad", o.clip_grad, "global gradient-norm clip (0: off)");
  cmd->add_flag("--bf16", o.bf16, "bfloat16 autocast (CUDA)");
  cmd->add_option("--fp32-residual-connection", f->fp32_residual_connection,
                  "true (default): under --bf16 the residual stream stays float32; false: bfloat16");
  cmd->add_option("--recompute-granularity", f->recompute_granularity, "full: recompute layer activations in backward")
      ->check(CLI::IsMember({"full"}));
  cmd->add_option("--save", o.save, "checkpoint folder");
  cmd->add_option("--load", o.load, "resume from this checkpoint folder");
  cmd->add_option("--save-interval", o.save_interval, "save every N steps (and at the end)");
  cmd->add_option("--metrics", o.metrics, "append one JSON object per logged step to this file");
  cmd->add_option("--log-interval", o.log_interval, "log every N steps");
  cmd->add_option("--eval-interval", o.eval_interval, "evaluate on held-out data every N steps (and at the end)");
  cmd->add_option("--eval-iters", o.eval_iters, "held-out batches per evaluation");
  cmd->add_option("--seed", f->seed, "seed for initialisation and synthetic data");
  cmd->add_option("--device", f->device, "cpu or cuda");
  cmd->add_option("--model-config", f->model_config, "model config JSON (Megatron TransformerConfig field names)");
  cmd->add_option("--data-path", f->data_path, "training data (default: synthetic associative recall)");
  cmd->add_option("--data-format", f->data_format, "text (bytes as tokens), uint16 or uint32 (token files)")
      ->check(CLI::IsMember({"text", "uint16", "uint32"}));
  cmd->add_option("--mqar-kv-pairs", f->mqar_kv_pairs, "key-value pairs per recall sequence");
  cmd->add_option("--hybrid-layer-pattern", f->hybrid_layer_pattern, "layer pattern, e.g. \"[*-][G-]\" (docs/layer_patterns.md)");
  cmd->add_option("--num-layers", f->num_layers);
  cmd->add_option("--hidden-size", f->hidden_size);
  cmd->add_option("--ffn-hidden-size", f->ffn_hidden_size);
  cmd->add_option("--num-attention-heads", f->num_attention_heads);
  cmd->add_option("--num-query-groups", f->num_query_groups);
  cmd->add_option("--kv-channels", f->kv_channels);
  cmd->add_option("--vocab-size", f->vocab_size);
  cmd->add_flag("--enable-hyper-connections", f->enable_hyper_connections,
                "mHC residual streams on every layer (docs/hyper_connections.md)");
  cmd->add_option("--num-residual-streams", f->num_residual_streams, "mHC streams n");
  cmd->add_option("--mhc-sinkhorn-iterations", f->mhc_sinkhorn_iterations);
  cmd->add_option("--mhc-eps", f->mhc_eps);
  cmd->add_option("--mhc-init-gating-factor", f->mhc_init_gating_factor);
  cmd->add_option("--mhc-recompute-num-layers", f->mhc_recompute_num_layers,
                  "recompute the mHC maps of the first N layers in backward");
  cmd->add_option("--nproc", f->nproc, "start this many ranks on this machine (a parallel run over c10d)");
  cmd->add_option("--tensor-model-parallel-size", f->layout.tensor_parallel, "ranks that split each layer's weights");
  cmd->add_option("--pipeline-model-parallel-size", f->layout.pipeline_parallel,
                  "pipeline stages (the pattern's '|' stages, or an even split)");
  cmd->add_option("--expert-model-parallel-size", f->layout.expert_parallel, "ranks that split each MoE layer's experts");
  cmd->add_flag("--sequence-parallel", f->layout.sequence_parallel, "split norms and residuals along the sequence over tp");
  cmd->add_option("--distributed-backend", f->distributed_backend, "gloo (CPU) or nccl (CUDA)")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  cmd->add_option("--distributed-timeout-minutes", f->distributed_timeout_minutes,
                  "how long the rendezvous and each collective may wait for another rank");
  return {cmd, [f] {
            const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(f->distributed_timeout_minutes * 60e3));
            if (parallel::should_launch(f->nproc)) return parallel::launch_this_command(f->nproc, timeout);
            auto run = parallel::join_parallel_run(f->layout, parallel::parse_comm_backend(f->distributed_backend), timeout);
            if (run && !run->logs()) {
              f->options.progress = false;
              f->options.metrics.clear();
            }
            f->options.device = parse_device(f->device);
            if (run && f->options.device.is_cuda()) f->options.device = at::Device(at::kCUDA, run->local_rank);
            f->options.recompute = f->recompute_granularity == "full";
            at::manual_seed(f->seed);
            auto data = make_data(*f);
            auto config = std::make_shared<const TransformerConfig>(make_config(*f, *data));
            auto model = run ? parallel::build_parallel_language_model(config, run->groups) : build_language_model(config);
            const bool logs = !run || run->logs();
            int64_t parameters = 0;
            for (const auto& [name, p] : model->canonical_state_dict()) parameters += p.numel();
            if (logs)
              std::printf("model: pattern %s, %lld parameters%s\ndata: %s\n",
                          resolve_layer_pattern(*config).layers_text().c_str(), static_cast<long long>(parameters),
                          run ? cat(" on rank 0 of ", run->world->size()).c_str() : "", data->describe().c_str());
            auto result = train::train(*model, *data, f->options);
            if (!logs) return 0;
            if (!result.steps.empty()) {
              const auto& first = result.steps.front();
              const auto& last = result.steps.back();
              std::printf("train: step %lld loss %.4f acc %.3f -> step %lld loss %.4f acc %.3f\n",
                          static_cast<long long>(first.step), first.loss, first.accuracy,
                          static_cast<long long>(last.step), last.loss, last.accuracy);
            }
            if (!result.evals.empty())
              std::printf("held-out: loss %.4f accuracy %.3f\n", result.evals.back().loss, result.evals.back().accuracy);
            if (!f->options.save.empty()) std::printf("saved to %s\n", f->options.save.c_str());
            return 0;
          }};
}

}  // namespace strata::tools
