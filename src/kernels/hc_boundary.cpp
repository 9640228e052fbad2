#include "strata/kernels/hc_boundary.h"

#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>

#include "strata/core/error.h"
#include "strata/kernels/dispatch.h"
#include "strata/kernels/hc_boundary_launch.h"
#include "strata/kernels/hyper_connection.h"

namespace strata::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// pre = sigmoid(scale[0] f[..., :n] + base[:n]) + eps, as layers/hyper_connection.cpp's maps
// compute it (the same ops, so the same bits). Returns the sigmoid; pre is it + eps.
at::Tensor pre_sigmoid(const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale, int64_t n) {
  return at::sigmoid(f.narrow(-1, 0, n) * scale.to(at::kFloat)[0] + base.to(at::kFloat).narrow(0, 0, n));
}

// The forward's results on [tokens, n, H] views: the new streams, the next input, f, and the RMS
// factor rstd [tokens] the backward needs.
struct Forward {
  at::Tensor new_streams, next_input, f, rstd;
};

// The twin: the unfused twins' ops in their order.
Forward forward_aten(const at::Tensor& s, const at::Tensor& b, const at::Tensor& post, const at::Tensor& res,
                     const HcNextMaps& next) {
  const int64_t n = s.size(1);
  auto new_streams = hc_combine_reference(s, b, post, res);
  auto flat = new_streams.flatten(1).to(at::kFloat);
  auto rstd = at::rsqrt(flat.square().mean(-1) + next.norm_eps);
  auto f = hc_project_reference(new_streams.flatten(1), next.fn, next.norm_eps);
  auto pre = pre_sigmoid(f, next.base, next.scale, n) + next.eps;
  return {new_streams, hc_collapse_reference(new_streams, pre), f, rstd};
}

Forward forward_cuda(const at::Tensor& s, const at::Tensor& b, const at::Tensor& post, const at::Tensor& res,
                     const HcNextMaps& next) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const int64_t tokens = s.size(0), n = s.size(1), hidden = s.size(2);
  const auto dtype = launch_dtype(s.scalar_type(), "hc_boundary: streams");
  const auto stream = current_stream(s.device());
  c10::DeviceGuard guard(s.device());
  auto new_streams = at::empty_like(s);
  auto rstd = at::empty({tokens}, s.options().dtype(at::kFloat));
  auto f = at::empty({tokens, next.fn.size(0)}, s.options().dtype(at::kFloat));
  auto next_input = at::empty({tokens, hidden}, s.options());
  const auto base = next.base.to(at::kFloat).contiguous(), scale = next.scale.to(at::kFloat).contiguous();
  // bfloat16 streams: one kernel, the projection's product on tensor cores inside it.
  const auto aligned = [](const at::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0; };
  if (s.scalar_type() == at::kBFloat16 && launch::hc_boundary_forward_fits(n, hidden) && aligned(s) && aligned(b)) {
    const auto fn = next.fn.to(at::kBFloat16).contiguous();
    launch::hc_boundary_forward(s.data_ptr(), b.data_ptr(), post.data_ptr<float>(), res.data_ptr<float>(),
                                fn.data_ptr(), base.data_ptr<float>(), scale.data_ptr<float>(),
                                static_cast<float>(next.norm_eps), static_cast<float>(next.eps),
                                new_streams.data_ptr(), next_input.data_ptr(), f.data_ptr<float>(),
                                rstd.data_ptr<float>(), tokens, n, hidden, stream);
    return {new_streams, next_input, f, rstd};
  }
  launch::hc_boundary_combine(dtype, s.data_ptr(), b.data_ptr(), post.data_ptr<float>(), res.data_ptr<float>(),
                              new_streams.data_ptr(), rstd.data_ptr<float>(), tokens, n, hidden,
                              static_cast<float>(next.norm_eps), stream);
  // Otherwise the combine, then the projection's product in the streams' dtype with float32
  // accumulation (as hc_project_cuda), then the RMS factor, the pre map and the collapse in one
  // kernel.
  auto product = at::mm(new_streams.view({tokens, n * hidden}), next.fn.to(s.scalar_type()).t());
  launch::hc_boundary_collapse(dtype, new_streams.data_ptr(), product.data_ptr(), rstd.data_ptr<float>(),
                               base.data_ptr<float>(), scale.data_ptr<float>(), static_cast<float>(next.eps),
                               next_input.data_ptr(), f.data_ptr<float>(), tokens, n, hidden, stream);
  return {new_streams, next_input, f, rstd};
}

// What the backward hands back, on [tokens, ...] views.
struct Grads {
  at::Tensor streams, branch, post, res, fn, base, scale;
};

// What reaches base [M] and scale [3] through pre, from the per-token dL/dlogit and dL/dlogit f.
struct PreBiasGrads {
  at::Tensor base, scale;
};

PreBiasGrads pre_bias_grads(const at::Tensor& grad_logit, const at::Tensor& grad_logit_f, int64_t maps) {
  const int64_t n = grad_logit.size(1);
  auto base = at::zeros({maps}, grad_logit.options());
  base.narrow(0, 0, n).copy_(grad_logit.sum(0));
  auto scale = at::zeros({3}, grad_logit.options());
  scale.narrow(0, 0, 1).copy_(grad_logit_f.sum().reshape({1}));
  return {base, scale};
}

// The backward's common part, on the few per-token values: from dL/dpre (`grad_pre`, [tokens, n])
// and dL/df (`grad_f`, undefined for none) the projection's total dL/df and what reaches base and
// scale through pre; then the projection's a = rstd dL/df and its RMS term's coefficient
// c = rstd^2 / D sum(dL/df f) (hc_project's backward).
struct ProjectionGrad {
  at::Tensor a, c, base, scale;
};

ProjectionGrad projection_grad(const at::Tensor& grad_pre, const at::Tensor& grad_f, const at::Tensor& f,
                               const at::Tensor& rstd, const HcNextMaps& next, int64_t n, int64_t width) {
  auto sig = pre_sigmoid(f, next.base, next.scale, n);
  auto grad_logit = grad_pre * sig * (1 - sig);
  auto df = grad_f.defined() ? grad_f.to(at::kFloat).clone() : at::zeros_like(f);
  df.narrow(1, 0, n).add_(grad_logit * next.scale.to(at::kFloat)[0]);
  auto a = df * rstd.unsqueeze(1);
  auto c = (df * f).sum(1) * rstd.square() / static_cast<double>(width);
  const auto bias = pre_bias_grads(grad_logit, grad_logit * f.narrow(1, 0, n), f.size(1));
  return {a, c, bias.base, bias.scale};
}

// The twin of the backward, float32 math throughout.
Grads backward_aten(const at::Tensor& grad_new, const at::Tensor& grad_input, const at::Tensor& grad_f,
                    const at::Tensor& s, const at::Tensor& b, const at::Tensor& post, const at::Tensor& res,
                    const at::Tensor& new_streams, const at::Tensor& f, const at::Tensor& rstd, const HcNextMaps& next) {
  const int64_t tokens = s.size(0), n = s.size(1), hidden = s.size(2);
  auto s2 = new_streams.to(at::kFloat);
  auto grad_pre = grad_input.defined() ? (grad_input.to(at::kFloat).unsqueeze(1) * s2).sum(-1) : at::zeros({tokens, n}, f.options());
  const auto p = projection_grad(grad_pre, grad_f, f, rstd, next, n, n * hidden);
  auto g = at::mm(p.a, next.fn.to(at::kFloat)).view({tokens, n, hidden}) - p.c.view({tokens, 1, 1}) * s2;
  if (grad_new.defined()) g = g + grad_new.to(at::kFloat);
  if (grad_input.defined()) {
    auto pre = pre_sigmoid(f, next.base, next.scale, n) + next.eps;
    g = g + pre.unsqueeze(-1) * grad_input.to(at::kFloat).unsqueeze(1);
  }
  Grads out;
  out.streams = at::matmul(res, g).to(s.scalar_type());
  out.branch = (post.unsqueeze(-1) * g).sum(1).to(b.scalar_type());
  out.post = (g * b.to(at::kFloat).unsqueeze(1)).sum(-1);
  out.res = at::matmul(s.to(at::kFloat), g.transpose(1, 2));
  out.fn = at::mm(p.a.t(), s2.flatten(1));
  out.base = p.base;
  out.scale = p.scale;
  return out;
}

Grads backward_cuda(const at::Tensor& grad_new, const at::Tensor& grad_input, const at::Tensor& grad_f,
                    const at::Tensor& s, const at::Tensor& b, const at::Tensor& post, const at::Tensor& res,
                    const at::Tensor& new_streams, const at::Tensor& f, const at::Tensor& rstd, const HcNextMaps& next) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const int64_t tokens = s.size(0), n = s.size(1), hidden = s.size(2);
  const auto type = s.scalar_type();
  const auto dtype = launch_dtype(type, "hc_boundary: streams");
  const auto stream = current_stream(s.device());
  c10::DeviceGuard guard(s.device());
  auto gi = grad_input.defined() ? grad_input.to(type).contiguous() : at::Tensor();
  auto gn = grad_new.defined() ? grad_new.to(type).contiguous() : at::Tensor();
  auto gf = grad_f.defined() ? grad_f.to(at::kFloat).contiguous() : at::Tensor();
  const auto base = next.base.to(at::kFloat).contiguous(), scale = next.scale.to(at::kFloat).contiguous();
  const auto per_token = f.options();
  auto a = at::empty({tokens, f.size(1)}, s.options());
  auto c = at::empty({tokens}, per_token), pre = at::empty({tokens, n}, per_token);
  auto grad_logit = at::empty({tokens, n}, per_token), grad_logit_f = at::empty({tokens, n}, per_token);
  launch::hc_boundary_projection_grad(dtype, gi.defined() ? gi.data_ptr() : nullptr, new_streams.data_ptr(),
                                      f.data_ptr<float>(), gf.defined() ? gf.data_ptr<float>() : nullptr,
                                      rstd.data_ptr<float>(), base.data_ptr<float>(), scale.data_ptr<float>(),
                                      static_cast<float>(next.eps), a.data_ptr(), c.data_ptr<float>(),
                                      pre.data_ptr<float>(), grad_logit.data_ptr<float>(),
                                      grad_logit_f.data_ptr<float>(), tokens, n, hidden, stream);
  auto proj = at::mm(a, next.fn.to(type));  // [tokens, n * H]: the projection's product term
  Grads out;
  out.streams = at::empty_like(s);
  out.branch = at::empty_like(b);
  out.post = at::empty({tokens, n}, f.options());
  out.res = at::empty({tokens, n, n}, f.options());
  launch::hc_boundary_backward(dtype, gn.defined() ? gn.data_ptr() : nullptr, gi.defined() ? gi.data_ptr() : nullptr,
                               pre.data_ptr<float>(), proj.data_ptr(), c.data_ptr<float>(), new_streams.data_ptr(),
                               s.data_ptr(), b.data_ptr(), post.data_ptr<float>(), res.data_ptr<float>(),
                               out.streams.data_ptr(), out.branch.data_ptr(), out.post.data_ptr<float>(),
                               out.res.data_ptr<float>(), tokens, n, hidden, stream);
  out.fn = at::mm(a.t(), new_streams.view({tokens, n * hidden}));
  out.base = at::empty({f.size(1)}, per_token);
  out.scale = at::empty({3}, per_token);
  launch::hc_boundary_bias_grads(grad_logit.data_ptr<float>(), grad_logit_f.data_ptr<float>(), tokens, n,
                                 out.base.data_ptr<float>(), out.scale.data_ptr<float>(), stream);
  return out;
}

bool runs_kernels(const at::Tensor& s) {
  return use_cuda_kernels(s) && s.size(1) >= 1 && s.size(1) <= launch::kMaxHyperStreams;
}

class BoundaryFunction : public torch::autograd::Function<BoundaryFunction> {
 public:
  // Inputs on [tokens, ...] views; streams and branch already in one dtype.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& streams, const at::Tensor& branch,
                               const at::Tensor& post, const at::Tensor& res, const at::Tensor& fn,
                               const at::Tensor& base, const at::Tensor& scale, double norm_eps, double eps) {
    ctx->set_materialize_grads(false);  // an unused output's gradient stays undefined, not a zero tensor
    const HcNextMaps next{fn, base, scale, norm_eps, eps};
    auto s = streams.contiguous();
    auto b = branch.contiguous();
    auto p = post.to(at::kFloat).contiguous();
    auto r = res.to(at::kFloat).contiguous();
    const auto out = runs_kernels(s) ? forward_cuda(s, b, p, r, next) : forward_aten(s, b, p, r, next);
    ctx->save_for_backward({s, b, p, r, fn, base, scale, out.new_streams, out.f, out.rstd});
    ctx->saved_data["eps"] = std::vector<double>{norm_eps, eps};
    ctx->saved_data["dtypes"] = std::vector<int64_t>{static_cast<int64_t>(post.scalar_type()),
                                                     static_cast<int64_t>(res.scalar_type())};
    return {out.new_streams, out.next_input, out.f};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &s = saved[0], &b = saved[1], &p = saved[2], &r = saved[3];
    const auto eps = ctx->saved_data["eps"].toDoubleVector();
    const HcNextMaps next{saved[4], saved[5], saved[6], eps[0], eps[1]};
    const auto &new_streams = saved[7], &f = saved[8], &rstd = saved[9];
    const auto out = runs_kernels(s) ? backward_cuda(grads[0], grads[1], grads[2], s, b, p, r, new_streams, f, rstd, next)
                                     : backward_aten(grads[0], grads[1], grads[2], s, b, p, r, new_streams, f, rstd, next);
    const auto dtypes = ctx->saved_data["dtypes"].toIntVector();
    auto as = [](const at::Tensor& g, const at::Tensor& like) { return g.to(like.scalar_type()); };
    return {out.streams,
            out.branch,
            out.post.to(static_cast<at::ScalarType>(dtypes[0])),
            out.res.to(static_cast<at::ScalarType>(dtypes[1])),
            as(out.fn, next.fn),
            as(out.base, next.base),
            as(out.scale, next.scale),
            at::Tensor(),
            at::Tensor()};
  }
};

void check_shapes(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post, const at::Tensor& res,
                  const HcNextMaps& next) {
  const char* who = "hc_boundary";
  if (streams.dim() < 3) fail(who, ": streams of shape ", streams.sizes(), "; expected [..., n, H]");
  const int64_t n = streams.size(-2), hidden = streams.size(-1), maps = 2 * n + n * n;
  const auto lead = shape_with(streams, 2, {});
  auto expect = [&](const char* name, const at::Tensor& t, std::vector<int64_t> shape) {
    if (t.sizes() != at::IntArrayRef(shape))
      fail(who, ": ", name, " of shape ", t.sizes(), " for streams of shape ", streams.sizes(), "; expected ",
           at::IntArrayRef(shape));
  };
  auto with_lead = [&](std::initializer_list<int64_t> tail) {
    auto shape = lead;
    shape.insert(shape.end(), tail);
    return shape;
  };
  expect("branch", branch, with_lead({hidden}));
  expect("post", post, with_lead({n}));
  expect("res", res, with_lead({n, n}));
  expect("fn", next.fn, {maps, n * hidden});
  expect("base", next.base, {maps});
  expect("scale", next.scale, {3});
}

}  // namespace

HcBoundary hc_boundary(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                       const at::Tensor& res, const HcNextMaps& next) {
  check_shapes(streams, branch, post, res, next);
  const int64_t n = streams.size(-2), hidden = streams.size(-1);
  const auto dtype = at::promote_types(streams.scalar_type(), branch.scalar_type());
  auto outs = BoundaryFunction::apply(streams.to(dtype).reshape({-1, n, hidden}), branch.to(dtype).reshape({-1, hidden}),
                                      post.reshape({-1, n}), res.reshape({-1, n, n}), next.fn, next.base, next.scale,
                                      next.norm_eps, next.eps);
  return {outs[0].view(streams.sizes()), outs[1].view(branch.sizes()),
          outs[2].view(shape_with(streams, 2, {next.fn.size(0)}))};
}

HcBoundary hc_boundary_unfused(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                               const at::Tensor& res, const HcNextMaps& next) {
  check_shapes(streams, branch, post, res, next);
  auto new_streams = hc_combine(streams, branch, post, res);
  auto f = hc_project(new_streams.flatten(-2), next.fn, next.norm_eps);
  auto pre = pre_sigmoid(f, next.base, next.scale, streams.size(-2)) + next.eps;
  return {new_streams, hc_collapse(new_streams, pre), f};
}

}  // namespace strata::kernels
