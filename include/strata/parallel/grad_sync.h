#pragma once
// Data-parallel gradient synchronisation, overlapped with backward (what DDP does): parameters are
// grouped into buckets in the reverse of their registration order (roughly the order backward
// produces their gradients); a hook on each parameter's gradient accumulator counts it ready, and
// a bucket whose gradients are all ready starts its all-reduce at once while backward goes on.
// Buckets start strictly in bucket order, so every rank issues the same collectives in the same
// order whatever order its hooks fire in.
//
// Dense parameters are averaged over dp; expert parameters (split over ep) are summed over the
// ranks that hold the same experts and divided by dp, since each expert's gradient already holds
// the tokens of its whole ep group. Parameters that are whole on every tensor-parallel rank but
// receive partial gradients there (model_state.h) are summed over tp afterwards.
#include <torch/csrc/autograd/function.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "strata/model/language_model.h"
#include "strata/parallel/collectives.h"
#include "strata/parallel/model_state.h"

namespace strata::parallel {

constexpr int64_t kDefaultBucketBytes = 25ll << 20;  // Megatron's and DDP's default size

class GradientSync {
 public:
  // Hooks every parameter of `model` (which must outlive this object).
  explicit GradientSync(LanguageModel& model, int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Before each backward pass: whether it is the last of the step to add to the gradients it
  // reaches (gradient accumulation reduces only once: after the last micro-batch, or with several
  // model chunks after each chunk's last micro-batch, whose gradients are then whole).
  void prepare_backward(bool last_for_its_gradients);
  // After the last backward pass: starts what has not started (gradients that never became ready
  // count as zero), waits, and leaves the synchronised gradients in .grad. A parameter that got no
  // gradient on any rank keeps none, as in a single-process run.
  void finish();

  // clip_grad_norm over the whole model: each distinct gradient counted once, however many ranks
  // hold a copy; every rank scales its gradients by the same factor. Returns the norm before.
  double clip_grad_norm(double max_norm);

  size_t num_buckets() const { return buckets_.size(); }
  // Buckets whose all-reduce a gradient hook started during this step's backward (the overlap),
  // until finish().
  size_t buckets_started_in_backward() const { return started_in_backward_; }
  const std::map<std::string, ParameterPlacement>& placements() const { return placements_; }

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into params_
    Group group;                  // dp, or expert_dp for experts
    double scale = 1.0;
    size_t ready = 0;
    at::Tensor buffer;            // flattened gradients, then one has-gradient flag per member
    PendingWork work;
  };
  struct Param {
    std::string name;
    at::Tensor tensor;
    ParameterPlacement placement;
    size_t bucket = SIZE_MAX;  // SIZE_MAX: not data-parallel (dp of one)
    bool ready = false;
    std::shared_ptr<torch::autograd::Node> accumulator;
    uintptr_t hook = 0;
  };

  void mark_ready(size_t index);
  void launch(size_t bucket);
  void sum_partial_gradients_over_tp();

  ProcessGroups pg_;
  std::map<std::string, ParameterPlacement> placements_;
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  size_t started_in_backward_ = 0;
  bool armed_ = false;
  std::mutex mutex_;  // hooks may run on autograd's device threads
};

}  // namespace strata::parallel
