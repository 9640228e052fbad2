#pragma once
// Column- and row-parallel linear layers (Megatron's names). Weights are [out, in] like
// torch.nn.Linear. With skip_bias_add the bias is returned unapplied for bias-dropout-add.
//
// Over a tensor-parallel group of n ranks (args.pg.tp) each rank holds 1/n of the weight:
// column-parallel splits the outputs (its input gradient is all-reduced in backward; with
// sequence parallelism its input is all-gathered along the sequence instead), row-parallel
// splits the inputs and all-reduces its partial outputs (reduce-scatters them along the sequence
// with sequence parallelism). Weights are initialised whole and then split, so a model built with
// one seed holds the same numbers under every tensor-parallel size.
#include "strata/parallel/sharding.h"
#include "strata/spec/args.h"
#include "strata/spec/interfaces.h"

namespace strata {

class ColumnParallelLinear : public LinearModule, public parallel::ShardedModule {
 public:
  explicit ColumnParallelLinear(const ColumnLinearArgs& args);
  LinearOutput forward(const at::Tensor& x) override;
  std::map<std::string, parallel::ShardSpec> shard_specs() const override;

 private:
  at::Tensor weight_;  // [output_size / tp, input_size]
  at::Tensor bias_;    // undefined when args.bias is false
  bool skip_bias_add_;
  bool gather_output_;
  ProcessGroups pg_;
  parallel::ShardSpec shard_;  // how weight and bias split over pg_.tp
};

class RowParallelLinear : public LinearModule, public parallel::ShardedModule {
 public:
  explicit RowParallelLinear(const RowLinearArgs& args);
  LinearOutput forward(const at::Tensor& x) override;
  std::map<std::string, parallel::ShardSpec> shard_specs() const override;

 private:
  at::Tensor weight_;  // [output_size, input_size / tp]
  at::Tensor bias_;    // whole on every rank: added once, after the reduction
  bool skip_bias_add_;
  bool input_is_parallel_;
  ProcessGroups pg_;
  parallel::ShardSpec shard_;
};

}  // namespace strata
