// Gated DeltaNet fwd+bwd throughput: the whole strata layer and its chunked delta rule alone,
// bf16 autocast on CUDA. Prints one JSON line per measurement for bench/compare_gdn.py.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <functional>

#include "cuda_timing.h"
#include "kernel_profile.h"
#include "strata/backends/local_backend.h"
#include "strata/core/compat.h"
#include "strata/layers/gated_delta_net.h"
#include "strata/layers/delta_rule_chunk_states.h"
#include "strata/layers/gated_delta_rule.h"

int main(int argc, char** argv) {
  CLI::App app{"strata Gated DeltaNet benchmark"};
  strata::TransformerConfig c;
  c.hidden_size = 2048;
  c.linear_num_key_heads = 16;
  c.linear_num_value_heads = 32;
  c.linear_key_head_dim = 128;
  c.linear_value_head_dim = 128;
  c.linear_conv_kernel_dim = 4;
  c.layernorm_epsilon = 1e-6;
  int64_t batch = 1, seq = 4096;
  int warmup = 3, iters = 10;
  app.add_option("--hidden-size", c.hidden_size);
  app.add_option("--seq-length", seq);
  app.add_option("--batch", batch);
  app.add_option("--chunk-size", c.linear_chunk_size);
  app.add_option("--iters", iters);
  bool profile = false;
  app.add_flag("--profile", profile, "also print to stderr the kernels of one layer and one rule fwd+bwd by GPU time");
  CLI11_PARSE(app, argc, argv);
  const auto device = at::Device(at::kCUDA);

  auto config = std::make_shared<const strata::TransformerConfig>(c);
  auto layer = std::make_shared<strata::GatedDeltaNet>(strata::LayerArgs{.config = config},
                                                       strata::gated_delta_net_submodules(strata::LocalBackend{}));
  layer->to(device);
  auto hidden = at::randn({batch, seq, c.hidden_size}, at::TensorOptions().device(device)).requires_grad_(true);
  // Two ways to time fwd+bwd. As a training step sees it: the gradients set to none first (as the
  // trainer's zero_grad does) and a given gradient of the output (what the layers above hand back).
  // And as earlier sessions timed it: a float32 loss (cast, square, mean) and the gradients summed
  // into those of the step before, which adds stream-sized elementwise passes to both sides.
  const auto layer_forward = [&] {
    strata::ForwardContext ctx;
    strata::compat::CudaAutocast autocast(at::kBFloat16);
    return layer->forward(hidden, ctx).output;
  };
  const auto d_layer = at::randn_like(layer_forward().detach()) / std::sqrt(static_cast<double>(hidden.numel()));
  const auto layer_step = [&] {
    for (auto& p : layer->parameters()) p.mutable_grad() = at::Tensor();
    hidden.mutable_grad() = at::Tensor();
    layer_forward().backward(d_layer);
  };
  const double layer_step_ms = strata::bench::median_ms(layer_step, warmup, iters);
  const double layer_ms =
      strata::bench::median_ms([&] { layer_forward().to(at::kFloat).square().mean().backward(); }, warmup, iters);

  // The rule alone at the layer's shapes: q and k with the key heads (each read by H / Hk value
  // heads), as flash-linear-attention's callers hand them over.
  const auto H = c.linear_num_value_heads, Hk = c.linear_num_key_heads, Dk = c.linear_key_head_dim,
             Dv = c.linear_value_head_dim;
  auto bf16 = at::TensorOptions().device(device).dtype(at::kBFloat16);
  auto unit = [&](const at::Tensor& x) { return x / x.norm(2, -1, true); };
  auto q = (unit(at::randn({batch, seq, Hk, Dk}, bf16)) / std::sqrt(static_cast<double>(Dk))).requires_grad_(true);
  auto k = unit(at::randn({batch, seq, Hk, Dk}, bf16)).requires_grad_(true);
  auto v = at::randn({batch, seq, H, Dv}, bf16).requires_grad_(true);
  auto g = at::log_sigmoid(at::randn({batch, seq, H}, bf16.dtype(at::kFloat))).requires_grad_(true);
  auto beta = at::sigmoid(at::randn({batch, seq, H}, bf16)).requires_grad_(true);
  const auto rule = [&] { return strata::gated_delta_rule_chunked(q, k, v, g, beta, c.linear_chunk_size, std::nullopt).out; };
  const auto d_rule = at::randn_like(v) / std::sqrt(static_cast<double>(v.numel()));
  const auto rule_step = [&] {
    for (auto* t : {&q, &k, &v, &g, &beta}) t->mutable_grad() = at::Tensor();
    rule().backward(d_rule);
  };
  const double rule_step_ms = strata::bench::median_ms(rule_step, warmup, iters);
  const double rule_ms =
      strata::bench::median_ms([&] { rule().to(at::kFloat).square().mean().backward(); }, warmup, iters);
  if (profile) {
    strata::bench::print_kernel_profile(stderr, "layer fwd+bwd", layer_step);
    strata::bench::print_kernel_profile(stderr, "delta rule fwd+bwd", rule_step);
  }

  // Without gradients (inference, prefill) the rule runs the fused tensor-core forward on CUDA
  // (STRATA_FUSED_KERNELS=0 times its LibTorch twin instead): bf16 q and k as flash-linear-
  // attention takes them; the same repeated to every value head (the rule's inputs as timed until
  // the fourteenth session); and float32 q and k repeated in heads-first memory as the layer hands
  // them over.
  const auto forward_of = [&](const at::Tensor& rule_q, const at::Tensor& rule_k) {
    return [&, rule_q, rule_k] {
      at::NoGradGuard no_grad;
      strata::gated_delta_rule_chunked(rule_q, rule_k, v, g, beta, c.linear_chunk_size, std::nullopt);
    };
  };
  const auto rule_fwd = forward_of(q, k);
  const double rule_fwd_ms = strata::bench::median_ms(rule_fwd, warmup, iters);
  const double rule_fwd_back_to_back_ms = strata::bench::median_ms(rule_fwd, warmup, iters, 20);
  const auto repeated = [&](const at::Tensor& t) { return t.detach().repeat_interleave(H / Hk, 2); };
  const double rule_fwd_repeated_ms = strata::bench::median_ms(forward_of(repeated(q), repeated(k)), warmup, iters);
  auto heads_first_f32 = [](const at::Tensor& t) {
    return t.to(at::kFloat).transpose(1, 2).contiguous().transpose(1, 2);
  };
  const auto q_layer = heads_first_f32(repeated(q)), k_layer = heads_first_f32(repeated(k));
  const double rule_fwd_layer_ms = strata::bench::median_ms(
      [&] {
        at::NoGradGuard no_grad;
        strata::gated_delta_rule_chunked(q_layer, k_layer, v, g, beta, c.linear_chunk_size, std::nullopt);
      },
      warmup, iters);

  // The rule's one sequential part alone, at the shapes the rule hands it (float32).
  const int64_t C = c.linear_chunk_size, N = (seq + C - 1) / C;
  auto f32 = bf16.dtype(at::kFloat);
  auto U = at::randn({batch, H, N, C, Dv}, f32).requires_grad_(true);
  auto W = (at::randn({batch, H, N, C, Dk}, f32) * 0.01).requires_grad_(true);
  auto k_to_end = (at::randn({batch, H, N, C, Dk}, f32) * 0.01).requires_grad_(true);
  auto chunk_decay = at::rand({batch, H, N}, f32).requires_grad_(true);
  auto initial = at::zeros({batch, H, Dk, Dv}, f32).requires_grad_(true);
  const double scan_ms = strata::bench::median_ms(
      [&] {
        auto s = strata::delta_rule_chunk_states(U, W, k_to_end, chunk_decay, initial);
        (s.entering.sum() + s.delta.sum()).backward();
      },
      warmup, iters);

  for (auto [what, ms] : {std::pair{"layer_step", layer_step_ms}, std::pair{"layer", layer_ms},
                          std::pair{"delta_rule_step", rule_step_ms}, std::pair{"delta_rule", rule_ms},
                          std::pair{"delta_rule_fwd", rule_fwd_ms},
                          std::pair{"delta_rule_fwd_back_to_back", rule_fwd_back_to_back_ms},
                          std::pair{"delta_rule_fwd_repeated_key_heads", rule_fwd_repeated_ms},
                          std::pair{"delta_rule_fwd_f32_qk", rule_fwd_layer_ms}, std::pair{"state_scan", scan_ms}})
    std::printf("%s\n", nlohmann::json{{"impl", "strata"}, {"what", what}, {"ms", ms}}.dump().c_str());
  return 0;
}
