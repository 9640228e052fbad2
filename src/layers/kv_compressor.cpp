#include "strata/layers/kv_compressor.h"

#include <limits>

#include "strata/core/error.h"

namespace strata {

KvCompressor::KvCompressor(std::shared_ptr<const TransformerConfig> config, const KvCompressorShape& shape,
                           const KvCompressorSubmodules& sub)
    : shape_(shape), rotary_(config->qk_pos_emb_head_dim, config->compress_rotary_base, config->compress_rotary_scaling) {
  const auto& c = *config;
  if (shape.width <= 0 || shape.rate <= 0)
    fail("KV compressor: width = ", shape.width, ", rate = ", shape.rate, ": expected positive values");
  if (shape.width < c.qk_pos_emb_head_dim)
    fail("KV compressor: width = ", shape.width, " is less than qk_pos_emb_head_dim = ", c.qk_pos_emb_head_dim,
         ", the channels its RoPE rotates");
  const auto projected = (shape.overlapping ? 2 : 1) * shape.width;
  auto column = [&](const auto& builder, const char* name) {
    return register_module(name, builder(ColumnLinearArgs{
        .config = config, .input_size = c.hidden_size, .output_size = projected, .init_std = c.init_method_std,
        .name = name}));
  };
  linear_kv_proj_ = column(sub.linear_kv_proj, "linear_kv_proj");
  linear_gate_proj_ = column(sub.linear_gate_proj, "linear_gate_proj");
  // Zero: every slot of a window starts with the same weight (HF initialises it so too).
  position_bias_ = register_parameter("position_bias", at::zeros({shape.rate, projected}));
  kv_layernorm_ = register_module("kv_layernorm", sub.kv_layernorm(NormArgs{config, shape.width, c.layernorm_epsilon}));
}

at::Tensor KvCompressor::forward(const at::Tensor& hidden, KvCompressorState* state) {
  const auto batch = hidden.size(0), rate = shape_.rate, width = shape_.width;
  auto kv = linear_kv_proj_->forward(hidden).output;
  auto gate = linear_gate_proj_->forward(hidden).output;
  int64_t first_entry = 0;
  if (state) {
    first_entry = state->num_entries();
    if (state->pending_kv.defined()) {
      kv = at::cat({state->pending_kv, kv}, 1);
      gate = at::cat({state->pending_gate, gate}, 1);
    }
  }
  const auto windows = kv.size(1) / rate, complete = windows * rate;
  if (state) {
    state->pending_kv = kv.narrow(1, complete, kv.size(1) - complete);
    state->pending_gate = gate.narrow(1, complete, gate.size(1) - complete);
  }

  at::Tensor fresh;
  if (windows == 0) {
    fresh = kv.new_empty({batch, 0, width});
  } else {
    auto slots_kv = kv.narrow(1, 0, complete).view({batch, windows, rate, -1});
    auto slots_gate = gate.narrow(1, 0, complete).view({batch, windows, rate, -1}) + position_bias_;
    if (shape_.overlapping) {
      auto earlier_kv = slots_kv.narrow(-1, 0, width), earlier_gate = slots_gate.narrow(-1, 0, width);
      const bool has_previous = state && state->previous_kv.defined();
      auto previous_kv = has_previous ? state->previous_kv : at::zeros({batch, 1, rate, width}, kv.options());
      auto previous_gate = has_previous ? state->previous_gate
                                        : at::full({batch, 1, rate, width}, -std::numeric_limits<double>::infinity(),
                                                   gate.options());
      if (state) {
        state->previous_kv = earlier_kv.narrow(1, windows - 1, 1);
        state->previous_gate = earlier_gate.narrow(1, windows - 1, 1);
      }
      // Window w's slots: window w - 1's a series, then its own b series.
      auto shifted_kv = at::cat({previous_kv, earlier_kv.narrow(1, 0, windows - 1)}, 1);
      auto shifted_gate = at::cat({previous_gate, earlier_gate.narrow(1, 0, windows - 1)}, 1);
      slots_kv = at::cat({shifted_kv, slots_kv.narrow(-1, width, width)}, 2);
      slots_gate = at::cat({shifted_gate, slots_gate.narrow(-1, width, width)}, 2);
    }
    auto weights = at::softmax(slots_gate, 2, at::kFloat).to(slots_kv.scalar_type());
    auto pooled = kv_layernorm_->forward((slots_kv * weights).sum(2));
    auto positions = (at::arange(windows, at::TensorOptions().dtype(at::kLong).device(hidden.device())) + first_entry) * rate;
    auto [cos, sin] = rotary_.tables(positions);
    fresh = apply_interleaved_rotary(pooled.unsqueeze(2), cos, sin).squeeze(2);
  }
  return state ? append_to_cache(state->entries, fresh) : fresh;
}

at::Tensor compressed_entry_visible(int64_t queries, int64_t offset, int64_t entries, int64_t rate,
                                    at::Device device) {
  auto options = at::TensorOptions().dtype(at::kLong).device(device);
  auto complete = at::div(at::arange(offset, offset + queries, options) + 1, rate, "floor");  // [T]
  return at::arange(entries, options).unsqueeze(0) < complete.unsqueeze(1);
}

}  // namespace strata
