// Training-step throughput of strata on one dense decoder: the real trainer (bf16 autocast,
// AdamW, clipping) on random tokens. Prints one JSON line that bench/compare_train_step.py puts
// beside PyTorch's numbers for the same shapes.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "strata/model/build_model.h"
#include "strata/train/trainer.h"
#ifdef STRATA_CUDA
#include "kernel_profile.h"
#endif

int main(int argc, char** argv) {
  CLI::App app{"strata training-step benchmark"};
  strata::TransformerConfig c;
  c.hidden_size = 1024;
  c.num_layers = 12;
  c.num_attention_heads = 16;
  c.kv_channels = 64;
  c.ffn_hidden_size = 2816;
  c.vocab_size = 32768;
  c.layernorm_epsilon = 1e-6;
  // The Llama-style block PyTorch's side builds (where Megatron's defaults differ).
  c.position_embedding_type = strata::PositionEmbeddingType::Rope;
  c.normalization = strata::Normalization::RMSNorm;
  c.add_bias_linear = false;
  c.gated_linear_unit = true;
  c.activation_func = strata::Activation::SiLU;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.share_embeddings_and_output_weights = false;
  c.fp32_residual_connection = true;
  strata::train::TrainOptions o;
  o.seq_length = 2048;
  o.micro_batch_size = 8;
  o.train_iters = 30;
  o.lr_warmup_iters = 0;
  o.bf16 = true;
  o.progress = false;
  o.eval_iters = 1;
  int64_t warmup = 10;
  std::string device = "cuda", pattern;
  app.add_option("--hidden-size", c.hidden_size);
  app.add_option("--num-layers", c.num_layers, "attention+MLP layers");
  app.add_option("--num-attention-heads", c.num_attention_heads);
  app.add_option("--kv-channels", c.kv_channels);
  app.add_option("--ffn-hidden-size", c.ffn_hidden_size);
  app.add_option("--vocab-size", c.vocab_size);
  app.add_option("--hybrid-layer-pattern", pattern, "default: the GPT layer repeated --num-layers times");
  app.add_option("--seq-length", o.seq_length);
  app.add_option("--micro-batch-size", o.micro_batch_size);
  app.add_option("--steps", o.train_iters, "measured steps plus warmup");
  app.add_option("--warmup", warmup, "steps left out of the measurement");
  app.add_option("--device", device);
  bool recompute = false;
  app.add_flag("--recompute", recompute, "full recompute: each layer's activations rerun in backward");
  int64_t streams = 0;
  app.add_option("--hyper-connections", streams, "mHC with this many residual streams (0: plain residual)");
  app.add_option("--fp32-residual-connection", c.fp32_residual_connection,
                 "true (default): the residual stream stays float32 under bf16 autocast; false: bfloat16");
  bool profile = false;
  app.add_flag("--profile", profile, "also print to stderr the kernels of 3 more steps by GPU time (CUDA builds)");
  CLI11_PARSE(app, argc, argv);
  if (streams > 0) {
    c.enable_mhc_connections = true;
    c.mhc_num_residual_streams = streams;
  }
  if (recompute) c.recompute_granularity = "full";
  c.num_query_groups = c.num_attention_heads;
  if (!pattern.empty()) {
    c.hybrid_layer_pattern = pattern;
    c.num_layers = strata::parse_layer_pattern(pattern).num_canonical_layers();
  }
  o.device = at::Device(device);

  at::manual_seed(0);
  auto config = std::make_shared<const strata::TransformerConfig>(c);
  auto model = strata::build_language_model(config);
  int64_t params = 0, embedding = 0;
  for (const auto& [name, p] : model->canonical_state_dict()) {
    params += p.numel();
    if (name.rfind("embedding.", 0) == 0) embedding += p.numel();
  }
  strata::train::RandomTokenData data(c.vocab_size);
  auto result = strata::train::train(*model, data, o);

  std::vector<double> rates;
  for (size_t i = static_cast<size_t>(warmup); i < result.steps.size(); ++i)
    rates.push_back(result.steps[i].tokens_per_second);
  std::sort(rates.begin(), rates.end());
  const double median = rates.empty() ? 0.0 : rates[rates.size() / 2];
  nlohmann::json out = {{"impl", "strata"},
                        {"params", params},
                        {"non_embedding_params", params - embedding},
                        {"tokens_per_s", median},
                        {"final_loss", result.steps.back().loss}};
  std::printf("%s\n", out.dump().c_str());
#ifdef STRATA_CUDA
  if (profile) {
    std::fprintf(stderr, "# median step %.2f ms\n", 1e3 * o.micro_batch_size * o.seq_length / median);
    o.train_iters = 3;
    strata::bench::print_kernel_profile(stderr, "3 training steps and the final evaluation's forward",
                                        [&] { strata::train::train(*model, data, o); }, 40);
  }
#endif
  return 0;
}
