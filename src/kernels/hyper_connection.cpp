#include "strata/kernels/hyper_connection.h"

#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"

namespace strata::kernels {

at::Tensor hc_project_reference(const at::Tensor& flat, const at::Tensor& weight, double eps) {
  auto x = flat.to(at::kFloat);
  return at::linear(x * at::rsqrt(x.square().mean(-1, /*keepdim=*/true) + eps), weight.to(at::kFloat));
}

at::Tensor hc_collapse_reference(const at::Tensor& streams, const at::Tensor& weights) {
  return (weights.unsqueeze(-1) * streams).sum(-2).to(streams.scalar_type());
}

at::Tensor hc_combine_reference(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                                const at::Tensor& res) {
  const auto dtype = streams.scalar_type();
  return post.to(dtype).unsqueeze(-1) * branch.unsqueeze(-2) + at::matmul(res.to(dtype).transpose(-1, -2), streams);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// f = rstd * (x @ w^T) with rstd = rsqrt(mean(x^2) + eps): d x = a @ w - c x with a = rstd * df and
// c = rstd^2 / D * sum(df * f) (the RMS factor's own gradient), d w = a^T @ x. The products run
// in x's dtype whatever autocast says (float32 streams keep float32), float32 accumulation.
class ProjectFunction : public torch::autograd::Function<ProjectFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& flat, const at::Tensor& weight, double eps) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const int64_t cols = flat.size(-1);
    auto x = flat.reshape({-1, cols}).contiguous();
    auto rstd = at::empty({x.size(0)}, x.options().dtype(at::kFloat));
    c10::DeviceGuard guard(x.device());
    launch::row_rstd(launch_dtype(x.scalar_type(), "hc_project_cuda: flat"), x.data_ptr(), rstd.data_ptr<float>(),
                     x.size(0), cols, static_cast<float>(eps), current_stream(x.device()));
    auto f = at::mm(x, weight.to(x.scalar_type()).t()).to(at::kFloat) * rstd.unsqueeze(1);
    ctx->save_for_backward({x, weight, rstd, f});
    ctx->saved_data["flat_sizes"] = flat.sizes().vec();
    return f.view(shape_with(flat, 1, {weight.size(0)}));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &rstd = saved[2], &f = saved[3];
    auto df = grads[0].reshape(f.sizes()).to(at::kFloat);
    auto a = (df * rstd.unsqueeze(1)).to(x.scalar_type());
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      auto c = (df * f).sum(1) * rstd.square() / static_cast<double>(x.size(1));
      dx = at::mm(a, weight.to(x.scalar_type()));
      dx.addcmul_(x, c.neg().unsqueeze(1).to(x.scalar_type()));
      dx = dx.view(ctx->saved_data["flat_sizes"].toIntVector());
    }
    if (ctx->needs_input_grad(1)) dw = at::mm(a.t(), x).to(weight.scalar_type());
    return {dx, dw, at::Tensor()};
  }
};

class CollapseFunction : public torch::autograd::Function<CollapseFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& streams, const at::Tensor& weights) {
    auto s = streams.contiguous();
    auto w = weights.to(at::kFloat).contiguous();
    const int64_t n = s.size(-2), hidden = s.size(-1), tokens = w.numel() / n;
    auto out = at::empty(shape_with(s, 2, {hidden}), s.options());
    c10::DeviceGuard guard(s.device());
    launch::hc_collapse_forward(launch_dtype(s.scalar_type(), "hc_collapse_cuda: streams"), s.data_ptr(),
                                w.data_ptr<float>(), out.data_ptr(), tokens, n, hidden, current_stream(s.device()));
    ctx->save_for_backward({s, w});
    ctx->saved_data["weights_dtype"] = static_cast<int64_t>(weights.scalar_type());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &s = saved[0], &w = saved[1];
    const int64_t n = s.size(-2), hidden = s.size(-1), tokens = w.numel() / n;
    auto grad_out = grads[0].to(s.scalar_type()).contiguous();
    auto grad_streams = at::empty_like(s);
    auto grad_weights = at::empty_like(w);
    c10::DeviceGuard guard(s.device());
    launch::hc_collapse_backward(launch_dtype(s.scalar_type(), "hc_collapse_cuda: streams"), grad_out.data_ptr(),
                                 s.data_ptr(), w.data_ptr<float>(), grad_streams.data_ptr(),
                                 grad_weights.data_ptr<float>(), tokens, n, hidden, current_stream(s.device()));
    const auto weights_dtype = static_cast<at::ScalarType>(ctx->saved_data["weights_dtype"].toInt());
    return {grad_streams, grad_weights.to(weights_dtype)};
  }
};

class CombineFunction : public torch::autograd::Function<CombineFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& streams, const at::Tensor& branch,
                            const at::Tensor& post, const at::Tensor& res) {
    // One dtype for streams, branch and result: the promoted one, as the twin's sum gives.
    const auto dtype = at::promote_types(streams.scalar_type(), branch.scalar_type());
    auto s = streams.to(dtype).contiguous();
    auto b = branch.to(dtype).contiguous();
    auto p = post.to(at::kFloat).contiguous();
    auto r = res.to(at::kFloat).contiguous();
    const int64_t n = s.size(-2), hidden = s.size(-1), tokens = p.numel() / n;
    auto out = at::empty_like(s);
    c10::DeviceGuard guard(s.device());
    launch::hc_combine_forward(launch_dtype(dtype, "hc_combine_cuda: streams"), s.data_ptr(), b.data_ptr(),
                               p.data_ptr<float>(), r.data_ptr<float>(), out.data_ptr(), tokens, n, hidden,
                               current_stream(s.device()));
    ctx->save_for_backward({s, b, p, r});
    ctx->saved_data["dtypes"] = std::vector<int64_t>{
        static_cast<int64_t>(streams.scalar_type()), static_cast<int64_t>(branch.scalar_type()),
        static_cast<int64_t>(post.scalar_type()), static_cast<int64_t>(res.scalar_type())};
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &s = saved[0], &b = saved[1], &p = saved[2], &r = saved[3];
    const int64_t n = s.size(-2), hidden = s.size(-1), tokens = p.numel() / n;
    auto grad_out = grads[0].to(s.scalar_type()).contiguous();
    auto grad_streams = at::empty_like(s);
    auto grad_branch = at::empty_like(b);
    auto grad_post = at::empty_like(p);
    auto grad_res = at::empty_like(r);
    c10::DeviceGuard guard(s.device());
    launch::hc_combine_backward(launch_dtype(s.scalar_type(), "hc_combine_cuda: streams"), grad_out.data_ptr(),
                                s.data_ptr(), b.data_ptr(), p.data_ptr<float>(), r.data_ptr<float>(),
                                grad_streams.data_ptr(), grad_branch.data_ptr(), grad_post.data_ptr<float>(),
                                grad_res.data_ptr<float>(), tokens, n, hidden, current_stream(s.device()));
    const auto dtypes = ctx->saved_data["dtypes"].toIntVector();
    auto as = [&](const at::Tensor& g, size_t i) { return g.to(static_cast<at::ScalarType>(dtypes[i])); };
    return {as(grad_streams, 0), as(grad_branch, 1), as(grad_post, 2), as(grad_res, 3)};
  }
};

void require_cuda_build(const char* who) {
  if (!cuda_kernels_built()) fail(who, ": this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
}

void require_on_cuda(const char* who, const char* name, const at::Tensor& t) {
  if (!t.is_cuda()) fail(who, ": ", name, " is on ", t.device(), "; expected a CUDA tensor");
}

// streams [..., n, H] with 1 <= n <= kMaxHyperStreams and per-token maps of `map_dims` trailing
// dims of size n whose leading dims equal the streams'.
void check_streams_and_map(const char* who, const at::Tensor& streams, const char* map_name, const at::Tensor& map,
                           int64_t map_dims) {
  if (streams.dim() < 2) fail(who, ": streams of shape ", streams.sizes(), "; expected [..., n, H]");
  const int64_t n = streams.size(-2);
  if (n < 1 || n > launch::kMaxHyperStreams)
    fail(who, ": ", n, " streams (shape ", streams.sizes(), "); the kernels take 1..", launch::kMaxHyperStreams);
  auto expected = shape_with(streams, 2, {});
  for (int64_t i = 0; i < map_dims; ++i) expected.push_back(n);
  if (map.sizes() != at::IntArrayRef(expected))
    fail(who, ": ", map_name, " of shape ", map.sizes(), " for streams of shape ", streams.sizes(), "; expected ",
         at::IntArrayRef(expected));
}

bool streams_fit_kernels(const at::Tensor& streams) {
  return use_cuda_kernels(streams) && streams.dim() >= 2 && streams.size(-2) >= 1 &&
         streams.size(-2) <= launch::kMaxHyperStreams;
}

}  // namespace

at::Tensor hc_project_cuda(const at::Tensor& flat, const at::Tensor& weight, double eps) {
  const char* who = "hc_project_cuda";
  require_cuda_build(who);
  require_on_cuda(who, "flat", flat);
  require_on_cuda(who, "weight", weight);
  if (flat.dim() < 1 || weight.dim() != 2 || weight.size(1) != flat.size(-1))
    fail(who, ": flat of shape ", flat.sizes(), " and weight of shape ", weight.sizes(), "; expected [..., D] and [M, D]");
  return ProjectFunction::apply(flat, weight, eps);
}

at::Tensor hc_project(const at::Tensor& flat, const at::Tensor& weight, double eps) {
  if (use_cuda_kernels(flat) && weight.is_cuda() && weight.dim() == 2)
    return hc_project_cuda(flat, weight, eps);
  return hc_project_reference(flat, weight, eps);
}

at::Tensor hc_collapse_cuda(const at::Tensor& streams, const at::Tensor& weights) {
  const char* who = "hc_collapse_cuda";
  require_cuda_build(who);
  require_on_cuda(who, "streams", streams);
  require_on_cuda(who, "weights", weights);
  check_streams_and_map(who, streams, "weights", weights, 1);
  return CollapseFunction::apply(streams, weights);
}

at::Tensor hc_collapse(const at::Tensor& streams, const at::Tensor& weights) {
  if (streams_fit_kernels(streams) && weights.is_cuda()) return hc_collapse_cuda(streams, weights);
  return hc_collapse_reference(streams, weights);
}

at::Tensor hc_combine_cuda(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                           const at::Tensor& res) {
  const char* who = "hc_combine_cuda";
  require_cuda_build(who);
  for (const auto& [name, t] : {std::pair{"streams", &streams}, {"branch", &branch}, {"post", &post}, {"res", &res}})
    require_on_cuda(who, name, *t);
  check_streams_and_map(who, streams, "post", post, 1);
  check_streams_and_map(who, streams, "res", res, 2);
  if (branch.sizes() != at::IntArrayRef(shape_with(streams, 2, {streams.size(-1)})))
    fail(who, ": branch of shape ", branch.sizes(), " for streams of shape ", streams.sizes(), "; expected [..., H]");
  launch_dtype(branch.scalar_type(), "hc_combine_cuda: branch");
  return CombineFunction::apply(streams, branch, post, res);
}

at::Tensor hc_combine(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                      const at::Tensor& res) {
  if (streams_fit_kernels(streams) && use_cuda_kernels(branch) && post.is_cuda() && res.is_cuda())
    return hc_combine_cuda(streams, branch, post, res);
  return hc_combine_reference(streams, branch, post, res);
}

}  // namespace strata::kernels
