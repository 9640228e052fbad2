#include "strata/model/transformer_block.h"

#include <algorithm>

#include "strata/core/compat.h"
#include "strata/core/error.h"
#include "strata/model/recompute.h"

namespace strata {

namespace {

// The [first, end) groups of a block's `layers` that config's full recompute reruns in backward.
std::vector<std::pair<size_t, size_t>> full_recompute_groups(const TransformerConfig& c, size_t layers) {
  std::vector<std::pair<size_t, size_t>> groups;
  if (c.recompute_granularity != "full") return groups;
  const auto n = static_cast<size_t>(c.recompute_num_layers);
  if (c.recompute_method == "uniform") {
    for (size_t first = 0; first < layers; first += n) groups.emplace_back(first, std::min(first + n, layers));
  } else {
    const size_t alone = c.recompute_method == "block" ? std::min(n, layers) : layers;
    for (size_t i = 0; i < alone; ++i) groups.emplace_back(i, i + 1);
  }
  return groups;
}

}  // namespace

TransformerBlock::TransformerBlock(std::shared_ptr<const TransformerConfig> config,
                                   const TransformerBlockSubmodules& sub, const ProcessGroups& pg) {
  torch::nn::ModuleList layers;
  for (const auto& spec : sub.layers) {
    // Megatron numbers layers from 1.
    LayerArgs args{
        .config = config, .layer_number = spec.placement.first_canonical + 1, .is_mtp_layer = sub.is_mtp, .pg = pg};
    layers_.push_back(std::make_shared<TransformerLayer>(spec.submodules, args));
    placements_.push_back(spec.placement);
    layers->push_back(layers_.back());
  }
  register_module("layers", layers);
  chunk_begin_ = {0};
  for (auto size : sub.chunk_sizes) chunk_begin_.push_back(chunk_begin_.back() + size);
  if (sub.chunk_sizes.empty()) chunk_begin_.push_back(layers_.size());
  if (chunk_begin_.back() != layers_.size())
    fail("transformer block: its model chunks hold ", chunk_begin_.back(), " layers, but the block has ", layers_.size());
  residual_in_autocast_dtype_ = !config->fp32_residual_connection;
  // Each model chunk is a pipeline stage of its own, as Megatron's TransformerBlock per chunk.
  for (size_t c = 0; c < num_chunks(); ++c)
    for (auto [first, end] : full_recompute_groups(*config, chunk_begin_[c + 1] - chunk_begin_[c]))
      recompute_groups_.emplace_back(chunk_begin_[c] + first, chunk_begin_[c] + end);
  if (const auto& hc = sub.hyper_connections) {
    if (hc->expand) expand_to_streams_ = hc->options.num_residual_streams;
    if (hc->contract)
      hyper_connection_head_ =
          register_module("hyper_connection_head", std::make_shared<HyperConnectionHead>(*config, hc->options));
  }
  link_hyper_connections();
  if (sub.final_layernorm)
    final_layernorm_ = register_module(
        "final_layernorm", (*sub.final_layernorm)(NormArgs{config, config->hidden_size, config->layernorm_epsilon}));
}

at::Tensor TransformerBlock::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  if (num_chunks() != 1)
    fail("transformer block of ", num_chunks(), " model chunks: run one chunk at a time (forward_chunk)");
  return forward_chunk(0, hidden, ctx);
}

at::Tensor TransformerBlock::forward_chunk(size_t chunk, const at::Tensor& hidden, ForwardContext& ctx) {
  if (chunk >= num_chunks()) fail("transformer block: model chunk ", chunk, " of ", num_chunks());
  const bool first = chunk == 0, last = chunk + 1 == num_chunks();
  auto h = hidden;
  // The embedding hands over float32, and residual adds keep the wider dtype of their operands;
  // the stream is narrowed once here to keep it in the autocast dtype.
  if (residual_in_autocast_dtype_ && hidden.is_cuda())
    if (const auto dtype = compat::cuda_autocast_dtype()) h = h.to(*dtype);
  if (first && expand_to_streams_) h = expand_streams(h, expand_to_streams_);
  size_t next = chunk_begin_[chunk];  // the first layer of the chunk not run yet
  const size_t chunk_end = chunk_begin_[chunk + 1];
  const auto run_until = [&](size_t end) {
    for (; next < end; ++next) h = layers_[next]->forward(h, ctx);
  };
  if (at::GradMode::is_enabled()) {
    for (const auto& [group_first, group_end] : recompute_groups_) {
      if (group_first < next || group_end > chunk_end) continue;  // another chunk's group
      run_until(group_first);
      h = recomputed_layers(group_first, group_end, h, ctx);
      next = group_end;
    }
  }
  run_until(chunk_end);
  if (!last) return h;
  if (hyper_connection_head_) h = hyper_connection_head_->forward(h);
  return final_layernorm_ ? final_layernorm_->forward(h) : h;
}

at::Tensor TransformerBlock::recomputed_layers(size_t first, size_t end, const at::Tensor& hidden,
                                               ForwardContext& ctx) {
  // The layers read ctx's rotary tables, so a copy of ctx serves each run. The aux losses (MoE
  // load balancing) they report leave the recomputed region as extra outputs, so the loss they
  // join trains the replayed layers.
  std::vector<std::shared_ptr<TransformerLayer>> group(layers_.begin() + static_cast<std::ptrdiff_t>(first),
                                                       layers_.begin() + static_cast<std::ptrdiff_t>(end));
  auto replay = ctx;
  replay.aux_losses.clear();
  auto outputs = recompute(
      [group, replay](const at::Tensor& x) {
        auto run = replay;
        std::vector<at::Tensor> out{x};
        for (const auto& layer : group) out.front() = layer->forward(out.front(), run);
        out.insert(out.end(), run.aux_losses.begin(), run.aux_losses.end());
        return out;
      },
      hidden);
  ctx.aux_losses.insert(ctx.aux_losses.end(), outputs.begin() + 1, outputs.end());
  return outputs.front();
}

void TransformerBlock::set_recompute(bool on) {
  recompute_groups_.clear();
  if (on)
    for (size_t i = 0; i < layers_.size(); ++i) recompute_groups_.emplace_back(i, i + 1);
  link_hyper_connections();
}

void TransformerBlock::set_fused_hyper_connections(bool on) {
  fuse_hyper_connections_ = on;
  link_hyper_connections();
}

void TransformerBlock::link_hyper_connections() {
  // Where layer i runs: its chunk and its recomputed group (-1: none). A boundary between two
  // layers that run apart (another chunk's stage, a recompute's separate rerun) is not fused.
  std::vector<std::pair<size_t, int64_t>> unit(layers_.size(), {0, -1});
  for (size_t c = 0; c < num_chunks(); ++c)
    for (size_t i = chunk_begin_[c]; i < chunk_begin_[c + 1]; ++i) unit[i].first = c;
  for (size_t g = 0; g < recompute_groups_.size(); ++g)
    for (size_t i = recompute_groups_[g].first; i < recompute_groups_[g].second; ++i)
      unit[i].second = static_cast<int64_t>(g);
  std::shared_ptr<HyperConnection> previous;
  size_t previous_layer = 0;
  for (size_t i = 0; i < layers_.size(); ++i)
    for (const auto& residual : layers_[i]->residuals()) {
      auto current = std::dynamic_pointer_cast<HyperConnection>(residual);
      if (previous) previous->set_next(fuse_hyper_connections_ && current && unit[previous_layer] == unit[i] ? current : nullptr);
      previous = current;
      previous_layer = i;
    }
  if (previous) previous->set_next(nullptr);
}

namespace {
// Splits "layers.<n>.<rest>" into n and rest; nullopt for names outside the layer list.
std::optional<std::pair<int64_t, std::string>> split_layer_name(const std::string& name) {
  const std::string prefix = "layers.";
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  const auto dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return std::nullopt;
  const auto number = name.substr(prefix.size(), dot - prefix.size());
  if (number.empty() || number.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::pair{std::stoll(number), name.substr(dot + 1)};
}
}  // namespace

std::string TransformerBlock::canonical_name(const std::string& name) const {
  auto split = split_layer_name(name);
  if (!split) return name;
  const auto [index, rest] = *split;
  if (index < 0 || index >= static_cast<int64_t>(placements_.size()))
    fail("transformer block: '", name, "' names layer ", index, " of ", placements_.size());
  const auto& place = placements_[index];
  const auto half = TransformerLayer::half_of(rest);
  const auto canonical = half == LayerHalf::channel ? place.channel_canonical() : place.sequence_canonical();
  return cat("layers.", canonical, ".", rest);
}

std::string TransformerBlock::runtime_name(const std::string& canonical) const {
  auto split = split_layer_name(canonical);
  if (!split) return canonical;
  const auto [number, rest] = *split;
  const auto half = TransformerLayer::half_of(rest);
  for (size_t i = 0; i < placements_.size(); ++i) {
    const auto& p = placements_[i];
    const bool sequence_match = half == LayerHalf::sequence && p.sequence && p.sequence_canonical() == number;
    const bool channel_match = half == LayerHalf::channel && p.channel && p.channel_canonical() == number;
    if (sequence_match || channel_match) return cat("layers.", i, ".", rest);
  }
  fail("transformer block: no layer here holds canonical tensor '", canonical, "'");
}

}  // namespace strata
