#include "strata/layers/hyper_connection.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "strata/core/error.h"
#include "strata/kernels/hc_boundary.h"
#include "strata/kernels/hyper_connection.h"
#include "strata/layers/hyper_connection_maps.h"

namespace strata {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the maps depend on besides their four tensors.
struct MapSettings {
  int64_t n;
  int64_t sinkhorn_iterations;
  double eps;
  double norm_eps;
};

void check_streams(const at::Tensor& streams, int64_t n, int64_t hidden_size, const std::string& who) {
  if (streams.dim() != 4 || streams.size(2) != n || streams.size(3) != hidden_size)
    fail(who, ": streams of shape ", streams.sizes(), ", expected [B, T, ", n, ", ", hidden_size, "]");
}

// post and res from the projection f: one CUDA kernel each way where it applies, else the twin's
// ATen ops. The stored and the recomputed paths both come here, so they run the same code.
variable_list post_and_res(const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale, const MapSettings& s) {
  const auto maps = hyper_connection_post_res(f, base, scale, s.n, s.sinkhorn_iterations, s.eps);
  return {maps.post, maps.res};
}

// inputs: streams, fn, base, scale -> pre, post, res.
variable_list compute_maps(const variable_list& inputs, const MapSettings& s) {
  const auto &base = inputs[2], &scale = inputs[3];
  auto f = kernels::hc_project(inputs[0].flatten(2), inputs[1], s.norm_eps);
  auto pre = at::sigmoid(hyper_connection_map_logits(f, base, scale, 0, 0, s.n)) + s.eps;
  auto post_res = post_and_res(f, base, scale, s);
  return {pre, post_res[0], post_res[1]};
}

// inputs: f, base, scale -> post, res: the maps a fused boundary leaves to the next half.
variable_list compute_post_and_res(const variable_list& inputs, const MapSettings& s) {
  return post_and_res(inputs[0], inputs[1], inputs[2], s);
}

// Maps as one autograd node that saves only its inputs (which the collapse and the residual mix
// keep anyway): backward reruns `Rerun` on them and differentiates that rerun. The rerun executes
// the same operations on the same values as the stored path, so outputs and gradients are
// bitwise those of recompute off.
template <variable_list (*Rerun)(const variable_list&, const MapSettings&)>
struct RecomputedMapsFunction : torch::autograd::Function<RecomputedMapsFunction<Rerun>> {
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs, MapSettings settings) {
    ctx->save_for_backward(inputs.vec());
    ctx->saved_data["n"] = settings.n;
    ctx->saved_data["sinkhorn_iterations"] = settings.sinkhorn_iterations;
    ctx->saved_data["eps"] = settings.eps;
    ctx->saved_data["norm_eps"] = settings.norm_eps;
    return Rerun(inputs.vec(), settings);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const bool create_graph = at::GradMode::is_enabled();  // on only for a differentiable backward
    const MapSettings settings{ctx->saved_data["n"].toInt(), ctx->saved_data["sinkhorn_iterations"].toInt(),
                               ctx->saved_data["eps"].toDouble(), ctx->saved_data["norm_eps"].toDouble()};
    const auto saved = ctx->get_saved_variables();
    variable_list inputs, differentiated;
    for (size_t i = 0; i < saved.size(); ++i) {
      inputs.push_back(saved[i].detach().requires_grad_(ctx->needs_input_grad(i)));
      if (ctx->needs_input_grad(i)) differentiated.push_back(inputs.back());
    }
    at::AutoGradMode grad_on(true);
    auto outputs = Rerun(inputs, settings);
    auto grads = torch::autograd::grad(outputs, differentiated, grad_outputs, /*retain_graph=*/create_graph,
                                       create_graph, /*allow_unused=*/true);
    variable_list result;
    size_t next = 0;
    for (size_t i = 0; i < saved.size(); ++i) result.push_back(ctx->needs_input_grad(i) ? grads[next++] : at::Tensor());
    result.emplace_back();  // settings
    return result;
  }
};

}  // namespace

void validate(const HyperConnectionOptions& o) {
  if (o.num_residual_streams < 1)
    fail("hyper-connection options: num_residual_streams is ", o.num_residual_streams, ", expected >= 1");
  if (o.sinkhorn_iterations < 1)
    fail("hyper-connection options: sinkhorn_iterations is ", o.sinkhorn_iterations, ", expected >= 1");
  if (!(o.eps >= 0.0) || !std::isfinite(o.eps))
    fail("hyper-connection options: eps is ", o.eps, ", expected a finite value >= 0");
  if (!std::isfinite(o.init_gating_factor))
    fail("hyper-connection options: init_gating_factor is ", o.init_gating_factor, ", expected a finite value");
}

HyperConnectionOptions hyper_connection_options(const TransformerConfig& config) {
  return {.num_residual_streams = config.mhc_num_residual_streams,
          .sinkhorn_iterations = config.mhc_sinkhorn_iterations,
          .eps = config.mhc_eps,
          .init_gating_factor = config.mhc_init_gating_factor,
          .recompute = config.recomputes_mhc()};
}

HyperConnection::HyperConnection(const LayerArgs& args, const HyperConnectionOptions& options)
    : options_(options),
      layer_number_(args.layer_number),
      hidden_size_(args.config->hidden_size),
      norm_eps_(args.config->layernorm_epsilon) {
  validate(options);
  const int64_t n = options.num_residual_streams, maps_size = 2 * n + n * n;
  fn_ = register_parameter("fn", at::randn({maps_size, n * hidden_size_}) * args.config->init_method_std);
  base_ = register_parameter("base", at::zeros({maps_size}));
  scale_ = register_parameter("scale", at::full({3}, options.init_gating_factor));
}

HyperConnectionMaps HyperConnection::maps(const at::Tensor& streams) {
  check_streams(streams, options_.num_residual_streams, hidden_size_,
                cat("hyper-connection (layer ", layer_number_, ")"));
  const MapSettings settings{options_.num_residual_streams, options_.sinkhorn_iterations, options_.eps, norm_eps_};
  const variable_list inputs{streams, fn_, base_, scale_};
  const auto maps = options_.recompute ? RecomputedMapsFunction<compute_maps>::apply(at::TensorList(inputs), settings)
                                       : compute_maps(inputs, settings);
  return {maps[0], maps[1], maps[2]};
}

void HyperConnection::set_next(const std::shared_ptr<HyperConnection>& next) {
  if (next && (next->options_.num_residual_streams != options_.num_residual_streams || next->hidden_size_ != hidden_size_))
    fail("hyper-connection (layer ", layer_number_, "): the next half (layer ", next->layer_number_, ") carries ",
         next->options_.num_residual_streams, " streams of ", next->hidden_size_, ", expected ",
         options_.num_residual_streams, " of ", hidden_size_);
  next_ = next;
  prepared_.reset();
}

at::Tensor HyperConnection::sublayer_input(const at::Tensor& streams) {
  // What the previous half's fused boundary prepared serves only the streams it returned.
  auto prepared = std::move(prepared_);
  prepared_.reset();
  if (prepared && prepared->streams.is_same(streams)) {
    pending_ = HyperConnectionMaps{at::Tensor(), prepared->post, prepared->res};
    return prepared->input;
  }
  pending_ = maps(streams);
  return kernels::hc_collapse(streams, pending_->pre);
}

at::Tensor HyperConnection::combine_into_next(const at::Tensor& streams, const at::Tensor& branch,
                                              const HyperConnectionMaps& maps, HyperConnection& next) {
  const MapSettings settings{next.options_.num_residual_streams, next.options_.sinkhorn_iterations, next.options_.eps,
                             next.norm_eps_};
  auto boundary = kernels::hc_boundary(streams, branch, maps.post, maps.res,
                                       {next.fn_, next.base_, next.scale_, next.norm_eps_, next.options_.eps});
  const variable_list inputs{boundary.projection, next.base_, next.scale_};
  const auto post_res = next.options_.recompute
                            ? RecomputedMapsFunction<compute_post_and_res>::apply(at::TensorList(inputs), settings)
                            : compute_post_and_res(inputs, settings);
  next.prepared_ = PreparedInput{boundary.streams, boundary.next_input, post_res[0], post_res[1]};
  return boundary.streams;
}

at::Tensor HyperConnection::combine(const at::Tensor& streams, const MixerOutput& out, BiasDropoutAddModule& bda) {
  const auto who = cat("hyper-connection (layer ", layer_number_, ") combine");
  check_streams(streams, options_.num_residual_streams, hidden_size_, who);
  if (!pending_) fail(who, ": no maps cached; sublayer_input() must run first for this half");
  const auto maps = std::move(*pending_);
  pending_.reset();  // the module keeps no tensors (and no graph) between halves
  if (maps.post.size(0) != streams.size(0) || maps.post.size(1) != streams.size(1))
    fail(who, ": streams of shape ", streams.sizes(), ", but sublayer_input() saw [", maps.post.size(0), ", ",
         maps.post.size(1), ", ...]");
  auto branch = bda.branch(out);
  if (auto next = next_.lock()) return combine_into_next(streams, branch, maps, *next);
  return kernels::hc_combine(streams, branch, maps.post, maps.res);
}

at::Tensor expand_streams(const at::Tensor& hidden, int64_t n) {
  if (hidden.dim() != 3) fail("expand_streams: hidden of shape ", hidden.sizes(), ", expected [B, T, H]");
  if (n < 1) fail("expand_streams: n is ", n, ", expected >= 1");
  return hidden.unsqueeze(2).expand({-1, -1, n, -1}).contiguous();
}

HyperConnectionHead::HyperConnectionHead(const TransformerConfig& config, const HyperConnectionOptions& options)
    : num_streams_(options.num_residual_streams),
      hidden_size_(config.hidden_size),
      eps_(options.eps),
      norm_eps_(config.layernorm_epsilon) {
  validate(options);
  hc_fn_ = register_parameter("hc_fn", at::randn({num_streams_, num_streams_ * hidden_size_}) * config.init_method_std);
  hc_base_ = register_parameter("hc_base", at::zeros({num_streams_}));
  hc_scale_ = register_parameter("hc_scale", at::full({1}, options.init_gating_factor));
}

at::Tensor HyperConnectionHead::forward(const at::Tensor& streams) {
  check_streams(streams, num_streams_, hidden_size_, "hyper-connection head");
  auto f = kernels::hc_project(streams.flatten(2), hc_fn_, norm_eps_);
  auto pre = at::sigmoid(f * hc_scale_.to(at::kFloat) + hc_base_.to(at::kFloat)) + eps_;
  return kernels::hc_collapse(streams, pre);
}

}  // namespace strata
