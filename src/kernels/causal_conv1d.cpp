#include "strata/kernels/causal_conv1d.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"
#include "strata/kernels/packed_documents.h"

namespace strata::kernels {

namespace {

void check_shapes(const at::Tensor& x, const at::Tensor& weight, const char* what) {
  if (x.dim() != 3) fail(what, ": x has shape ", x.sizes(), "; expected [batch, seq, channels]");
  if (weight.dim() != 3 || weight.size(0) != x.size(2) || weight.size(1) != 1 || weight.size(2) < 1)
    fail(what, ": weight has shape ", weight.sizes(), " for x of shape ", x.sizes(), "; expected [", x.size(2),
         ", 1, K] with K >= 1 (nn.Conv1d's depthwise weight)");
}

}  // namespace

at::Tensor causal_conv1d_silu_reference(const at::Tensor& x, const at::Tensor& weight,
                                        const std::optional<at::Tensor>& cu_seqlens) {
  check_shapes(x, weight, "causal_conv1d_silu_reference");
  if (cu_seqlens) {
    const auto bounds = document_bounds("causal_conv1d_silu_reference", *cu_seqlens, x.size(0), x.size(1));
    std::vector<at::Tensor> documents;
    for (size_t d = 0; d + 1 < bounds.size(); ++d)
      documents.push_back(causal_conv1d_silu_reference(x.narrow(1, bounds[d], bounds[d + 1] - bounds[d]), weight));
    return at::cat(documents, 1);
  }
  const auto width = weight.size(2);
  // The conv's own padding supplies the zero history (a concatenated copy of the inputs costs a
  // pass over them forward and backward); the first T outputs are the causal ones.
  auto conv = at::conv1d(x.transpose(1, 2), weight.to(x.scalar_type()), /*bias=*/{}, /*stride=*/1,
                         /*padding=*/at::IntArrayRef{width - 1}, /*dilation=*/1, /*groups=*/weight.size(0))
                  .narrow(-1, 0, x.size(1));
  return at::silu(conv).transpose(1, 2);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The document offsets the kernels read: int64 on x's device, or null without documents.
const int64_t* document_offsets(const std::optional<at::Tensor>& cu_seqlens) {
  return cu_seqlens ? cu_seqlens->data_ptr<int64_t>() : nullptr;
}

int64_t document_count(const std::optional<at::Tensor>& cu_seqlens) { return cu_seqlens ? cu_seqlens->size(0) - 1 : 0; }

// x [B, T, C] with contiguous channels (any row and batch strides), weight [C, 1, K] contiguous
// in x's dtype; cu_seqlens, when given, contiguous int64 on x's device.
class CausalConv1dSiluFunction : public torch::autograd::Function<CausalConv1dSiluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& cu_seqlens) {
    auto out = at::empty(x.sizes(), x.options());
    c10::DeviceGuard guard(x.device());
    launch::causal_conv1d_silu_forward(launch_dtype(x.scalar_type(), "causal_conv1d_silu_cuda: x"), x.data_ptr(),
                                       x.stride(0), x.stride(1), weight.data_ptr(), out.data_ptr(),
                                       document_offsets(cu_seqlens), document_count(cu_seqlens), x.size(0),
                                       x.size(1), x.size(2), weight.size(2), current_stream(x.device()));
    ctx->save_for_backward({x, weight});
    if (cu_seqlens) ctx->saved_data["cu_seqlens"] = *cu_seqlens;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto batch = x.size(0), seq = x.size(1), channels = x.size(2), width = weight.size(2);
    std::optional<at::Tensor> cu_seqlens;
    if (ctx->saved_data.count("cu_seqlens") > 0) cu_seqlens = ctx->saved_data["cu_seqlens"].toTensor();
    auto grad_out = grads[0].to(x.scalar_type()).contiguous();
    auto grad_x = at::empty(x.sizes(), x.options());
    auto partial = at::empty({launch::causal_conv1d_partial_rows(batch, seq), channels, width},
                             x.options().dtype(at::kFloat));
    c10::DeviceGuard guard(x.device());
    launch::causal_conv1d_silu_backward(launch_dtype(x.scalar_type(), "causal_conv1d_silu_cuda: x"),
                                        grad_out.data_ptr(), x.data_ptr(), x.stride(0), x.stride(1),
                                        weight.data_ptr(), grad_x.data_ptr(), partial.data_ptr<float>(),
                                        document_offsets(cu_seqlens), document_count(cu_seqlens), batch, seq,
                                        channels, width, current_stream(x.device()));
    return {grad_x, partial.sum(0).to(weight.scalar_type()).unsqueeze(1), at::Tensor()};
  }
};

}  // namespace

at::Tensor causal_conv1d_silu_cuda(const at::Tensor& x, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& cu_seqlens) {
  if (!cuda_kernels_built())
    fail("causal_conv1d_silu_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!x.is_cuda() || weight.device() != x.device())
    fail("causal_conv1d_silu_cuda: x is on ", x.device(), " and weight on ", weight.device(),
         "; expected one CUDA device");
  check_shapes(x, weight, "causal_conv1d_silu_cuda");
  if (weight.size(2) > launch::kMaxConvWidth)
    fail("causal_conv1d_silu_cuda: the kernel width is ", weight.size(2), "; the CUDA kernels take 1..",
         launch::kMaxConvWidth);
  // The kernels read rows at any stride (the layer's x is a slice of in_proj's wider output) but
  // need contiguous channels; a single channel's stride is never used.
  auto xs = x.size(2) <= 1 || x.stride(2) == 1 ? x : x.contiguous();
  std::optional<at::Tensor> offsets;
  if (cu_seqlens) {
    document_bounds("causal_conv1d_silu_cuda", *cu_seqlens, x.size(0), x.size(1));
    offsets = cu_seqlens->to(x.device(), at::kLong).contiguous();
  }
  return CausalConv1dSiluFunction::apply(xs, weight.to(x.scalar_type()).contiguous(), offsets);
}

at::Tensor causal_conv1d_silu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& cu_seqlens) {
  check_shapes(x, weight, "causal_conv1d_silu");
  if (use_cuda_kernels(x) && weight.device() == x.device() && weight.size(2) <= launch::kMaxConvWidth)
    return causal_conv1d_silu_cuda(x, weight, cu_seqlens);
  return causal_conv1d_silu_reference(x, weight, cu_seqlens);
}

}  // namespace strata::kernels
