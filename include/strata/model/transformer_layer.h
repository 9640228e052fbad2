#pragma once
// TransformerLayer: the step structure Megatron's refactor settled on, each half optional so one
// class covers attention-only, MLP-only and fused layers:
//   input_layernorm -> self_attention -> self_attn_bda            (sequence mixer half)
//   pre_cross_attn_layernorm -> cross_attention -> cross_attn_bda (optional)
//   pre_mlp_layernorm -> mlp -> mlp_bda                           (channel mixer half)
// How each half reads and writes the residual stream is the `residual` slot (plain or mHC).
#include "strata/layers/bias_dropout_add.h"
#include "strata/layers/residual.h"
#include "strata/spec/slots.h"

namespace strata {

struct TransformerLayerSubmodules {
  std::optional<Builder<slots::InputLayernorm>> input_layernorm;
  std::optional<Builder<slots::SelfAttention>> self_attention;
  Builder<slots::SelfAttnBda> self_attn_bda = bias_dropout_add();
  std::optional<Builder<slots::PreCrossAttnLayernorm>> pre_cross_attn_layernorm;
  std::optional<Builder<slots::CrossAttention>> cross_attention;
  Builder<slots::CrossAttnBda> cross_attn_bda = bias_dropout_add();
  std::optional<Builder<slots::PreMlpLayernorm>> pre_mlp_layernorm;
  std::optional<Builder<slots::Mlp>> mlp;
  Builder<slots::MlpBda> mlp_bda = bias_dropout_add();
  Builder<slots::Residual> residual = plain_residual();  // built once per present half
};

// Which half of a layer a submodule belongs to; fused layers name each half canonically.
enum class LayerHalf { sequence, channel };

class TransformerLayer : public torch::nn::Module {
 public:
  // The half that owns the submodule a tensor name starts with ("mlp.linear_fc1.weight" -> channel).
  static LayerHalf half_of(const std::string& name);

  TransformerLayer(const TransformerLayerSubmodules& submodules, const LayerArgs& args);

  // streams: what the block carries ([B, T, H] for the plain residual).
  at::Tensor forward(const at::Tensor& streams, ForwardContext& ctx);

  int64_t layer_number() const { return layer_number_; }

  // The residual connections of the present halves, in the order forward runs them.
  std::vector<std::shared_ptr<ResidualConnection>> residuals() const;

 private:
  // One half: residual in, norm, mixer, residual out.
  struct Half {
    std::shared_ptr<ResidualConnection> residual;
    std::shared_ptr<NormModule> norm;  // null: identity
    std::shared_ptr<BiasDropoutAddModule> bda;
  };
  template <class Mixer>
  at::Tensor run_half(const Half& half, Mixer& mixer, const at::Tensor& streams, ForwardContext& ctx);

  int64_t layer_number_;
  std::shared_ptr<SequenceMixer> self_attention_;
  std::shared_ptr<CrossAttentionMixer> cross_attention_;
  std::shared_ptr<ChannelMixer> mlp_;
  Half attention_half_, cross_half_, mlp_half_;
};

}  // namespace strata
