#pragma once
// State kept between decoding steps: each sequence mixer keeps its own (a KV cache for attention,
// conv + recurrent state for Gated DeltaNet and Mamba2), keyed by its layer number.
//
// A cache of fixed capacity serves CUDA-graph decoding, where one captured step replays for
// every position: attention keeps keys and values for `capacity` positions in buffers allocated
// once, the positions of the tokens being processed come from a device tensor (not a host
// counter baked into the graph), and every state is updated in place.
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>

#include "strata/core/error.h"

namespace strata {

struct MixerState {
  virtual ~MixerState() = default;
};

// Stores `value` in a state slot: in place when the slot already holds a tensor of its shape and
// dtype (so a captured CUDA graph keeps reading and writing the same memory), else by reference.
inline void update_state(at::Tensor& slot, const at::Tensor& value) {
  if (slot.defined() && slot.sizes() == value.sizes() && slot.scalar_type() == value.scalar_type() &&
      slot.device() == value.device())
    slot.copy_(value);
  else
    slot = value;
}

// Appends `fresh` to a cache that grows along the sequence (dim 1) and returns the whole: what
// the attention variants keep of earlier positions when the cache has no fixed capacity.
inline at::Tensor append_to_cache(at::Tensor& slot, const at::Tensor& fresh) {
  slot = slot.defined() ? at::cat({slot, fresh}, 1) : fresh;
  return slot;
}

class InferenceCache {
 public:
  InferenceCache() = default;
  // capacity > 0: a fixed-capacity cache for sequences of at most `capacity` tokens.
  explicit InferenceCache(int64_t capacity) : capacity_(capacity) {
    if (capacity <= 0) fail("inference cache: capacity ", capacity, ", expected a positive number of tokens");
  }

  // The state of layer `layer_number`, created empty on first use.
  template <class State>
  State& state(int64_t layer_number) {
    auto& slot = states_[layer_number];
    if (!slot) slot = std::make_unique<State>();
    auto* typed = dynamic_cast<State*>(slot.get());
    if (!typed) fail("inference cache: layer ", layer_number, " holds another mixer's state");
    return *typed;
  }

  // Tokens already processed: the position of the next token.
  int64_t sequence_length() const { return sequence_length_; }
  void advance(int64_t tokens) { sequence_length_ += tokens; }

  bool fixed_capacity() const { return capacity_ > 0; }
  int64_t capacity() const { return capacity_; }

  // Fixed capacity only: the positions of the tokens the next forward processes, [T] int64 on
  // the model's device. The caller sets them before each forward (or updates the tensor in place
  // between replays of a captured step).
  const at::Tensor& positions() const {
    if (!positions_.defined()) fail("inference cache: fixed-capacity decoding needs set_positions() before a forward");
    return positions_;
  }
  void set_positions(at::Tensor positions) { positions_ = std::move(positions); }

 private:
  std::map<int64_t, std::unique_ptr<MixerState>> states_;
  int64_t sequence_length_ = 0;
  int64_t capacity_ = 0;
  at::Tensor positions_;
};

}  // namespace strata
