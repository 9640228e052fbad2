#pragma once
// The order in which one pipeline rank runs the forward and backward passes of a step's
// micro-batches over its model chunks (Megatron's schedules), as a plain list that pipeline.cpp
// walks. Needs no LibTorch and no processes, so the order is tested on its own.
//
// Virtual stage s = chunk * pp + rank: with vp chunks per rank the model is pp * vp stages, and a
// micro-batch visits rank 0, 1, ..., pp - 1 once per chunk.
//
// One chunk per rank: 1F1B (PipeDream-Flush). Rank r runs pp - r - 1 forwards (warm-up), then
// alternates one forward and one backward, then runs the backwards left.
//
// Several chunks: interleaved 1F1B. Forwards take the micro-batches in groups of pp: chunk 0 for
// the group's micro-batches, then chunk 1, ..., then the next group; backwards take the same order
// with the chunks reversed (chunk vp - 1 first, as the loss is on the last one). Rank r runs
// 2 (pp - r - 1) + (vp - 1) pp forwards before its first backward, then alternates, then drains.
// The number of micro-batches must be a multiple of pp (Megatron's rule: a group short of pp would
// stall the ranks), which training_schedule refuses otherwise.
#include <cstdint>
#include <string>
#include <vector>

namespace strata::parallel {

enum class PipelinePass { forward, backward };

struct PipelineStep {
  PipelinePass pass;
  int model_chunk;
  int64_t micro_batch;
  bool operator==(const PipelineStep&) const = default;
};

// "F1.3": the forward of micro-batch 3 through chunk 1 ("B" for a backward).
std::string describe(const PipelineStep& step);

// Every forward and backward of one training step on pp rank `pp_rank`, in order: each
// (chunk, micro-batch) once forward, later once backward.
std::vector<PipelineStep> training_schedule(int pp_size, int pp_rank, int vp_size, int64_t num_micro_batches);

// Forwards only (evaluation), the same on every rank: the forward order of training_schedule, for
// any number of micro-batches (the last group may be short: without backwards nothing waits on it).
std::vector<PipelineStep> forward_only_schedule(int pp_size, int vp_size, int64_t num_micro_batches);

}  // namespace strata::parallel
