#pragma once
// LanguageModel: embedding -> TransformerBlock (with rotary tables under rope position
// embeddings) -> output layer, Megatron's GPTModel. The decoder's layers come from a block spec,
// so any hybrid stack fits.
#include "strata/layers/embedding.h"
#include "strata/layers/rotary.h"
#include "strata/model/multi_token_prediction.h"
#include "strata/model/transformer_block.h"

namespace strata {

// Which ends of the model a pipeline stage holds (Megatron's pre_process / post_process): the
// first stage embeds the tokens, the last applies the output layer. A rank that holds several
// model chunks (virtual stages) embeds in its chunk 0 and applies the output layer after its last.
struct PipelineRole {
  bool pre_process = true;
  bool post_process = true;
};

struct LanguageModelSubmodules {
  TransformerBlockSubmodules decoder;
  MultiTokenPredictionSubmodules mtp;  // no depths: no MTP
};

class LanguageModel : public torch::nn::Module {
 public:
  LanguageModel(std::shared_ptr<const TransformerConfig> config, const LanguageModelSubmodules& submodules,
                const ProcessGroups& pg = {}, PipelineRole role = {});
  // A model without MTP; a config that asks for MTP is refused (it needs LanguageModelSubmodules).
  LanguageModel(std::shared_ptr<const TransformerConfig> config, const TransformerBlockSubmodules& decoder,
                const ProcessGroups& pg = {}, PipelineRole role = {});

  // input_ids [B, T] int64 -> logits [B, T, vocab]. ctx receives aux losses from the layers, and
  // with ctx.labels set the multi-token prediction losses (multi_token_prediction.h).
  // A stage without pre_process takes the previous stage's hidden states instead of ids, and one
  // without post_process returns its hidden states (split along the sequence under sequence
  // parallelism). A model of one chunk only (forward_chunk runs the chunks of one with several).
  at::Tensor forward(const at::Tensor& input_ids, ForwardContext& ctx);
  at::Tensor forward(const at::Tensor& input_ids);
  // Model chunk `chunk` of the virtual pipeline stages this rank holds (the decoder's chunks,
  // TransformerBlockSubmodules::chunk_sizes): ids or the previous stage's hidden states in, hidden
  // states or (the last chunk with post_process) logits out.
  at::Tensor forward_chunk(int chunk, const at::Tensor& input, ForwardContext& ctx);
  int num_model_chunks() const { return static_cast<int>(decoder_->num_chunks()); }

  // Tensors under their canonical names: decoder layers numbered as if nothing were fused
  // (see layer_pattern.h), so fused and unfused models read each other's checkpoints.
  std::map<std::string, at::Tensor> canonical_state_dict() const;
  // Strict: missing, unexpected or wrongly shaped tensors are one error listing them all.
  void load_canonical_state_dict(const std::map<std::string, at::Tensor>& tensors, const std::string& source);

  const TransformerConfig& config() const { return *config_; }
  TransformerBlock& decoder() { return *decoder_; }
  size_t mtp_depths() const { return mtp_.size(); }
  const ProcessGroups& process_groups() const { return pg_; }
  const PipelineRole& pipeline_role() const { return role_; }

 private:
  std::shared_ptr<const TransformerConfig> config_;
  ProcessGroups pg_;
  PipelineRole role_;
  RotaryEmbedding rotary_;
  std::shared_ptr<LanguageModelEmbedding> embedding_;  // null on stages without pre_process
  std::shared_ptr<TransformerBlock> decoder_;
  std::vector<std::shared_ptr<MultiTokenPredictionLayer>> mtp_;  // one per depth; on the last stage
  at::Tensor output_weight_;

  std::string mtp_canonical_name(const std::string& name) const;
  // The MTP depths' losses into ctx (aux_losses and mtp_losses), from the decoder's output.
  void add_mtp_losses(at::Tensor hidden, const at::Tensor& input_ids, ForwardContext& ctx);  // the embedding's weight when share_embeddings_and_output_weights
};

}  // namespace strata
