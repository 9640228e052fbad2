// Where mHC's time goes: forward+backward of one hyper-connection half (maps, collapse, combine
// around an identity sublayer) and of each of its ops alone, at the training benchmark's shapes
// (float32 streams, bfloat16 sublayer output, as bf16 autocast training hands them over), next to
// the plain residual's add, and one half boundary (half i's combine with half i+1's projection,
// pre map and collapse) fused (kernels::hc_boundary) and unfused. STRATA_FUSED_KERNELS=0 times
// the LibTorch twins instead; --bf16-streams keeps the streams in bfloat16.
#include <CLI/CLI.hpp>
#include <torch/csrc/autograd/autograd.h>

#include <cstdio>
#include <functional>

#include "cuda_timing.h"
#include "strata/core/compat.h"
#include "strata/kernels/hc_boundary.h"
#include "strata/kernels/hyper_connection.h"
#include "strata/layers/bias_dropout_add.h"
#include "strata/layers/hyper_connection.h"
#include "strata/layers/hyper_connection_maps.h"
#include "strata/layers/sinkhorn.h"

namespace {

at::Tensor leaf(const at::Tensor& t) { return t.detach().requires_grad_(true); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata mHC benchmark"};
  strata::TransformerConfig c;
  c.hidden_size = 1024;
  c.layernorm_epsilon = 1e-6;
  c.init_method_std = 0.02;
  c.hidden_dropout = 0.0;  // Megatron's default 0.1 would time a dropout in the plain residual add
  int64_t batch = 8, seq = 2048, n = 4;
  int warmup = 5, iters = 20;
  app.add_option("--hidden-size", c.hidden_size);
  app.add_option("--seq-length", seq);
  app.add_option("--micro-batch-size", batch);
  app.add_option("--streams", n);
  bool bf16_streams = false;
  app.add_flag("--bf16-streams", bf16_streams, "streams in bfloat16 (fp32_residual_connection false)");
  CLI11_PARSE(app, argc, argv);

  const int64_t h = c.hidden_size;
  auto config = std::make_shared<const strata::TransformerConfig>(c);
  strata::LayerArgs args{.config = config};
  strata::HyperConnectionOptions options{.num_residual_streams = n};
  auto hc = std::make_shared<strata::HyperConnection>(args, options);
  hc->to(at::kCUDA);
  strata::BiasDropoutAdd bda(args);
  const auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  auto streams = leaf(at::randn({batch, seq, n, h}, f32).to(bf16_streams ? at::kBFloat16 : at::kFloat));
  auto residual = leaf(at::randn({batch, seq, h}, f32));
  auto branch = leaf(at::randn({batch, seq, h}, f32).to(at::kBFloat16));
  auto weights = leaf(at::rand({batch, seq, n}, f32));
  auto res = leaf(strata::sinkhorn_knopp(at::randn({batch, seq, n, n}, f32), 20, 1e-6));
  auto logits = leaf(at::randn({batch, seq, n, n}, f32));
  auto fn = leaf(at::randn({2 * n + n * n, n * h}, f32) * 0.02);
  const strata::kernels::HcNextMaps next{fn, leaf(at::zeros({2 * n + n * n}, f32)), leaf(at::ones({3}, f32)), 1e-6,
                                         1e-6};
  // The three outputs' gradients arrive together, as in a model.
  auto backward_boundary = [](const strata::kernels::HcBoundary& b) {
    torch::autograd::backward({b.streams, b.next_input, b.projection},
                              {at::ones_like(b.streams), at::ones_like(b.next_input), at::ones_like(b.projection)});
  };

  auto backward = [](const at::Tensor& out) { out.backward(at::ones_like(out)); };
  // The next half's post and res maps from the boundary's f, both gradients arriving together.
  auto f = leaf(at::randn({batch, seq, 2 * n + n * n}, f32));
  auto backward_maps = [](const strata::kernels::HcPostRes& m) {
    torch::autograd::backward({m.post, m.res}, {at::ones_like(m.post), at::randn_like(m.res)});
  };
  struct Row {
    const char* name;
    std::function<void()> run;
  };
  const std::vector<Row> rows = {
      {"plain residual add", [&] { backward(residual + branch); }},
      {"mHC half (maps + collapse + combine)",
       [&] {
         strata::compat::CudaAutocast autocast(at::kBFloat16);
         auto x = hc->sublayer_input(streams);
         backward(hc->combine(streams, {x.to(at::kBFloat16), std::nullopt}, bda));
       }},
      {"  projection (rms + linear)", [&] { backward(strata::kernels::hc_project(streams.flatten(2), fn, 1e-6)); }},
      {"  sinkhorn (20 iterations)", [&] { backward(strata::sinkhorn_knopp(logits, 20, 1e-6)); }},
      {"  post and res maps",
       [&] { backward_maps(strata::hyper_connection_post_res(f, next.base, next.scale, n, 20, 1e-6)); }},
      {"  post and res maps, twin's ops",
       [&] { backward_maps(strata::hyper_connection_post_res_reference(f, next.base, next.scale, n, 20, 1e-6)); }},
      {"  collapse", [&] { backward(strata::kernels::hc_collapse(streams, weights)); }},
      {"  combine", [&] { backward(strata::kernels::hc_combine(streams, branch, weights, res)); }},
      {"half boundary, unfused", [&] { backward_boundary(strata::kernels::hc_boundary_unfused(streams, branch, weights, res, next)); }},
      {"half boundary, fused", [&] { backward_boundary(strata::kernels::hc_boundary(streams, branch, weights, res, next)); }},
  };
  std::printf("mHC n=%lld, tokens %lld, hidden %lld, %s streams, fwd+bwd ms (kernels %s)\n",
              static_cast<long long>(n), static_cast<long long>(batch * seq), static_cast<long long>(h),
              bf16_streams ? "bfloat16" : "float32",
              strata::kernels::use_cuda_kernels(streams) ? "on" : "off");
  for (const auto& row : rows) std::printf("| %-38s | %8.3f |\n", row.name, strata::bench::median_ms(row.run, warmup, iters));
  return 0;
}
