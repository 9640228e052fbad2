#pragma once
// The routed experts of a mixture of experts, their weights grouped into one 3-D tensor per
// projection (Megatron's GroupedMLP, HF's Qwen3NextExperts): linear_fc1.weight [E, 2F, H] with
// each expert's rows [gate; up] as in Mlp (F rows without a gated linear unit) and
// linear_fc2.weight [E, H, F], F = moe_ffn_hidden_size.
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "strata/core/config.h"
#include "strata/parallel/process_groups.h"
#include "strata/parallel/sharding.h"

namespace strata {

// One [out, in] weight per expert, stacked: weight [E, out, in]. Under expert parallelism (a
// group of ep ranks) each rank holds E / ep consecutive experts: weight [E / ep, out, in].
class GroupedLinear : public torch::nn::Module, public parallel::ShardedModule {
 public:
  GroupedLinear(int64_t num_experts, int64_t input_size, int64_t output_size, double init_std,
                const ProcessGroups& pg = {});

  // x [N, in] -> [N, out] through the weight of `expert` (numbered among this rank's experts).
  at::Tensor forward(const at::Tensor& x, int64_t expert);
  std::map<std::string, parallel::ShardSpec> shard_specs() const override { return {{"weight", shard_}}; }

 private:
  at::Tensor weight_;
  parallel::ShardSpec shard_;
};

class GroupedExperts : public torch::nn::Module {
 public:
  // Errors name moe_ffn_hidden_size when it is not positive, and add_bias_linear when set (the
  // grouped weights carry no bias).
  // With pg.ep of several ranks, this rank holds num_moe_experts / ep of the experts and forward
  // exchanges tokens with the others (parallel/expert_dispatch.h).
  explicit GroupedExperts(const TransformerConfig& config, const ProcessGroups& pg = {});

  // Dropless: every (token, slot) assignment is computed. x [T, H]; indices, weights [T, k].
  // Returns [T, H]: for each token, sum over slots j of weights[t, j] * expert_{indices[t, j]}(x[t]).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& indices, const at::Tensor& weights);

 private:
  at::Tensor expert_mlp(const at::Tensor& x, int64_t expert);

  int64_t num_experts_;  // all ranks' experts
  ProcessGroups pg_;
  Activation activation_;
  bool gated_;
  double clamp_value_;
  std::shared_ptr<GroupedLinear> linear_fc1_;
  std::shared_ptr<GroupedLinear> linear_fc2_;
};

}  // namespace strata
