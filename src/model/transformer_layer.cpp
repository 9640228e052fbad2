#include "strata/model/transformer_layer.h"

#include "strata/core/error.h"

namespace strata {

namespace {
template <class Slot>
std::shared_ptr<NormModule> build_norm(torch::nn::Module& parent, const char* name,
                                       const std::optional<Builder<Slot>>& builder, const LayerArgs& args) {
  if (!builder) return nullptr;
  const auto& c = *args.config;
  return parent.register_module(name, (*builder)(NormArgs{args.config, c.hidden_size, c.layernorm_epsilon}));
}
}  // namespace

LayerHalf TransformerLayer::half_of(const std::string& name) {
  const auto head = name.substr(0, name.find('.'));
  for (const char* s : {"input_layernorm", "self_attention", "self_attn_bda", "self_attn_residual",
                        "pre_cross_attn_layernorm", "cross_attention", "cross_attn_bda", "cross_attn_residual"})
    if (head == s) return LayerHalf::sequence;
  for (const char* s : {"pre_mlp_layernorm", "mlp", "mlp_bda", "mlp_residual"})
    if (head == s) return LayerHalf::channel;
  fail("transformer layer: '", name, "' does not start with a submodule of TransformerLayer");
}

TransformerLayer::TransformerLayer(const TransformerLayerSubmodules& sub, const LayerArgs& args)
    : layer_number_(args.layer_number) {
  if (sub.self_attention) {
    attention_half_.residual = register_module("self_attn_residual", sub.residual(args));
    attention_half_.norm = build_norm(*this, "input_layernorm", sub.input_layernorm, args);
    self_attention_ = register_module("self_attention", (*sub.self_attention)(args));
    attention_half_.bda = register_module("self_attn_bda", sub.self_attn_bda(args));
  }
  if (sub.cross_attention) {
    cross_half_.residual = register_module("cross_attn_residual", sub.residual(args));
    cross_half_.norm = build_norm(*this, "pre_cross_attn_layernorm", sub.pre_cross_attn_layernorm, args);
    cross_attention_ = register_module("cross_attention", (*sub.cross_attention)(args));
    cross_half_.bda = register_module("cross_attn_bda", sub.cross_attn_bda(args));
  }
  if (sub.mlp) {
    // A fused layer's channel half is the canonical layer after its sequence mixer, and is built
    // under that number (settings that name layers, such as moe_hash_routed_layers, count so).
    LayerArgs channel = args;
    if (sub.self_attention) channel.layer_number += 1;
    mlp_half_.residual = register_module("mlp_residual", sub.residual(channel));
    mlp_half_.norm = build_norm(*this, "pre_mlp_layernorm", sub.pre_mlp_layernorm, channel);
    mlp_ = register_module("mlp", (*sub.mlp)(channel));
    mlp_half_.bda = register_module("mlp_bda", sub.mlp_bda(channel));
  }
}

template <class Mixer>
at::Tensor TransformerLayer::run_half(const Half& half, Mixer& mixer, const at::Tensor& streams, ForwardContext& ctx) {
  auto x = half.residual->sublayer_input(streams);
  if (half.norm) x = half.norm->forward(x);
  auto out = mixer.forward(x, ctx);
  return half.residual->combine(streams, out, *half.bda);
}

at::Tensor TransformerLayer::forward(const at::Tensor& streams, ForwardContext& ctx) {
  auto h = streams;
  if (self_attention_) h = run_half(attention_half_, *self_attention_, h, ctx);
  if (cross_attention_) h = run_half(cross_half_, *cross_attention_, h, ctx);
  if (mlp_) h = run_half(mlp_half_, *mlp_, h, ctx);
  return h;
}

std::vector<std::shared_ptr<ResidualConnection>> TransformerLayer::residuals() const {
  std::vector<std::shared_ptr<ResidualConnection>> out;
  for (const auto* half : {&attention_half_, &cross_half_, &mlp_half_})
    if (half->residual) out.push_back(half->residual);
  return out;
}

}  // namespace strata
