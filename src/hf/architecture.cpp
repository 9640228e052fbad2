#include "strata/hf/architecture.h"

#include "strata/core/error.h"
#include "strata/hf/deepseek_v32.h"
#include "strata/hf/deepseek_v4.h"
#include "strata/hf/nemotron_h.h"
#include "strata/hf/qwen3.h"
#include "strata/hf/qwen3_next.h"
#include "strata/io/safetensors.h"
#include "strata/model/build_model.h"

namespace strata::hf {

namespace {
constexpr const char* kSupported = "qwen3, nemotron_h, qwen3_next, deepseek_v32, deepseek_v4";
}

HfLayout hf_layout(const io::HfConfig& config) {
  if (const auto* qwen3 = std::get_if<io::Qwen3Config>(&config)) {
    auto c = qwen3_transformer_config(*qwen3);
    return {"qwen3", c, qwen3_tensor_map(c)};
  }
  if (const auto* next = std::get_if<io::Qwen3NextConfig>(&config)) {
    auto c = qwen3_next_transformer_config(*next);
    return {"qwen3_next", c, qwen3_next_tensor_map(c)};
  }
  if (const auto* nemotron_h = std::get_if<io::NemotronHConfig>(&config)) {
    auto c = nemotron_h_transformer_config(*nemotron_h);
    return {"nemotron_h", c, nemotron_h_tensor_map(c)};
  }
  if (const auto* v32 = std::get_if<io::DeepseekV32Config>(&config)) {
    auto c = deepseek_v32_transformer_config(*v32);
    return {"deepseek_v32", c, deepseek_v32_tensor_map(c)};
  }
  if (const auto* v4 = std::get_if<io::DeepseekV4Config>(&config)) {
    auto c = deepseek_v4_transformer_config(*v4);
    return {"deepseek_v4", c, deepseek_v4_tensor_map(c)};
  }
  fail("architecture ", io::model_type(config), " is not supported yet (supported: ", kSupported, ")");
}

HfModel build_hf_model(const io::HfConfig& config) {
  auto layout = hf_layout(config);
  auto model_config = std::make_shared<const TransformerConfig>(std::move(layout.config));
  return {layout.model_type, model_config, build_language_model(model_config), std::move(layout.tensor_map)};
}

namespace {
// HF transformers drops DeepSeek's MTP layers on load, and checkpoints saved through it lack
// them: strata builds them only when the checkpoint holds them (its first MTP layer's eh_proj).
void drop_mtp_layers_absent_from(io::HfConfig& config, const io::CheckpointReader& checkpoint) {
  if (auto* v32 = std::get_if<io::DeepseekV32Config>(&config)) {
    if (v32->num_nextn_predict_layers > 0 &&
        !checkpoint.contains(cat("model.layers.", v32->num_hidden_layers, ".eh_proj.weight")))
      v32->num_nextn_predict_layers = 0;
  }
}
}  // namespace

HfModel load_hf_model(const std::filesystem::path& dir) {
  auto config = io::read_hf_config(dir / "config.json");
  auto checkpoint = io::CheckpointReader::open(dir);
  drop_mtp_layers_absent_from(config, checkpoint);
  auto hf = build_hf_model(config);
  auto tensors = hf.tensor_map.import([&](const std::string& name) { return checkpoint.load(name); },
                                      checkpoint.names(), dir.string());
  hf.model->load_canonical_state_dict(tensors, dir.string());
  return hf;
}

std::filesystem::path hf_model_dir(const std::filesystem::path& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir / "config.json", error) && std::filesystem::exists(dir / "model" / "config.json", error))
    return dir / "model";
  return dir;
}

}  // namespace strata::hf
