#include "strata/parallel/pipeline_schedule.h"

#include <algorithm>

#include "strata/core/error.h"

namespace strata::parallel {

namespace {

void check_sizes(int pp_size, int vp_size) {
  if (pp_size < 1 || vp_size < 1)
    fail("pipeline schedule: pipeline-parallel size ", pp_size, " and ", vp_size,
         " virtual stages per rank (expected at least 1 each)");
}

// The forward order: micro-batches in groups of pp_size, each group through chunk 0, 1, ... in
// turn. With one chunk this is simply micro-batch 0, 1, 2, ...
std::vector<PipelineStep> forward_order(int pp_size, int vp_size, int64_t num_micro_batches) {
  std::vector<PipelineStep> order;
  for (int64_t group = 0; group < num_micro_batches; group += pp_size) {
    const auto end = std::min<int64_t>(group + pp_size, num_micro_batches);
    for (int chunk = 0; chunk < vp_size; ++chunk)
      for (int64_t i = group; i < end; ++i) order.push_back({PipelinePass::forward, chunk, i});
  }
  return order;
}

}  // namespace

std::string describe(const PipelineStep& step) {
  return cat(step.pass == PipelinePass::forward ? "F" : "B", step.model_chunk, ".", step.micro_batch);
}

std::vector<PipelineStep> training_schedule(int pp_size, int pp_rank, int vp_size, int64_t num_micro_batches) {
  check_sizes(pp_size, vp_size);
  if (num_micro_batches < 1) fail("pipeline: ", num_micro_batches, " micro-batches (expected at least 1)");
  if (pp_rank < 0 || pp_rank >= pp_size)
    fail("pipeline schedule: rank ", pp_rank, " outside the ", pp_size, " pipeline-parallel ranks");
  if (vp_size > 1 && num_micro_batches % pp_size != 0)
    fail("interleaved pipeline schedule: ", num_micro_batches,
         " micro-batches per step is not a multiple of the pipeline-parallel size ", pp_size,
         " (with virtual stages the micro-batches go through the model chunks in groups of pp)");
  const auto forwards = forward_order(pp_size, vp_size, num_micro_batches);
  const auto total = static_cast<int64_t>(forwards.size());
  auto backward = [&](int64_t k) {
    const auto& f = forwards[k];
    return PipelineStep{PipelinePass::backward, vp_size - 1 - f.model_chunk, f.micro_batch};
  };
  // Forwards before the first backward: enough that the last virtual stage can start its 1F1B
  // pairs at once while earlier stages keep it fed (Megatron's counts).
  const int64_t later_ranks = pp_size - pp_rank - 1;
  const int64_t warmup =
      std::min(total, vp_size == 1 ? later_ranks : 2 * later_ranks + static_cast<int64_t>(vp_size - 1) * pp_size);
  std::vector<PipelineStep> steps(forwards.begin(), forwards.begin() + warmup);
  for (int64_t k = 0; k + warmup < total; ++k) {
    steps.push_back(forwards[k + warmup]);
    steps.push_back(backward(k));
  }
  for (int64_t k = total - warmup; k < total; ++k) steps.push_back(backward(k));
  return steps;
}

std::vector<PipelineStep> forward_only_schedule(int pp_size, int vp_size, int64_t num_micro_batches) {
  check_sizes(pp_size, vp_size);
  return forward_order(pp_size, vp_size, num_micro_batches);
}

}  // namespace strata::parallel
