#pragma once
// Text generation: prefill the prompt once, then decode token by token with each mixer's cache
// (KV cache for attention, recurrent state for Gated DeltaNet and Mamba2). Greedy when
// temperature is 0; otherwise temperature, then top-k, then top-p (nucleus) filtering.
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "strata/model/language_model.h"

namespace strata::infer {

// How decode steps run after the prompt's prefill.
enum class DecodeMode {
  // A CUDA graph of one decode step, captured once and replayed for every later token, over a
  // fixed-capacity cache, where the build has CUDA, the model is on a GPU and its layers allow it
  // (attention, Gated DeltaNet and dense MLP, no mHC); eager steps otherwise. The environment
  // variable STRATA_CUDA_GRAPHS=0 turns the graphs off.
  automatic,
  eager,           // one forward per token over caches that grow (no graph)
  fixed_capacity,  // eager forwards over the fixed-capacity cache a graph replays (on any device)
};

struct SamplingOptions {
  int64_t max_new_tokens = 32;
  double temperature = 0.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  uint64_t seed = 0;
  // Generation ends after any of these tokens (the model's EOS), which is kept in the output.
  std::vector<int64_t> stop_tokens;
  // Called with each token as it is chosen (to stream text); returning false ends generation
  // there, the token kept.
  std::function<bool(int64_t)> on_token;
  DecodeMode decode = DecodeMode::automatic;
};

// Whether DecodeMode::automatic decodes `model` under a CUDA graph on `device`.
bool decodes_with_cuda_graph(const LanguageModel& model, at::Device device);

// prompt [T] -> generated tokens (without the prompt).
std::vector<int64_t> generate(LanguageModel& model, const std::vector<int64_t>& prompt, const SamplingOptions& options);

// The next-token distribution filter: logits [V] -> the token chosen.
int64_t sample_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator);

}  // namespace strata::infer
