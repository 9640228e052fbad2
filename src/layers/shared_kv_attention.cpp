#include "strata/layers/shared_kv_attention.h"

#include <cmath>
#include <limits>

#include "strata/core/error.h"

namespace strata {

namespace {

const TransformerConfig& validated(const TransformerConfig& c, CompressedBranch branch, int64_t layer_number) {
  validate_shared_kv_attention(c, branch == CompressedBranch::Sparse);
  if (c.attention_dropout > 0.0)
    fail("shared-KV attention (layer ", layer_number, "): attention_dropout = ", c.attention_dropout,
         " is not supported (expected 0)");
  return c;
}

// x / rms(x) over the last dimension, no weight (HF DeepSeek-V4's q_b_norm), in float32.
at::Tensor unweighted_rms_norm(const at::Tensor& x, double eps) {
  return x * at::rsqrt(x.to(at::kFloat).square().mean(-1, /*keepdim=*/true) + eps).to(x.scalar_type());
}

}  // namespace

at::Tensor sliding_window_visible(int64_t queries, int64_t offset, int64_t keys, int64_t key_offset, int64_t window,
                                  at::Device device) {
  auto options = at::TensorOptions().dtype(at::kLong).device(device);
  auto distance = at::arange(offset, offset + queries, options).unsqueeze(1) -
                  at::arange(key_offset, key_offset + keys, options).unsqueeze(0);
  return distance.ge(0).logical_and(distance.lt(window));
}

at::Tensor shared_kv_sink_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& allowed,
                                    const at::Tensor& sinks, double scale) {
  const auto batch = q.size(0), queries = q.size(1), heads = q.size(2);
  auto k = keys.unsqueeze(1);  // [B, 1, S, D], broadcast over the heads
  auto scores = at::matmul(q.transpose(1, 2), k.transpose(-1, -2)) * scale;  // [B, heads, T, S]
  scores = scores.masked_fill(allowed.unsqueeze(1).logical_not(), -std::numeric_limits<double>::infinity());
  auto sink = sinks.to(scores.scalar_type()).view({1, heads, 1, 1}).expand({batch, heads, queries, 1});
  auto probs = at::softmax(at::cat({scores, sink}, -1), -1, at::kFloat);
  probs = probs.narrow(-1, 0, scores.size(-1)).to(q.scalar_type());
  return at::matmul(probs, k).transpose(1, 2);
}

SharedKvAttention::SharedKvAttention(const LayerArgs& args, const SharedKvAttentionSubmodules& sub)
    : layer_number_(args.layer_number),
      num_heads_(validated(*args.config, sub.branch, args.layer_number).num_attention_heads),
      head_dim_(args.config->kv_channels),
      window_(args.config->sliding_window_size),
      groups_(args.config->attention_output_groups),
      norm_eps_(args.config->layernorm_epsilon),
      branch_(sub.branch),
      rotary_(args.config->qk_pos_emb_head_dim,
              sub.branch == CompressedBranch::None ? args.config->rotary_base : args.config->compress_rotary_base,
              sub.branch == CompressedBranch::None ? args.config->rotary_scaling : args.config->compress_rotary_scaling) {
  const auto& c = *args.config;
  auto column = [&](const auto& builder, const char* name, int64_t input_size, int64_t output_size) {
    return register_module(name, builder(ColumnLinearArgs{
        .config = args.config, .input_size = input_size, .output_size = output_size, .bias = c.add_bias_linear,
        .init_std = c.init_method_std, .name = name, .pg = args.pg}));
  };
  linear_q_down_proj_ = column(sub.linear_q_down_proj, "linear_q_down_proj", c.hidden_size, c.q_lora_rank);
  q_layernorm_ = register_module("q_layernorm", sub.q_layernorm(NormArgs{args.config, c.q_lora_rank, c.layernorm_epsilon}));
  linear_q_up_proj_ = column(sub.linear_q_up_proj, "linear_q_up_proj", c.q_lora_rank, num_heads_ * head_dim_);
  linear_kv_proj_ = column(sub.linear_kv_proj, "linear_kv_proj", c.hidden_size, head_dim_);
  kv_layernorm_ = register_module("kv_layernorm", sub.kv_layernorm(NormArgs{args.config, head_dim_, c.layernorm_epsilon}));
  // Zero sinks: logit 0 beside the keys' logits (HF's initialisation).
  attention_sinks_ = register_parameter("attention_sinks", at::zeros({num_heads_}));
  if (branch_ != CompressedBranch::None) {
    const bool sparse = branch_ == CompressedBranch::Sparse;
    const KvCompressorShape shape{.width = head_dim_,
                                  .rate = sparse ? c.csa_compress_rate : c.hca_compress_rate,
                                  .overlapping = sparse};
    compressor_ = register_module("compressor", std::make_shared<KvCompressor>(args.config, shape, sub.compressor));
    if (sparse) indexer_ = register_module("indexer", std::make_shared<CompressedIndexer>(args.config, sub.indexer));
  }
  const auto rank = c.attention_output_lora_rank;
  linear_grouped_proj_ = register_module(
      "linear_grouped_proj",
      std::make_shared<BlockDiagonalLinear>(groups_, num_heads_ * head_dim_ / groups_, rank, c.init_method_std));
  // As for softmax attention: residual branches add up, so the output init is scaled by 1/sqrt(2 * num_layers).
  linear_proj_ = register_module("linear_proj", sub.linear_proj(RowLinearArgs{
      .config = args.config, .input_size = groups_ * rank, .output_size = c.hidden_size, .bias = c.add_bias_linear,
      .skip_bias_add = true, .init_std = c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)),
      .name = "linear_proj", .pg = args.pg}));
}

Builder<slots::SelfAttention> SharedKvAttention::builder(SharedKvAttentionSubmodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) {
    return std::make_shared<SharedKvAttention>(args, submodules);
  };
}

MixerOutput SharedKvAttention::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  if (ctx.cache && ctx.cache->fixed_capacity())
    fail("shared-KV attention (layer ", layer_number_, "): decoding over a fixed-capacity cache is not supported; ",
         "decode with a growing cache");
  const auto batch = hidden.size(0), seq = hidden.size(1);
  const int64_t offset = ctx.cache ? ctx.cache->sequence_length() : 0;
  auto* state = ctx.cache ? &ctx.cache->state<SharedKvAttentionState>(layer_number_) : nullptr;

  auto q_latent = q_layernorm_->forward(linear_q_down_proj_->forward(hidden).output);
  auto q = linear_q_up_proj_->forward(q_latent).output.view({batch, seq, num_heads_, head_dim_});
  auto [cos, sin] = rotary_.tables(at::arange(offset, offset + seq, at::TensorOptions().dtype(at::kLong).device(hidden.device())));
  q = apply_interleaved_rotary(unweighted_rms_norm(q, norm_eps_), cos, sin);
  auto kv = kv_layernorm_->forward(linear_kv_proj_->forward(hidden).output);
  kv = apply_interleaved_rotary(kv.unsqueeze(2), cos, sin).squeeze(2);

  auto keys = kv;
  if (state) {
    if (state->window.defined()) keys = at::cat({state->window, kv}, 1);
    // The next query's window reaches back window_ - 1 positions.
    const auto kept = std::min(keys.size(1), window_ - 1);
    state->window = keys.narrow(1, keys.size(1) - kept, kept);
  }
  const int64_t key_offset = offset + seq - keys.size(1);
  auto allowed = sliding_window_visible(seq, offset, keys.size(1), key_offset, window_, hidden.device())
                     .unsqueeze(0)
                     .expand({batch, seq, keys.size(1)});
  if (compressor_) {
    auto entries = compressor_->forward(hidden, state ? &state->compressor : nullptr);
    auto readable = compressed_entry_visible(seq, offset, entries.size(1), compressor_->rate(), hidden.device())
                        .unsqueeze(0)
                        .expand({batch, seq, entries.size(1)});
    if (indexer_)
      readable = readable.logical_and(indexer_->forward(hidden, q_latent, offset, state ? &state->indexer : nullptr));
    keys = at::cat({keys, entries}, 1);
    allowed = at::cat({allowed, readable}, -1);
  }

  auto out = shared_kv_sink_attention(q, keys, allowed, attention_sinks_,
                                      1.0 / std::sqrt(static_cast<double>(head_dim_)));
  out = apply_interleaved_rotary(out, cos, -sin);
  auto grouped = linear_grouped_proj_->forward(out.reshape({batch, seq, groups_, -1}));
  return linear_proj_->forward(grouped);
}

}  // namespace strata
