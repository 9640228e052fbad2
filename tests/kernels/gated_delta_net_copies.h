#pragma once
// What the kernel tests of whole Gated DeltaNet mixers share: three mixers with one set of
// weights (one runs on the kernels, one on the twins, one in float64) and a forward and backward
// through one of them.
#include <memory>

#include "kernel_test_util.h"
#include "strata/backends/local_backend.h"
#include "strata/layers/gated_delta_net.h"

namespace strata::kernels::testing {

struct GatedDeltaNetCopies {
  std::shared_ptr<GatedDeltaNet> kernel, twin, reference;
};

// Three mixers built from `config`, the twin's weights copied into the other two; each still on
// the CPU in float32, for the caller to move.
inline GatedDeltaNetCopies gated_delta_net_copies(const std::shared_ptr<const TransformerConfig>& config) {
  auto make = [&] {
    return std::make_shared<GatedDeltaNet>(LayerArgs{.config = config}, gated_delta_net_submodules(LocalBackend{}));
  };
  GatedDeltaNetCopies copies{make(), make(), make()};
  at::NoGradGuard no_grad;
  auto source = copies.twin->named_parameters();
  for (auto& other : {copies.kernel, copies.reference})
    for (auto& param : other->named_parameters()) param.value().copy_(source[param.key()]);
  return copies;
}

// The mixer's output and input gradient for `hidden` (moved to `device` and `dtype`) and the
// output gradient g; the parameters' gradients stay on the mixer.
inline ForwardBackward mixer_forward_backward(GatedDeltaNet& mixer, const at::Tensor& hidden, const at::Tensor& g,
                                              at::Device device, at::ScalarType dtype) {
  return forward_backward(
      [&](const auto& in) {
        ForwardContext ctx;
        return mixer.forward(in[0], ctx).output;
      },
      {hidden.to(device, dtype)}, g);
}

}  // namespace strata::kernels::testing
