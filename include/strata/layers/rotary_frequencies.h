#pragma once
// RoPE's inverse frequencies under a RotaryScaling, in the float32 arithmetic of HF's
// ROPE_INIT_FUNCTIONS (transformers 5), and the factors scaled RoPE puts on the cos/sin tables
// and on MLA's softmax. Every tensor op runs on the requested device with no host value read
// back, so a captured CUDA graph can compute the tables.
#include <ATen/ATen.h>

#include "strata/core/rotary_scaling.h"

namespace strata {

// inv_freq [rotary_dim / 2], float32 on `device`: base^(-2i / rotary_dim), stretched as `scaling` says.
at::Tensor rotary_inverse_frequencies(int64_t rotary_dim, double base, const RotaryScaling& scaling,
                                      at::Device device);

// YaRN's magnitude correction 0.1 * mscale * ln(factor) + 1; 1 when factor <= 1.
double yarn_mscale(double factor, double mscale);

// What cos and sin are multiplied by: YaRN's attention_factor; 1 for the other kinds.
double rotary_table_scale(const RotaryScaling& scaling);

// What MLA multiplies its softmax scale by: yarn_mscale(factor, mscale_all_dim)^2 under YaRN with a
// non-zero mscale_all_dim (DeepSeek-V3's correction); 1 otherwise.
double latent_attention_softmax_scale_factor(const RotaryScaling& scaling);

}  // namespace strata
