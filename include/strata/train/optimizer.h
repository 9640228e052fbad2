#pragma once
// AdamW (decoupled weight decay) over named parameters, with Megatron's two groups: matrices
// decay, vectors (norm scales, biases, Mamba/DeltaNet per-head scalars) do not, but for the q/k
// norms with apply_wd_to_qk_layernorm. The state is
// keyed by the parameters' canonical names, so a checkpoint is independent of module layout.
#include <ATen/ATen.h>

#include <map>
#include <string>

namespace strata::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool apply_wd_to_qk_layernorm = false;  // the q/k norm scales decay too (Megatron's flag)
};

class AdamW {
 public:
  AdamW(std::map<std::string, at::Tensor> params, AdamWOptions options);

  // One update with learning rate `lr` from the parameters' .grad (parameters without a
  // gradient are left alone).
  void step(double lr);
  void zero_grad();

  // Whether `name` is in the weight-decay group.
  bool decays(const std::string& name) const;
  int64_t steps() const { return steps_; }

  // exp_avg.<name>, exp_avg_sq.<name> and "step"; load checks every name, shape and dtype (the
  // moments float32 or narrower floating point, step an integer: core/exact_conversion.h) and
  // lists every problem in one error before changing anything.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state, const std::string& source);

 private:
  // The whole update in fused CUDA kernels where this LibTorch has them; false (nothing done)
  // otherwise, and the per-parameter loop runs instead.
  bool fused_step(double lr);

  struct Slot {
    at::Tensor param, exp_avg, exp_avg_sq;
    bool decay;
  };
  std::map<std::string, Slot> slots_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace strata::train
