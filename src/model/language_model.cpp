#include "strata/model/language_model.h"

#include "strata/core/error.h"
#include "strata/model/state_dict.h"
#include "strata/parallel/mappings.h"

namespace strata {

LanguageModel::LanguageModel(std::shared_ptr<const TransformerConfig> config,
                             const TransformerBlockSubmodules& decoder, const ProcessGroups& pg, PipelineRole role)
    : config_(config),
      pg_(pg),
      role_(role),
      rotary_(config->rotary_dim(), config->rotary_base, config->rotary_scaling) {
  validate(*config);
  if (config->share_embeddings_and_output_weights && !(role.pre_process && role.post_process))
    fail("share_embeddings_and_output_weights = true: the embedding and the output layer would sit on different "
         "pipeline stages, which strata does not tie yet; set it to false or use one pipeline stage");
  if (role.pre_process) embedding_ = register_module("embedding", std::make_shared<LanguageModelEmbedding>(*config));
  decoder_ = register_module("decoder", std::make_shared<TransformerBlock>(config, decoder, pg));
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
  auto [cos, sin] = ctx.cache && ctx.cache->fixed_capacity() ? rotary_.tables(ctx.cache->positions())
                                                              : rotary_.tables(seq, offset, input.device());
  ctx.rotary_cos = cos;
  ctx.rotary_sin = sin;
  auto hidden = input;
  if (embeds) {
    hidden = embedding_->forward(input);
    if (pg_.splits_sequence()) hidden = parallel::scatter_to_sequence_parallel_region(hidden, pg_.tp);
  }
  hidden = decoder_->forward_chunk(static_cast<size_t>(chunk), hidden, ctx);
  if (ctx.cache) ctx.cache->advance(seq);
  if (!outputs) return hidden;
  // The output layer is whole on every tensor-parallel rank: each computes the same logits.
  if (pg_.splits_sequence()) hidden = parallel::gather_from_sequence_parallel_region(hidden, pg_.tp, false);
  return at::linear(hidden, output_weight_);
}

at::Tensor LanguageModel::forward(const at::Tensor& input_ids) {
  ForwardContext ctx;
  return forward(input_ids, ctx);
}

std::map<std::string, at::Tensor> LanguageModel::canonical_state_dict() const {
  const std::string decoder_prefix = "decoder.";
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, tensor] : state_dict(*this)) {
    const bool in_decoder = name.rfind(decoder_prefix, 0) == 0;
    out.emplace(in_decoder ? decoder_prefix + decoder_->canonical_name(name.substr(decoder_prefix.size())) : name, tensor);
  }
  return out;
}

void LanguageModel::load_canonical_state_dict(const std::map<std::string, at::Tensor>& tensors,
                                              const std::string& source) {
  load_named_tensors(canonical_state_dict(), tensors, source);
}

}  // namespace strata
