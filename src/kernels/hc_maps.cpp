#include "strata/kernels/hc_maps.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "strata/core/error.h"
#include "strata/kernels/hc_maps_launch.h"

namespace strata::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const float* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

// Inputs on [tokens, M] views. Keeps f and float32 base and scale; backward reruns the forward
// from them.
class PostResFunction : public torch::autograd::Function<PostResFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& f, const at::Tensor& base,
                               const at::Tensor& scale, int64_t n, int64_t iters, double eps) {
    ctx->set_materialize_grads(false);  // an unused output's gradient stays undefined: the kernel reads zeros
    auto x = f.contiguous();
    auto b = base.to(at::kFloat).contiguous();
    auto s = scale.to(at::kFloat).contiguous();
    const int64_t tokens = x.size(0);
    auto post = at::empty({tokens, n}, x.options());
    auto res = at::empty({tokens, n, n}, x.options());
    c10::DeviceGuard guard(x.device());
    launch::hc_post_res_forward(x.data_ptr<float>(), b.data_ptr<float>(), s.data_ptr<float>(), post.data_ptr<float>(),
                                res.data_ptr<float>(), tokens, n, iters, static_cast<float>(eps),
                                current_stream(x.device()));
    ctx->save_for_backward({x, b, s});
    ctx->saved_data["n"] = n;
    ctx->saved_data["iters"] = iters;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["dtypes"] =
        std::vector<int64_t>{static_cast<int64_t>(base.scalar_type()), static_cast<int64_t>(scale.scalar_type())};
    return {post, res};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &b = saved[1], &s = saved[2];
    const int64_t n = ctx->saved_data["n"].toInt(), iters = ctx->saved_data["iters"].toInt(), tokens = x.size(0);
    auto grad_post = grads[0].defined() ? grads[0].to(at::kFloat).contiguous() : at::Tensor();
    auto grad_res = grads[1].defined() ? grads[1].to(at::kFloat).contiguous() : at::Tensor();
    auto grad_f = at::empty_like(x);
    auto grad_base = at::empty_like(b);
    auto grad_scale = at::empty_like(s);
    auto workspace = at::empty({launch::hc_post_res_workspace_floats(tokens, n, iters)}, x.options());
    c10::DeviceGuard guard(x.device());
    launch::hc_post_res_backward(x.data_ptr<float>(), b.data_ptr<float>(), s.data_ptr<float>(), data_or_null(grad_post),
                                 data_or_null(grad_res), grad_f.data_ptr<float>(), grad_base.data_ptr<float>(),
                                 grad_scale.data_ptr<float>(), workspace.data_ptr<float>(), tokens, n, iters,
                                 static_cast<float>(ctx->saved_data["eps"].toDouble()), current_stream(x.device()));
    const auto dtypes = ctx->saved_data["dtypes"].toIntVector();
    return {grad_f,
            grad_base.to(static_cast<at::ScalarType>(dtypes[0])),
            grad_scale.to(static_cast<at::ScalarType>(dtypes[1])),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

bool hc_post_res_maps_applies(const at::Tensor& f, int64_t n) {
  return use_cuda_kernels(f) && f.scalar_type() == at::kFloat && n >= 1 && n <= launch::kMaxHyperStreams &&
         f.dim() >= 1 && f.size(-1) == n * (n + 2);
}

HcPostRes hc_post_res_maps(const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale, int64_t n,
                           int64_t iters, double eps) {
  const char* who = "hc_post_res_maps";
  if (!cuda_kernels_built()) fail(who, ": this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (n < 1 || n > launch::kMaxHyperStreams) fail(who, ": n is ", n, ", expected 1..", launch::kMaxHyperStreams);
  const int64_t maps = n * (n + 2);
  if (!f.is_cuda()) fail(who, ": f is on ", f.device(), "; expected a CUDA tensor");
  if (f.scalar_type() != at::kFloat) fail(who, ": f is ", f.scalar_type(), "; expected float32");
  if (f.dim() < 1 || f.size(-1) != maps)
    fail(who, ": f of shape ", f.sizes(), "; expected [..., ", maps, "] for n ", n);
  if (base.sizes() != at::IntArrayRef{maps}) fail(who, ": base of shape ", base.sizes(), "; expected [", maps, "]");
  if (scale.sizes() != at::IntArrayRef{3}) fail(who, ": scale of shape ", scale.sizes(), "; expected [3]");
  if (!base.is_floating_point() || !scale.is_floating_point())
    fail(who, ": base is ", base.scalar_type(), " and scale ", scale.scalar_type(), "; expected floating dtypes");
  if (base.device() != f.device() || scale.device() != f.device())
    fail(who, ": base is on ", base.device(), " and scale on ", scale.device(), "; expected f's device ", f.device());
  if (iters < 1) fail(who, ": iters is ", iters, ", expected >= 1");
  if (!(eps >= 0.0) || !std::isfinite(eps)) fail(who, ": eps is ", eps, ", expected a finite value >= 0");
  const auto outs = PostResFunction::apply(f.reshape({-1, maps}), base, scale, n, iters, eps);
  return {outs[0].view(shape_with(f, 1, {n})), outs[1].view(shape_with(f, 1, {n, n}))};
}

}  // namespace strata::kernels
