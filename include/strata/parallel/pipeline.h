#pragma once
// Pipeline-parallel schedules over the stages of a model split by its layer pattern's '|' marks
// (or evenly, or with uneven first and last stages): each pp rank holds one stage, or several
// virtual stages as model chunks (LanguageModel::forward_chunk); activations go forward to the
// next stage and their gradients come back, point to point over the pp group. The order of the
// passes is pipeline_schedule.h's: 1F1B with one chunk per rank, interleaved 1F1B with several.
// Sends do not block; receives do, and each message is tagged by micro-batch and by the boundary
// between stages it crosses, so nothing can pair up wrongly.
#include <functional>

#include "strata/model/language_model.h"
#include "strata/parallel/grad_sync.h"

namespace strata::parallel {

struct PipelineCallbacks {
  // Token ids of micro-batch i: the first stage embeds them, and every stage hands them to its
  // layers (ForwardContext::input_ids, for hash-routed MoE layers).
  std::function<at::Tensor(int64_t i)> input_ids;
  // Runs model chunk `chunk` (0 with one stage per rank): model.forward_chunk under whatever the
  // caller wants around it (autocast).
  std::function<at::Tensor(int chunk, const at::Tensor& input, ForwardContext& ctx)> forward;
  // On the last stage: the loss of micro-batch i from its logits, as it enters backward (already
  // divided by the number of micro-batches); the callback may record statistics.
  std::function<at::Tensor(int64_t i, const at::Tensor& logits)> loss;
  // What each stage's auxiliary losses (MoE load balancing) are multiplied by before backward.
  double aux_loss_scale = 1.0;
};

// Forward and backward of `num_micro_batches` micro-batches on this rank's stages, 1F1B
// (interleaved over the model chunks when there are several: then the number of micro-batches
// must be a multiple of the pipeline-parallel size). With a GradientSync, each chunk's last
// backward of the step starts the data-parallel reductions of its parameters (the caller then
// calls sync->finish()).
void forward_backward_1f1b(LanguageModel& model, int64_t num_micro_batches, const PipelineCallbacks& callbacks,
                           GradientSync* sync);

// Forward only (evaluation), any number of micro-batches: every micro-batch flows through the
// stages; the last stage calls callbacks.loss, whose result is not differentiated.
void forward_only(LanguageModel& model, int64_t num_micro_batches, const PipelineCallbacks& callbacks);

}  // namespace strata::parallel
