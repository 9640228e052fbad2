#pragma once
// What the Gated DeltaNet tests share: random delta-rule inputs shaped as the mixer makes them,
// and the Qwen3-Next fixture's layer-0 mixer with HF's weights.
#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "strata/backends/local_backend.h"
#include "strata/hf/gated_delta_net_layout.h"
#include "strata/io/safetensors.h"
#include "strata/layers/gated_delta_net.h"
#include "test_util.h"

namespace strata::testing {

inline double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  return ((actual.to(at::kDouble) - expected.to(at::kDouble)).norm() / expected.to(at::kDouble).norm()).item<double>();
}

struct RuleInputs {
  at::Tensor q, k, v, g, beta, initial_state;
};

// How strongly the gates act: alpha = exp(g) the state's decay per step and beta the write
// strength. Mixed spans (0, 1) for both; the extremes put both near 1 (the state is kept and
// each write replaces what its key held) or near 0 (the state is forgotten, writes are faint).
enum class Gates { mixed, near_one, near_zero };

// Inputs as the mixer produces them: unit-norm q and k, q scaled by 1/sqrt(Dk), log decays of
// mixed magnitude (times decay_scale; some steps forget almost everything), beta in (0, 1); B = 2,
// H = 3, Dk = 8, Dv = 6.
inline RuleInputs random_rule_inputs(int64_t seq, at::TensorOptions options, double decay_scale = 1.0,
                                     Gates gates = Gates::mixed) {
  const int64_t batch = 2, heads = 3, key_dim = 8, value_dim = 6;
  auto unit = [&](int64_t dim) {
    auto x = at::randn({batch, seq, heads, dim}, options);
    return x / x.norm(2, -1, /*keepdim=*/true);
  };
  const double gate_scale = gates == Gates::near_one ? 1e-4 : gates == Gates::near_zero ? 30.0 : 1.0;
  const double beta_shift = gates == Gates::near_one ? 8.0 : gates == Gates::near_zero ? -8.0 : 0.0;
  return {unit(key_dim) / std::sqrt(static_cast<double>(key_dim)), unit(key_dim),
          at::randn({batch, seq, heads, value_dim}, options),
          -decay_scale * gate_scale * at::exp(at::randn({batch, seq, heads}, options)) *
              at::softplus(at::randn({batch, seq, heads}, options)),
          at::sigmoid(at::randn({batch, seq, heads}, options) + beta_shift),
          at::randn({batch, heads, key_dim, value_dim}, options)};
}

inline const char* gates_name(Gates gates) {
  return gates == Gates::near_one ? "gates near 1" : gates == Gates::near_zero ? "gates near 0" : "mixed gates";
}

// The Qwen3-Next fixture's linear-attention settings, read from its config.json.
inline std::shared_ptr<TransformerConfig> qwen3_next_config() {
  std::ifstream file(fixture("qwen3_next") + "/model/config.json");
  auto json = nlohmann::json::parse(file);
  auto c = std::make_shared<TransformerConfig>();
  use_llama_style(*c);
  c->num_layers = json["num_hidden_layers"];
  c->hidden_size = json["hidden_size"];
  c->linear_conv_kernel_dim = json["linear_conv_kernel_dim"];
  c->linear_key_head_dim = json["linear_key_head_dim"];
  c->linear_value_head_dim = json["linear_value_head_dim"];
  c->linear_num_key_heads = json["linear_num_key_heads"];
  c->linear_num_value_heads = json["linear_num_value_heads"];
  c->layernorm_epsilon = json["rms_norm_eps"];
  return c;
}

inline const std::string kQwen3NextLayerPrefix = "model.layers.0.linear_attn.";

// Layer 0's mixer with the fixture's weights, converted to strata's names and layout.
inline std::shared_ptr<GatedDeltaNet> qwen3_next_mixer(at::Device device) {
  auto config = qwen3_next_config();
  auto mixer = std::make_shared<GatedDeltaNet>(LayerArgs{.config = config}, gated_delta_net_submodules(LocalBackend{}));
  auto checkpoint = io::SafetensorsFile::open(fixture("qwen3_next") + "/model/model.safetensors");
  auto load_hf = [&](const std::string& name) { return checkpoint.load(kQwen3NextLayerPrefix + name); };
  const auto& c = *config;
  std::map<std::string, at::Tensor> weights{
      {"in_proj.weight", hf::gdn_in_proj_from_hf(load_hf("in_proj_qkvz.weight"), load_hf("in_proj_ba.weight"),
                                                 c.linear_num_key_heads, c.linear_num_value_heads,
                                                 c.linear_key_head_dim, c.linear_value_head_dim)},
      {"conv1d.weight", load_hf("conv1d.weight")},
      {"dt_bias", load_hf("dt_bias")},
      {"A_log", load_hf("A_log")},
      {"out_norm.weight", load_hf("norm.weight")},
      {"out_proj.weight", load_hf("out_proj.weight")}};
  at::NoGradGuard no_grad;
  for (auto& param : mixer->named_parameters()) param.value().copy_(weights.at(param.key()));
  mixer->to(device);
  return mixer;
}

}  // namespace strata::testing
