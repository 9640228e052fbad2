#include "strata/hf/architecture.h"

#include "strata/core/error.h"
#include "strata/hf/deepseek_v32.h"
#include "strata/hf/deepseek_v4.h"
#include "strata/hf/nemotron_h.h"
#include "strata/hf/qwen3.h"
#include "strata/hf/qwen3_next.h"
#include "strata/io/safetensors.h"

namespace strata::hf {

namespace {
constexpr const char* kSupported = "qwen3, nemotron_h, qwen3_next, deepseek_v32, deepseek_v4";
}

HfModel build_hf_model(const io::HfConfig& config) {
  if (const auto* qwen3 = std::get_if<io::Qwen3Config>(&config)) return build_qwen3(*qwen3);
  if (const auto* next = std::get_if<io::Qwen3NextConfig>(&config)) return build_qwen3_next(*next);
  if (const auto* nemotron_h = std::get_if<io::NemotronHConfig>(&config)) return build_nemotron_h(*nemotron_h);
  if (const auto* v32 = std::get_if<io::DeepseekV32Config>(&config)) return build_deepseek_v32(*v32);
  if (const auto* v4 = std::get_if<io::DeepseekV4Config>(&config)) return build_deepseek_v4(*v4);
  fail("architecture ", io::model_type(config), " is not supported yet (supported: ", kSupported, ")");
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

}  // namespace strata::hf
