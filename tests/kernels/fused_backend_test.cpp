// A model built on the fused backend against the same model on the local backend: bit for bit
// where the twins run (CPU), within float32 rounding where the kernels run (CUDA build, GPU).
#include "strata/backends/fused_backend.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "strata/kernels/rms_norm.h"
#include "strata/layers/norm.h"
#include "strata/model/language_model.h"
#include "strata/model/layer_specs.h"
#include "strata/model/loss.h"
#include "test_util.h"

namespace strata {
namespace {

template <class B>
std::shared_ptr<LanguageModel> model_on(const B& backend, std::shared_ptr<const TransformerConfig> config) {
  return std::make_shared<LanguageModel>(config, decoder_spec(default_layer_registry(backend, *config), *config));
}

// Expects `got` equal to `want` where the twins run, within float32 kernel rounding elsewhere.
void expect_same(const at::Tensor& got, const at::Tensor& want, bool kernels, const std::string& what) {
  ASSERT_TRUE(got.defined() && want.defined()) << what;
  if (kernels)
    EXPECT_LT(kernels::testing::relative_error(got, want), 1e-5) << what;
  else
    EXPECT_TRUE(at::equal(got, want)) << what;
}

TEST(FusedBackend, BuildsFusedNormsAndTheLocalBackendsOtherKinds) {
  auto config = strata::testing::small_config();
  auto norm = configured_norm(FusedBackend{})(NormArgs{config, 32, 1e-6});
  EXPECT_NE(std::dynamic_pointer_cast<FusedRMSNorm>(norm), nullptr);
  auto weight = norm->named_parameters()["weight"];
  EXPECT_TRUE(at::equal(weight, at::ones({32})));
  config->normalization = Normalization::LayerNorm;
  EXPECT_NE(std::dynamic_pointer_cast<LayerNorm>(configured_norm(FusedBackend{})(NormArgs{config, 32, 1e-6})), nullptr);
}

TEST(FusedBackend, ZeroCenteredNormMatchesTheLayer) {
  auto config = strata::testing::small_config();
  config->layernorm_zero_centered_gamma = true;
  const auto device = strata::testing::test_device();
  RMSNorm local(NormArgs{config, 24, 1e-6});
  FusedRMSNorm fused(NormArgs{config, 24, 1e-6});
  {
    at::NoGradGuard no_grad;
    local.named_parameters()["weight"].normal_(0.0, 0.1);
    fused.named_parameters()["weight"].copy_(local.named_parameters()["weight"]);
  }
  local.to(device);
  fused.to(device);
  auto x = at::randn({4, 3, 24}, at::TensorOptions().device(device));
  auto g = at::randn({4, 3, 24}, x.options());
  auto run = [&](NormModule& norm) { return kernels::testing::forward_backward([&](const auto& in) { return norm.forward(in[0]); }, {x}, g); };
  auto want = run(local);
  auto got = run(fused);
  const bool kernels = kernels::use_cuda_kernels(x);
  expect_same(got.output, want.output, kernels, "y");
  expect_same(got.grads[0], want.grads[0], kernels, "dx");
  expect_same(fused.named_parameters()["weight"].grad(), local.named_parameters()["weight"].grad(), kernels, "dw");
}

TEST(FusedBackend, ModelComputesWhatTheLocalBackendModelComputes) {
  auto config = strata::testing::small_config();  // q/k norms, SwiGLU, full rotary
  const auto device = strata::testing::test_device();
  auto local = model_on(LocalBackend{}, config);
  auto fused = model_on(FusedBackend{}, config);
  {
    at::NoGradGuard no_grad;
    for (auto& item : local->named_parameters())
      if (item.key().find("layernorm") != std::string::npos) item.value().normal_(1.0, 0.2);
  }
  fused->load_canonical_state_dict(local->canonical_state_dict(), "the local-backend model");
  local->to(device);
  fused->to(device);
  auto tokens = at::randint(config->vocab_size, {2, 9}, at::TensorOptions().dtype(at::kLong).device(device));
  auto want = causal_lm_loss(local->forward(tokens), tokens);
  auto got = causal_lm_loss(fused->forward(tokens), tokens);
  want.backward();
  got.backward();
  const bool kernels = kernels::use_cuda_kernels(tokens.to(at::kFloat));
  expect_same(got, want, kernels, "loss");
  auto fused_params = fused->named_parameters();
  for (const auto& item : local->named_parameters())
    expect_same(fused_params[item.key()].grad(), item.value().grad(), kernels, item.key() + " grad");
}

}  // namespace
}  // namespace strata
