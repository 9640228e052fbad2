#pragma once
// Random inputs of the gated delta rule for the chunked kernels' tests
// (gated_delta_chunk_forward_test.cpp, gated_delta_chunk_backward_test.cpp).
#include <ATen/ATen.h>

#include <cmath>

namespace strata::kernels {

struct RuleInputs {
  at::Tensor q, k, v, g, beta;
};

// How the gates act: alpha = exp(g) spread over (0, 1) with beta around 1/2; alpha near 1
// (g ~ -1e-4) with beta near 1; strong decay (g ~ -5) with beta near 0.
enum class Gates { mixed, slow_decay, strong_decay };

// Inputs as the Gated DeltaNet layer hands them over: unit-norm k, unit-norm q over sqrt(Dk).
inline RuleInputs random_rule_inputs(int64_t batch, int64_t seq, int64_t heads, int64_t dim, Gates gates,
                                     at::TensorOptions options) {
  auto unit = [&] {
    auto x = at::randn({batch, seq, heads, dim}, options);
    return x / x.norm(2, -1, /*keepdim=*/true);
  };
  const double gate_scale = gates == Gates::slow_decay ? 1e-4 : gates == Gates::strong_decay ? 5.0 : 0.5;
  const double beta_shift = gates == Gates::slow_decay ? 4.0 : gates == Gates::strong_decay ? -4.0 : 0.0;
  return {unit() / std::sqrt(static_cast<double>(dim)), unit(), at::randn({batch, seq, heads, dim}, options),
          -gate_scale * at::exp(0.5 * at::randn({batch, seq, heads}, options)),
          at::sigmoid(at::randn({batch, seq, heads}, options) + beta_shift)};
}

}  // namespace strata::kernels
