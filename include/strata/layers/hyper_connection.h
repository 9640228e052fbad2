#pragma once
// Manifold-constrained hyper-connections (mHC: Xie et al. 2025; DeepSeek-V4; Megatron-Core's
// HyperConnectionModule) as a residual policy. The block carries n residual streams per token,
// `streams` [B, T, n, H]. Around each sublayer F, per-token maps computed from the streams
//   pre  [n]     collapses the streams into F's input:        x = sum_j pre_j streams_j
//   post [n]     spreads F's output over the streams
//   res  [n, n]  mixes the streams; Sinkhorn-Knopp makes it doubly stochastic, so the residual
//                path is a convex mix that neither amplifies nor attenuates the signal over depth
// give the new streams  streams'_k = sum_j res_jk streams_j + post_k F(x)  (res enters
// transposed, as in DeepSeek-V4 and Megatron).
//
// The maps are DeepSeek-V4's: with f = rms_normalise(streams flattened to n*H) @ fn^T, split
// as [pre | post | res] (n, n, n*n values),
//   pre  = sigmoid(scale[0] f_pre  + base_pre) + eps     in (eps, 1 + eps)
//   post = 2 sigmoid(scale[1] f_post + base_post)        in (0, 2)
//   res  = sinkhorn_knopp(scale[2] f_res + base_res, sinkhorn_iterations, eps)
// computed in float32 whatever the streams' dtype, with the RMS norm's epsilon
// config.layernorm_epsilon (HF's rms_norm_eps).
//
// Initialisation: fn ~ N(0, config.init_method_std) and base = 0 (both as DeepSeek-V4), scale =
// init_gating_factor (Megatron's alpha; HF DeepSeek-V4 initialises it to 1). So each half starts
// with pre ~ 0.5, post ~ 1 and res ~ the uniform 1/n matrix.
//
// Fused boundaries: when a half's streams go straight into the next half's (set_next), its
// combine runs as one op with the next half's projection, pre map and collapse
// (kernels::hc_boundary: one autograd node with a hand-written backward that sums every gradient
// reaching the new streams in one pass). The next half's sublayer_input then returns what that op
// prepared. Values are those of the unfused ops; only gradients' float rounding differs.
//
// Identity point: with n = 1, eps = 0, fn = 0 and base = {b_pre, 0, anything} with sigmoid(b_pre)
// rounding to exactly 1 (b_pre >= 40 in float32 and float64), pre = post = 1 and res = [[1]], and
// the policy equals PlainResidual bit for bit (streams then [B, T, 1, H]). eps > 0 moves pre and
// res off 1 by O(eps).
#include <optional>

#include "strata/spec/args.h"
#include "strata/spec/interfaces.h"

namespace strata {

struct HyperConnectionOptions {
  int64_t num_residual_streams = 4;  // n: DeepSeek-V4's hc_mult, Megatron's mhc_num_residual_streams
  int64_t sinkhorn_iterations = 20;  // hc_sinkhorn_iters, mhc_sinkhorn_iterations
  double eps = 1e-6;                 // hc_eps: floor of pre and Sinkhorn's denominators
  double init_gating_factor = 0.01;  // initial `scale`: Megatron's mhc_init_gating_factor default
  bool recompute = false;  // keep only the maps' inputs for backward and recompute the rest there
};

// Errors name the field, its value and what was expected.
void validate(const HyperConnectionOptions& options);

// The options config's mHC fields give (recompute: config's selective "mhc" recompute).
HyperConnectionOptions hyper_connection_options(const TransformerConfig& config);

// One half's per-token maps, float32.
struct HyperConnectionMaps {
  at::Tensor pre;   // [B, T, n]
  at::Tensor post;  // [B, T, n]
  at::Tensor res;   // [B, T, n, n]
};

class HyperConnection : public ResidualConnection {
 public:
  // Parameters (DeepSeek-V4's layout, its HF module's names): fn [2n + n*n, n*H], base [2n + n*n],
  // scale [3] (pre, post, res).
  HyperConnection(const LayerArgs& args, const HyperConnectionOptions& options);

  // Computes the maps from `streams` [B, T, n, H] and returns sum_j pre_j streams_j [B, T, H].
  // The maps are cached in the module until this half's combine(), which must use the same maps
  // rather than recompute them (the streams are the same; recomputing would double the cost).
  at::Tensor sublayer_input(const at::Tensor& streams) override;

  // res^T streams + post (x) bda(out), consuming the maps sublayer_input cached. bda runs with a
  // zero residual, so it applies bias and dropout exactly as for the plain residual and returns
  // dropout(out + bias); the streams are added here since each one gets its own weight.
  at::Tensor combine(const at::Tensor& streams, const MixerOutput& out, BiasDropoutAddModule& bda) override;

  // The maps sublayer_input computes (recomputed in backward when options.recompute).
  HyperConnectionMaps maps(const at::Tensor& streams);

  // The half that runs next on the streams combine() returns (same n and hidden size), whose
  // maps and sublayer input combine() then computes in the fused boundary; null: none (the last
  // half of a stage or of a recomputed group, or fusion off).
  void set_next(const std::shared_ptr<HyperConnection>& next);

 private:
  // What a fused boundary prepared for this half: its sublayer input and post/res maps, valid for
  // exactly the streams that boundary returned.
  struct PreparedInput {
    at::Tensor streams, input, post, res;
  };

  // combine() fused with next's projection, maps and collapse; fills next.prepared_.
  at::Tensor combine_into_next(const at::Tensor& streams, const at::Tensor& branch, const HyperConnectionMaps& maps,
                               HyperConnection& next);

  HyperConnectionOptions options_;
  int64_t layer_number_;
  int64_t hidden_size_;
  double norm_eps_;
  at::Tensor fn_, base_, scale_;
  std::optional<HyperConnectionMaps> pending_;  // sublayer_input's maps, awaiting combine
  std::weak_ptr<HyperConnection> next_;          // see set_next
  std::optional<PreparedInput> prepared_;        // the previous half's fused boundary, awaiting sublayer_input
};

// Builder for the residual slot.
inline auto hyper_connection(HyperConnectionOptions options) {
  return [options](const LayerArgs& args) { return std::make_shared<HyperConnection>(args, options); };
}

// [B, T, H] -> [B, T, n, H], every stream a copy of `hidden`: how DeepSeek-V4 enters the block
// from the embedding.
at::Tensor expand_streams(const at::Tensor& hidden, int64_t n);

// DeepSeek-V4's hc_head: contracts the block's streams [B, T, n, H] to [B, T, H] before the final
// norm, with the sigmoid weights pre = sigmoid(hc_scale f + hc_base) + eps of a learned
// f = rms_normalise(streams flattened) @ hc_fn^T. Initialised like HyperConnection.
class HyperConnectionHead : public torch::nn::Module {
 public:
  // Parameters: hc_fn [n, n*H], hc_base [n], hc_scale [1].
  HyperConnectionHead(const TransformerConfig& config, const HyperConnectionOptions& options);

  at::Tensor forward(const at::Tensor& streams);

 private:
  int64_t num_streams_;
  int64_t hidden_size_;
  double eps_;
  double norm_eps_;
  at::Tensor hc_fn_, hc_base_, hc_scale_;
};

}  // namespace strata
