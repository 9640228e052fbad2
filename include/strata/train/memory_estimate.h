#pragma once
// A lower bound on what training a model needs, checked against what the machine has before
// anything is allocated: a batch or a model far too large for it is refused with the numbers,
// instead of the kernel's OOM killer ending the run without a word.
//
// Counted: every parameter (model/parameter_count.h), each float32 with its gradient and AdamW's
// two moments (16 bytes per parameter), and per token the logits and a few hidden-size activations
// per layer kept for backward.
// Everything left out only makes the real need larger, so a refusal is never wrong; a run that
// passes may still not fit.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "strata/core/config.h"

namespace strata::train {

struct MemoryEstimate {
  double parameters = 0;        // the model's parameter count
  double parameter_bytes = 0;   // weights, gradients, AdamW moments
  double activation_bytes = 0;  // of one micro-batch
  double total() const { return parameter_bytes + activation_bytes; }
};

// `shards`: how many ranks split the weights (tensor x pipeline parallel); every rank holds its
// share of the parameters and the activations of its micro-batch rows.
MemoryEstimate estimate_training_memory(const TransformerConfig& config, int64_t micro_batch_size,
                                        int64_t seq_length, bool recompute, bool bf16, int64_t shards = 1);

// Bytes this process can still allocate on `device`: for the CPU, /proc/meminfo's MemAvailable
// capped by the cgroup's memory.max; for a GPU, its free memory. 0 when unknown.
double available_memory_bytes(const at::Device& device);

// Refuses (strata::Error) when `ranks_sharing_memory` ranks each needing `estimate` exceed what
// `device` has, naming the parameter count, both parts of the estimate and the flags that set them.
void check_memory_fits(const MemoryEstimate& estimate, int64_t ranks_sharing_memory, const at::Device& device,
                       int64_t micro_batch_size, int64_t seq_length);

}  // namespace strata::train
