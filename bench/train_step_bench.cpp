// Training-step throughput of strata on one dense decoder: the real trainer (bf16 autocast,
// AdamW, clipping) on random tokens. Prints one JSON line that bench/compare_train_step.py puts
// beside PyTorch's numbers for the same shapes.
//
// With --hyper-connections N --compare-plain it measures the plain-residual model and then the
// mHC one in the same process and prints mHC's overhead beside its memory-bandwidth bound
// (docs/performance.md, "mHC bound, refined"): a perfectly fused half still touches the streams
// S = tokens * n * hidden * stream bytes five times (forward: read the old, write the new;
// backward: read the incoming gradient and the streams, write the outgoing gradient) and moves
// four sublayer-sized tensors P = tokens * hidden * residual bytes (branch and next input, their
// gradients), while the plain residual it replaces moves five P: 5 S - P net per half, at
// --bandwidth bytes/s, over the plain step's time.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "strata/model/build_model.h"
#include "strata/train/trainer.h"
#ifdef STRATA_CUDA
#include "kernel_profile.h"
#endif

namespace {

struct Measured {
  int64_t params = 0, embedding = 0, halves = 0;
  double tokens_per_s = 0.0, final_loss = 0.0;
};

// Median tokens/s after `warmup` steps of training a freshly built model of `c`.
Measured measure(const strata::TransformerConfig& c, const strata::train::TrainOptions& o, int64_t warmup,
                 bool fused_hyper_connections, bool profile) {
  at::manual_seed(0);
  auto config = std::make_shared<const strata::TransformerConfig>(c);
  auto model = strata::build_language_model(config);
  model->decoder().set_fused_hyper_connections(fused_hyper_connections);
  Measured m;
  for (const auto& [name, p] : model->canonical_state_dict()) {
    m.params += p.numel();
    if (name.rfind("embedding.", 0) == 0) m.embedding += p.numel();
  }
  for (size_t i = 0; i < model->decoder().num_layers(); ++i)
    m.halves += static_cast<int64_t>(model->decoder().layer(i).residuals().size());
  strata::train::RandomTokenData data(c.vocab_size);
  auto result = strata::train::train(*model, data, o);
  std::vector<double> rates;
  for (size_t i = static_cast<size_t>(warmup); i < result.steps.size(); ++i)
    rates.push_back(result.steps[i].tokens_per_second);
  std::sort(rates.begin(), rates.end());
  m.tokens_per_s = rates.empty() ? 0.0 : rates[rates.size() / 2];
  m.final_loss = result.steps.back().loss;
#ifdef STRATA_CUDA
  if (profile) {
    auto again = o;
    std::fprintf(stderr, "# median step %.2f ms\n", 1e3 * o.micro_batch_size * o.seq_length / m.tokens_per_s);
    again.train_iters = 3;
    strata::bench::print_kernel_profile(stderr, "3 training steps and the final evaluation's forward",
                                        [&] { strata::train::train(*model, data, again); }, 40);
  }
#else
  (void)profile;
#endif
  return m;
}

}  // namespace

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
  app.add_option("--bf16", o.bf16, "true (default): bfloat16 autocast (CUDA only)");
  bool recompute = false;
  app.add_flag("--recompute", recompute, "full recompute: each layer's activations rerun in backward");
  int64_t streams = 0;
  app.add_option("--hyper-connections", streams, "mHC with this many residual streams (0: plain residual)");
  app.add_option("--fp32-residual-connection", c.fp32_residual_connection,
                 "true (default): the residual stream stays float32 under bf16 autocast; false: bfloat16");
  bool compare_plain = false;
  app.add_flag("--compare-plain", compare_plain,
               "with --hyper-connections: measure the plain residual too, print mHC's overhead and its bound");
  bool unfused = false;
  app.add_flag("--unfused-hyper-connections", unfused,
               "run each mHC half's combine, maps and collapse as separate ops (the path before fused boundaries)");
  double bandwidth = 3.0e12;
  app.add_option("--bandwidth", bandwidth, "memory bandwidth in bytes/s for the mHC bound (3.0e12: an H100's streams)");
  app.add_option("--num-moe-experts", c.num_moe_experts, "experts of the pattern's E layers");
  app.add_option("--moe-router-topk", c.moe_router_topk);
  app.add_option("--moe-ffn-hidden-size", c.moe_ffn_hidden_size);
  bool profile = false;
  app.add_flag("--profile", profile, "also print to stderr the kernels of 3 more steps by GPU time, and with --compare-plain the plain model's (CUDA builds)");
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

  const auto mhc = measure(c, o, warmup, !unfused, profile);
  nlohmann::json out = {{"impl", "strata"},
                        {"params", mhc.params},
                        {"non_embedding_params", mhc.params - mhc.embedding},
                        {"tokens_per_s", mhc.tokens_per_s},
                        {"final_loss", mhc.final_loss}};
  if (compare_plain && streams > 0) {
    auto plain_config = c;
    plain_config.enable_mhc_connections = false;
    plain_config.mhc_num_residual_streams = strata::TransformerConfig{}.mhc_num_residual_streams;
    std::erase(plain_config.recompute_modules, std::string("mhc"));
    const auto plain = measure(plain_config, o, warmup, true, profile);
    const double tokens = static_cast<double>(o.micro_batch_size * o.seq_length);
    // Streams in the residual's dtype: float32 with fp32_residual_connection, else bfloat16.
    const double residual_bytes = (c.fp32_residual_connection || !o.bf16) ? 4.0 : 2.0;
    const double s_bytes = tokens * static_cast<double>(streams * c.hidden_size) * residual_bytes;
    const double p_bytes = tokens * static_cast<double>(c.hidden_size) * residual_bytes;
    const double bound_s = static_cast<double>(mhc.halves) * (5 * s_bytes - p_bytes) / bandwidth;
    const double plain_step_s = tokens / plain.tokens_per_s, mhc_step_s = tokens / mhc.tokens_per_s;
    out["plain_tokens_per_s"] = plain.tokens_per_s;
    out["plain_params"] = plain.params;
    out["mhc_halves"] = mhc.halves;
    out["fused_boundaries"] = !unfused;
    out["stream_bytes"] = residual_bytes;
    out["plain_step_ms"] = 1e3 * plain_step_s;
    out["mhc_step_ms"] = 1e3 * mhc_step_s;
    out["overhead"] = mhc_step_s / plain_step_s - 1.0;
    out["bound_ms"] = 1e3 * bound_s;
    out["bound_overhead"] = bound_s / plain_step_s;
    std::fprintf(stderr,
                 "# mHC n = %lld (%s streams, %s boundaries), %lld halves: plain %.2f ms, mHC %.2f ms a step: "
                 "overhead %.1f%%; bandwidth bound %.2f ms (%.1f%%) at %.2f TB/s\n",
                 static_cast<long long>(streams), residual_bytes == 4.0 ? "float32" : "bfloat16",
                 unfused ? "unfused" : "fused", static_cast<long long>(mhc.halves), 1e3 * plain_step_s, 1e3 * mhc_step_s,
                 100.0 * (mhc_step_s / plain_step_s - 1.0), 1e3 * bound_s, 100.0 * bound_s / plain_step_s,
                 bandwidth / 1e12);
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
