#include "strata/layers/linear.h"

#include "strata/core/error.h"
#include "strata/parallel/mappings.h"

namespace strata {

namespace {

at::Tensor normal_weight(int64_t out, int64_t in, double std) { return at::randn({out, in}) * std; }

// A gated MLP's fc1 rows are [gate; up]: each rank keeps its share of both halves (see
// parallel::ShardSpec), so the MLP's chunk(2) of the local output is [gate_r, up_r].
int64_t output_blocks(const ColumnLinearArgs& args) {
  return args.name == "linear_fc1" && args.config && args.config->gated_linear_unit ? 2 : 1;
}

parallel::ShardSpec tensor_parallel_shard(const ProcessGroups& pg, int64_t dim, int64_t blocks, int64_t size,
                                          const std::string& name) {
  parallel::ShardSpec shard{.dim = dim, .chunks = blocks, .axis = parallel::ShardAxis::tensor, .group = pg.tp};
  if (size % (blocks * shard.size()) != 0)
    fail("linear layer '", name, "': ", dim == 0 ? "output" : "input", " size ", size, " does not split over ",
         shard.size(), " tensor-parallel ranks", blocks > 1 ? cat(" in each of its ", blocks, " blocks") : "");
  return shard;
}

LinearOutput linear_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool skip_bias_add) {
  if (!bias.defined()) return {at::linear(x, weight), std::nullopt};
  if (skip_bias_add) return {at::linear(x, weight), bias};
  return {at::linear(x, weight, bias), std::nullopt};
}

// The bias of a row-parallel linear joins after the reduction (added once, not once per rank).
LinearOutput linear_forward_bias(const at::Tensor& out, const at::Tensor& bias, bool skip_bias_add) {
  if (!bias.defined()) return {out, std::nullopt};
  if (skip_bias_add) return {out, bias};
  return {out + bias, std::nullopt};
}

}  // namespace

ColumnParallelLinear::ColumnParallelLinear(const ColumnLinearArgs& args)
    : skip_bias_add_(args.skip_bias_add),
      gather_output_(args.gather_output),
      pg_(args.pg),
      shard_(tensor_parallel_shard(args.pg, 0, output_blocks(args), args.output_size, args.name)) {
  if (gather_output_ && (shard_.chunks > 1 || (args.bias && skip_bias_add_)))
    fail("linear layer '", args.name, "': gather_output cannot be combined with ",
         shard_.chunks > 1 ? "a gated [gate; up] output" : "skip_bias_add (the bias would stay split)");
  const auto whole = normal_weight(args.output_size, args.input_size, args.init_std);
  weight_ = register_parameter("weight", parallel::shard_of(whole, shard_, args.name + ".weight"));
  if (args.bias) bias_ = register_parameter("bias", parallel::shard_of(at::zeros({args.output_size}), shard_, args.name + ".bias"));
}

LinearOutput ColumnParallelLinear::forward(const at::Tensor& x) {
  const auto input = pg_.splits_sequence()
                         ? parallel::gather_from_sequence_parallel_region(x, pg_.tp, /*reduce_scatter_grad=*/true)
                         : parallel::copy_to_tensor_parallel_region(x, pg_.tp);
  auto out = linear_forward(input, weight_, bias_, skip_bias_add_);
  if (gather_output_) out.output = parallel::gather_from_tensor_parallel_region(out.output, pg_.tp);
  return out;
}

std::map<std::string, parallel::ShardSpec> ColumnParallelLinear::shard_specs() const {
  std::map<std::string, parallel::ShardSpec> specs{{"weight", shard_}};
  if (bias_.defined()) specs.emplace("bias", shard_);
  return specs;
}

RowParallelLinear::RowParallelLinear(const RowLinearArgs& args)
    : skip_bias_add_(args.skip_bias_add),
      input_is_parallel_(args.input_is_parallel),
      pg_(args.pg),
      shard_(tensor_parallel_shard(args.pg, 1, 1, args.input_size, args.name)) {
  const auto whole = normal_weight(args.output_size, args.input_size, args.init_std);
  weight_ = register_parameter("weight", parallel::shard_of(whole, shard_, args.name + ".weight"));
  if (args.bias) bias_ = register_parameter("bias", at::zeros({args.output_size}));
}

LinearOutput RowParallelLinear::forward(const at::Tensor& x) {
  const auto input = input_is_parallel_ ? x : parallel::scatter_to_tensor_parallel_region(x, pg_.tp);
  const auto partial = at::linear(input, weight_);
  auto out = pg_.splits_sequence() ? parallel::reduce_scatter_to_sequence_parallel_region(partial, pg_.tp)
                                   : parallel::reduce_from_tensor_parallel_region(partial, pg_.tp);
  return linear_forward_bias(out, bias_, skip_bias_add_);
}

std::map<std::string, parallel::ShardSpec> RowParallelLinear::shard_specs() const { return {{"weight", shard_}}; }

}  // namespace strata
