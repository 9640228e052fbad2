#pragma once
// Pipeline-parallel schedules over the stages of a model split by its layer pattern's '|' marks
// (or evenly): each pp rank holds one stage (LanguageModel with its PipelineRole), activations go
// forward to the next stage and their gradients come back, point to point over the pp group.
//
// 1F1B (PipeDream-Flush, Megatron's default): stage r first runs pp - r - 1 forward passes
// (warm-up), then alternates one forward and one backward, then finishes the outstanding
// backwards, so at most pp - r micro-batches hold activations at a time. Sends do not block;
// receives do, and each message is tagged by micro-batch so nothing can pair up wrongly.
#include <functional>

#include "strata/model/language_model.h"
#include "strata/parallel/grad_sync.h"

namespace strata::parallel {

struct PipelineCallbacks {
  // Token ids of micro-batch i (read on the first stage only).
  std::function<at::Tensor(int64_t i)> input_ids;
  // Runs the stage: model.forward under whatever the caller wants around it (autocast).
  std::function<at::Tensor(const at::Tensor& input, ForwardContext& ctx)> forward;
  // On the last stage: the loss of micro-batch i from its logits, as it enters backward (already
  // divided by the number of micro-batches); the callback may record statistics.
  std::function<at::Tensor(int64_t i, const at::Tensor& logits)> loss;
  // What each stage's auxiliary losses (MoE load balancing) are multiplied by before backward.
  double aux_loss_scale = 1.0;
};

// Forward and backward of `num_micro_batches` micro-batches on this rank's stage, 1F1B. With a
// GradientSync, the last backward of the step starts the data-parallel reductions (the caller
// then calls sync->finish()).
void forward_backward_1f1b(LanguageModel& model, int64_t num_micro_batches, const PipelineCallbacks& callbacks,
                           GradientSync* sync);

// Forward only (evaluation): every micro-batch flows through the stages; the last stage calls
// callbacks.loss, whose result is not differentiated.
void forward_only(LanguageModel& model, int64_t num_micro_batches, const PipelineCallbacks& callbacks);

}  // namespace strata::parallel
