#include "strata/hf/common_maps.h"

namespace strata::hf {

void add_swiglu_mlp(TensorMap& map, const std::string& st, const std::string& hf, int64_t ffn) {
  map.concat_rows(st + "linear_fc1.weight", {hf + "gate_proj.weight", hf + "up_proj.weight"}, {ffn, ffn});
  map.rename(st + "linear_fc2.weight", hf + "down_proj.weight");
}

void add_final_norm_and_output(TensorMap& map, const TransformerConfig& c, const std::string& hf_final_norm) {
  map.rename("decoder.final_layernorm.weight", hf_final_norm);
  if (!c.share_embeddings_and_output_weights) map.rename("output_layer.weight", "lm_head.weight");
}

}  // namespace strata::hf
