#include "strata/model/recompute.h"

#include <torch/csrc/autograd/custom_function.h>

#include <optional>

#include "strata/core/error.h"

namespace strata {

namespace {

// Holds the function across forward and backward (autograd keeps only IValues).
struct Closure : torch::CustomClassHolder {
  std::function<std::vector<at::Tensor>(const at::Tensor&)> fn;
  at::Tensor cpu_rng_state;
  std::optional<at::Device> cuda_device;  // the input's GPU, whose generator dropout draws from there
  at::Tensor cuda_rng_state;
};

// A GPU's default generator, through LibTorch's device hooks (no CUDA headers needed).
at::Generator cuda_generator(const at::Device& device) { return at::globalContext().defaultGenerator(device); }

struct RecomputeFunction : torch::autograd::Function<RecomputeFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                                                c10::intrusive_ptr<Closure> closure) {
    closure->cpu_rng_state = at::detail::getDefaultCPUGenerator().get_state();
    if (input.is_cuda()) {
      closure->cuda_device = input.device();
      closure->cuda_rng_state = cuda_generator(input.device()).get_state();
    }
    torch::autograd::variable_list out;
    {
      at::NoGradGuard no_grad;
      out = closure->fn(input);
    }
    ctx->save_for_backward({input});
    ctx->saved_data["closure"] = c10::IValue::make_capsule(closure);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto input = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto closure = c10::static_intrusive_pointer_cast<Closure>(ctx->saved_data["closure"].toCapsule());
    // Replay with the forward's RNG states (dropout masks must match), then restore the streams.
    auto generator = at::detail::getDefaultCPUGenerator();
    const auto rng_now = generator.get_state();
    generator.set_state(closure->cpu_rng_state);
    std::optional<at::Tensor> cuda_rng_now;
    if (closure->cuda_device) {
      auto gpu = cuda_generator(*closure->cuda_device);
      cuda_rng_now = gpu.get_state();
      gpu.set_state(closure->cuda_rng_state);
    }
    torch::autograd::variable_list out;
    {
      at::AutoGradMode grad(true);
      out = closure->fn(input);
    }
    generator.set_state(rng_now);
    if (cuda_rng_now) cuda_generator(*closure->cuda_device).set_state(*cuda_rng_now);
    if (out.size() != grad_outputs.size())
      fail("recompute: the replay returned ", out.size(), " outputs, the first run ", grad_outputs.size(),
           "; a recomputed function must return the same outputs each time");
    // Outputs that came out constant in the replay (no parameter made them) pass no gradient on.
    torch::autograd::variable_list replayed, grads;
    for (size_t i = 0; i < out.size(); ++i) {
      if (!out[i].requires_grad()) continue;
      replayed.push_back(out[i]);
      grads.push_back(grad_outputs[i]);
    }
    // Parameter gradients accumulate into .grad here; the input's gradient is returned.
    torch::autograd::backward(replayed, grads);
    return {input.grad(), at::Tensor()};
  }
};

}  // namespace

std::vector<at::Tensor> recompute(const std::function<std::vector<at::Tensor>(const at::Tensor&)>& fn,
                                  const at::Tensor& input) {
  auto closure = c10::make_intrusive<Closure>();
  closure->fn = fn;
  return RecomputeFunction::apply(input, closure);
}

}  // namespace strata
