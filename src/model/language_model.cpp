#include "strata/model/language_model.h"

#include "strata/core/error.h"
#include "strata/model/loss.h"
#include "strata/model/state_dict.h"
#include "strata/parallel/mappings.h"

namespace strata {

LanguageModel::LanguageModel(std::shared_ptr<const TransformerConfig> config,
                             const TransformerBlockSubmodules& decoder, const ProcessGroups& pg, PipelineRole role)
    : LanguageModel(config, LanguageModelSubmodules{decoder, {}}, pg, role) {}

LanguageModel::LanguageModel(std::shared_ptr<const TransformerConfig> config, const LanguageModelSubmodules& sub,
                             const ProcessGroups& pg, PipelineRole role)
    : config_(config),
      pg_(pg),
      role_(role),
      rotary_(config->rotary_dim(), config->rotary_base, config->rotary_scaling) {
  validate(*config);
  if (config->share_embeddings_and_output_weights && !(role.pre_process && role.post_process))
    fail("share_embeddings_and_output_weights = true: the embedding and the output layer would sit on different "
         "pipeline stages, which strata does not tie yet; set it to false or use one pipeline stage");
  if (role.pre_process) embedding_ = register_module("embedding", std::make_shared<LanguageModelEmbedding>(*config));
  decoder_ = register_module("decoder", std::make_shared<TransformerBlock>(config, sub.decoder, pg));
  const auto mtp_depths = resolve_mtp_depths(*config).size();
  if (mtp_depths != sub.mtp.depths.size())
    fail("the config asks for ", mtp_depths, " multi-token prediction depths, the model spec has ",
         sub.mtp.depths.size(), " (build it from language_model_spec)");
  if (mtp_depths > 0) {
    if (!(role.pre_process && role.post_process) || pg.tp_size() > 1)
      fail("multi-token prediction (", mtp_depths, " depths) with tensor or pipeline parallelism is not supported ",
           "yet: run it with data or expert parallelism");
    if (config->enable_mhc_connections)
      fail("multi-token prediction (", mtp_depths, " depths) with hyper-connections is not supported yet");
    torch::nn::ModuleList layers;
    for (const auto& depth : sub.mtp.depths) {
      mtp_.push_back(std::make_shared<MultiTokenPredictionLayer>(config, depth, *sub.mtp.norm, pg));
      layers->push_back(mtp_.back());
    }
    register_module("mtp", std::make_shared<torch::nn::Module>())->register_module("layers", layers);
  }
  if (!role.post_process) return;
  if (config->share_embeddings_and_output_weights) {
    output_weight_ = embedding_->weight();
  } else {
    auto output_layer = register_module("output_layer", std::make_shared<torch::nn::Module>());
    output_weight_ = output_layer->register_parameter(
        "weight", at::randn({config->vocab_size, config->hidden_size}) * config->init_method_std);
  }
}

at::Tensor LanguageModel::forward(const at::Tensor& input_ids, ForwardContext& ctx) {
  if (num_model_chunks() != 1)
    fail("language model of ", num_model_chunks(), " model chunks: run one chunk at a time (forward_chunk)");
  return forward_chunk(0, input_ids, ctx);
}

at::Tensor LanguageModel::forward_chunk(int chunk, const at::Tensor& input, ForwardContext& ctx) {
  if (chunk < 0 || chunk >= num_model_chunks()) fail("language model: model chunk ", chunk, " of ", num_model_chunks());
  const bool embeds = chunk == 0 && role_.pre_process;
  const bool outputs = chunk == num_model_chunks() - 1 && role_.post_process;
  const int64_t offset = ctx.cache ? ctx.cache->sequence_length() : 0;
  // A later stage under sequence parallelism receives 1/tp of the positions.
  const int64_t seq = input.size(1) * (embeds || !pg_.splits_sequence() ? 1 : pg_.tp_size());
  const bool fixed_capacity = ctx.cache && ctx.cache->fixed_capacity();
  if (config_->position_embedding_type == PositionEmbeddingType::Rope) {
    auto [cos, sin] = fixed_capacity ? rotary_.tables(ctx.cache->positions()) : rotary_.tables(seq, offset, input.device());
    ctx.rotary_cos = cos;
    ctx.rotary_sin = sin;
  }
  auto hidden = input;
  if (embeds) {
    at::Tensor positions;
    if (embedding_->has_position_table()) {
      if (!fixed_capacity && offset + seq > config_->max_position_embeddings)
        fail("position ", offset + seq - 1, " is past the learned position table: max_position_embeddings = ",
             config_->max_position_embeddings);
      positions = fixed_capacity ? ctx.cache->positions()
                                 : at::arange(offset, offset + seq, input.options().dtype(at::kLong));
    }
    ctx.input_ids = input;  // hash-routed MoE layers pick experts by token id
    hidden = embedding_->forward(input, positions);
    if (pg_.splits_sequence()) hidden = parallel::scatter_to_sequence_parallel_region(hidden, pg_.tp);
  }
  hidden = decoder_->forward_chunk(static_cast<size_t>(chunk), hidden, ctx);
  if (ctx.cache) ctx.cache->advance(seq);
  if (!outputs) return hidden;
  // The output layer is whole on every tensor-parallel rank: each computes the same logits.
  if (pg_.splits_sequence()) hidden = parallel::gather_from_sequence_parallel_region(hidden, pg_.tp, false);
  // MTP runs only in a model of one stage (the constructor refuses pipelines), so `input` is the token ids.
  if (!mtp_.empty() && ctx.labels && !ctx.cache) add_mtp_losses(hidden, input, ctx);
  return at::linear(hidden, output_weight_);
}

void LanguageModel::add_mtp_losses(at::Tensor hidden, const at::Tensor& input_ids, ForwardContext& ctx) {
  const auto& labels = *ctx.labels;
  const int64_t seq = input_ids.size(1);
  at::Tensor total;
  for (size_t d = 0; d < mtp_.size(); ++d) {
    const int64_t ahead = static_cast<int64_t>(d) + 1;
    // The tokens `ahead` positions on; past the end, token 0 (Megatron's roll fills zeros).
    auto rolled = at::zeros_like(input_ids);
    if (seq > ahead) rolled.narrow(1, 0, seq - ahead).copy_(input_ids.narrow(1, ahead, seq - ahead));
    // Megatron rolls the position ids the same way (zeros past the end).
    at::Tensor rolled_positions;
    if (embedding_->has_position_table()) {
      const auto options = input_ids.options().dtype(at::kLong);
      rolled_positions = at::zeros({seq}, options);
      if (seq > ahead) rolled_positions.narrow(0, 0, seq - ahead).copy_(at::arange(ahead, seq, options));
    }
    hidden = mtp_[d]->forward(hidden, embedding_->forward(rolled, rolled_positions), ctx);
    // Position t predicts labels[t + 1 + ahead]: the loss's own shift on labels moved by `ahead`.
    const int64_t kept = seq - ahead;
    if (kept < 2) continue;  // no position has a label that far ahead
    auto loss = causal_lm_loss(at::linear(hidden.narrow(1, 0, kept), output_weight_),
                               labels.narrow(1, ahead, kept).to(hidden.device()));
    ctx.mtp_losses.push_back(loss);
    total = total.defined() ? total + loss : loss;
  }
  if (total.defined())
    ctx.aux_losses.push_back(total * (config_->mtp_loss_scaling_factor / static_cast<double>(mtp_.size())));
}

at::Tensor LanguageModel::forward(const at::Tensor& input_ids) {
  ForwardContext ctx;
  return forward(input_ids, ctx);
}

std::map<std::string, at::Tensor> LanguageModel::canonical_state_dict() const {
  const std::string decoder_prefix = "decoder.";
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, tensor] : state_dict(*this)) {
    if (name.rfind(decoder_prefix, 0) == 0) {
      out.emplace(decoder_prefix + decoder_->canonical_name(name.substr(decoder_prefix.size())), tensor);
      continue;
    }
    out.emplace(mtp_canonical_name(name), tensor);
  }
  return out;
}

std::string LanguageModel::mtp_canonical_name(const std::string& name) const {
  // "mtp.layers.<d>.mtp_model_layer.<block name>": the block's layers numbered canonically.
  for (size_t d = 0; d < mtp_.size(); ++d) {
    const auto prefix = cat("mtp.layers.", d, ".mtp_model_layer.");
    if (name.rfind(prefix, 0) == 0) return prefix + mtp_[d]->layers().canonical_name(name.substr(prefix.size()));
  }
  return name;
}

void LanguageModel::load_canonical_state_dict(const std::map<std::string, at::Tensor>& tensors,
                                              const std::string& source) {
  load_named_tensors(canonical_state_dict(), tensors, source);
}

}  // namespace strata
