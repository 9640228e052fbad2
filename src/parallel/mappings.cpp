#include "strata/parallel/mappings.h"

#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"
#include "strata/parallel/collectives.h"

namespace strata::parallel {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The group travels from forward to backward in the context (autograd keeps only IValues).
void keep_group(AutogradContext* ctx, const Group& group) { ctx->saved_data["group"] = c10::IValue::make_capsule(group); }
Group saved_group(AutogradContext* ctx) {
  return c10::static_intrusive_pointer_cast<c10d::ProcessGroup>(ctx->saved_data["group"].toCapsule());
}

at::Tensor summed(const at::Tensor& x, const Group& group, const char* what) {
  auto out = x.contiguous().clone();
  all_reduce_sum_(out, group, what);
  return out;
}

at::Tensor own_chunk(const at::Tensor& x, const Group& group, int64_t dim, const char* what) {
  const auto size = group->getSize();
  if (x.size(dim) % size != 0)
    fail(what, ": dimension ", dim, " has size ", x.size(dim), ", not a multiple of the ", size,
         " tensor-parallel ranks");
  return x.chunk(size, dim)[group->getRank()].contiguous();
}

int64_t last_dim(const at::Tensor& x) { return x.dim() - 1; }

struct CopyToRegion : torch::autograd::Function<CopyToRegion> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Group& group) {
    keep_group(ctx, group);
    return x.view_as(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {summed(grad[0], saved_group(ctx), "all-reduce of an input gradient (copy to tensor-parallel region)"),
            at::Tensor()};
  }
};

struct ReduceFromRegion : torch::autograd::Function<ReduceFromRegion> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, const Group& group) {
    return summed(x, group, "all-reduce of partial outputs (reduce from tensor-parallel region)");
  }
  static variable_list backward(AutogradContext*, variable_list grad) { return {grad[0], at::Tensor()}; }
};

struct ScatterToRegion : torch::autograd::Function<ScatterToRegion> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Group& group) {
    keep_group(ctx, group);
    return own_chunk(x, group, last_dim(x), "scatter to tensor-parallel region");
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {all_gather(grad[0], saved_group(ctx), last_dim(grad[0]), "all-gather of gradients (scatter to tensor-parallel region)"),
            at::Tensor()};
  }
};

struct GatherFromRegion : torch::autograd::Function<GatherFromRegion> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Group& group) {
    keep_group(ctx, group);
    return all_gather(x, group, last_dim(x), "all-gather of outputs (gather from tensor-parallel region)");
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {own_chunk(grad[0], saved_group(ctx), last_dim(grad[0]), "gather from tensor-parallel region"), at::Tensor()};
  }
};

struct ScatterToSequence : torch::autograd::Function<ScatterToSequence> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Group& group) {
    keep_group(ctx, group);
    return own_chunk(x, group, kSequenceDim, "scatter to sequence-parallel region");
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {all_gather(grad[0], saved_group(ctx), kSequenceDim, "all-gather of gradients along the sequence"),
            at::Tensor()};
  }
};

struct GatherFromSequence : torch::autograd::Function<GatherFromSequence> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Group& group, bool reduce_scatter_grad) {
    keep_group(ctx, group);
    ctx->saved_data["reduce_scatter_grad"] = reduce_scatter_grad;
    return all_gather(x, group, kSequenceDim, "all-gather along the sequence (sequence-parallel region)");
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto group = saved_group(ctx);
    auto g = ctx->saved_data["reduce_scatter_grad"].toBool()
                 ? reduce_scatter_sum(grad[0], group, kSequenceDim, "reduce-scatter of gradients along the sequence")
                 : own_chunk(grad[0], group, kSequenceDim, "gather from sequence-parallel region");
    return {g, at::Tensor(), at::Tensor()};
  }
};

struct ReduceScatterToSequence : torch::autograd::Function<ReduceScatterToSequence> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Group& group) {
    keep_group(ctx, group);
    return reduce_scatter_sum(x, group, kSequenceDim, "reduce-scatter of partial outputs along the sequence");
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {all_gather(grad[0], saved_group(ctx), kSequenceDim, "all-gather of gradients along the sequence"),
            at::Tensor()};
  }
};

bool single(const Group& group) { return !group || group->getSize() == 1; }

}  // namespace

at::Tensor copy_to_tensor_parallel_region(const at::Tensor& x, const Group& tp) {
  return single(tp) ? x : CopyToRegion::apply(x, tp);
}
at::Tensor reduce_from_tensor_parallel_region(const at::Tensor& x, const Group& tp) {
  return single(tp) ? x : ReduceFromRegion::apply(x, tp);
}
at::Tensor scatter_to_tensor_parallel_region(const at::Tensor& x, const Group& tp) {
  return single(tp) ? x : ScatterToRegion::apply(x, tp);
}
at::Tensor gather_from_tensor_parallel_region(const at::Tensor& x, const Group& tp) {
  return single(tp) ? x : GatherFromRegion::apply(x, tp);
}
at::Tensor scatter_to_sequence_parallel_region(const at::Tensor& x, const Group& tp) {
  return single(tp) ? x : ScatterToSequence::apply(x, tp);
}
at::Tensor gather_from_sequence_parallel_region(const at::Tensor& x, const Group& tp, bool reduce_scatter_grad) {
  return single(tp) ? x : GatherFromSequence::apply(x, tp, reduce_scatter_grad);
}
at::Tensor reduce_scatter_to_sequence_parallel_region(const at::Tensor& x, const Group& tp) {
  return single(tp) ? x : ReduceScatterToSequence::apply(x, tp);
}

}  // namespace strata::parallel
