// strata -> HF export: each fixture imported, exported and imported again gives the same tensors
// and logits and a config.json with the fixture's fields; strata-native models export to the
// architecture that makes them, and models no architecture makes are refused, saying why.
#include <gtest/gtest.h>

#include <fstream>

#include "strata/core/config_json.h"
#include "strata/hf/architecture.h"
#include "strata/hf/export.h"
#include "strata/hf/hf_check.h"
#include "strata/io/json_fields.h"
#include "strata/io/safetensors.h"
#include "strata/layers/top_k_selection.h"
#include "strata/model/build_model.h"
#include "strata/train/default_run.h"
#include "test_util.h"

namespace strata::hf {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

Json read_json(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return io::parse_json_allowing_python_floats(text.str());
}

// Every key of `expected` is in `actual` with an equal value (objects compared the same way), but
// the keys in `exceptions`; the keys that are not, as "key: expected X, got Y".
std::vector<std::string> missing_or_different(const Json& expected, const Json& actual, const std::string& path,
                                              const std::set<std::string>& exceptions) {
  std::vector<std::string> problems;
  for (const auto& [key, value] : expected.items()) {
    const auto where = path.empty() ? key : path + "." + key;
    if (exceptions.count(where)) continue;
    if (!actual.contains(key)) {
      problems.push_back(where + ": missing (expected " + value.dump() + ")");
    } else if (value.is_object() && actual[key].is_object()) {
      auto nested = missing_or_different(value, actual[key], where, exceptions);
      problems.insert(problems.end(), nested.begin(), nested.end());
    } else if (value != actual[key]) {
      problems.push_back(where + ": expected " + value.dump() + ", got " + actual[key].dump());
    }
  }
  return problems;
}

at::Tensor logits_of(LanguageModel& model, const at::Tensor& input_ids) {
  at::NoGradGuard no_grad;
  model.eval();
  return model.forward(input_ids);
}

// Exports `model` into a fresh folder, which it returns, with the architecture chosen.
fs::path export_model(const LanguageModel& model, const std::string& name, std::string& model_type) {
  const auto plan = plan_hf_export(model.config(), hf_config_extras(model.config(), at::kFloat));
  model_type = plan.model_type;
  const auto dir = testing::fresh_temp_dir("export_" + name);
  write_hf_folder(dir, plan, hf_tensors(model, plan), {});
  return dir;
}

struct Fixture {
  std::string dir;          // under tests/fixtures
  std::string model_type;
  std::set<std::string> exceptions;  // config.json keys strata does not carry (docs/export.md)
};

// transformers_version is HF's stamp; the scaled-RoPE fixtures other than YaRN set a context
// length strata has no field for (YaRN's is factor x original_max_position_embeddings); the Qwen3-Next
// YaRN fixture keeps HF's default 0.25 as the top-level partial_rotary_factor, which HF does not read
// (rope_parameters' 0.5 is the model's), and the dense DeepSeek one MoE sizes that size nothing.
const std::vector<Fixture> kFixtures = {
    {"hf/qwen3_dense", "qwen3", {"transformers_version"}},
    {"hf/qwen3_next", "qwen3_next", {"transformers_version"}},
    {"hf/nemotron_h", "nemotron_h", {"transformers_version"}},
    {"hf/deepseek_v32", "deepseek_v32", {"transformers_version"}},
    {"hf_scaled_rope/qwen3_dense_yarn", "qwen3", {"transformers_version"}},
    {"hf_scaled_rope/qwen3_dense_linear", "qwen3", {"transformers_version", "max_position_embeddings"}},
    {"hf_scaled_rope/qwen3_dense_llama3", "qwen3", {"transformers_version", "max_position_embeddings"}},
    {"hf_scaled_rope/qwen3_next_yarn", "qwen3_next", {"transformers_version", "partial_rotary_factor"}},
    {"hf_scaled_rope/deepseek_v32_yarn",
     "deepseek_v32",
     {"transformers_version", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"}},
};

fs::path fixture_dir(const std::string& dir) { return fs::path(STRATA_FIXTURES_DIR).parent_path() / dir; }

TEST(HfExport, FixturesRoundTripTensorsLogitsAndConfig) {
  for (const auto& f : kFixtures) {
    SCOPED_TRACE(f.dir);
    const auto source = fixture_dir(f.dir) / "model";
    auto imported = load_hf_model(source);
    std::string model_type;
    const auto exported_dir = export_model(*imported.model, fs::path(f.dir).filename().string(), model_type);
    auto again = load_hf_model(exported_dir);
    EXPECT_EQ(model_type, f.model_type);
    EXPECT_EQ(again.model_type, f.model_type);

    // The exported checkpoint is the fixture's, tensor for tensor.
    auto exported = io::CheckpointReader::open(exported_dir);
    auto original = io::CheckpointReader::open(source);
    EXPECT_EQ(exported.names(), original.names());
    for (const auto& name : original.names())
      EXPECT_TRUE(at::equal(exported.load(name), original.load(name))) << name;

    // Imported again: the same canonical tensors and logits.
    const auto before = imported.model->canonical_state_dict(), after = again.model->canonical_state_dict();
    ASSERT_EQ(before.size(), after.size());
    for (const auto& [name, tensor] : before) EXPECT_TRUE(at::equal(tensor, after.at(name))) << name;
    const auto input_ids = io::SafetensorsFile::open(fixture_dir(f.dir) / "reference.safetensors").load("input_ids");
    ReferenceTopKTieOrder reference_ties;  // DeepSeek's indexers choose among ties as HF's reference did
    const auto logits = logits_of(*imported.model, input_ids);
    EXPECT_TRUE(at::equal(logits, logits_of(*again.model, input_ids)));
    // And those logits are HF's (the fixture's reference), so the export is HF's model.
    EXPECT_LE(relative_error(logits, io::SafetensorsFile::open(fixture_dir(f.dir) / "reference.safetensors")
                                         .load("logits")),
              1e-4);

    // config.json holds every field of the fixture's, with its value.
    const auto problems =
        missing_or_different(read_json(source / "config.json"), read_json(exported_dir / "config.json"), "", f.exceptions);
    EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  }
}

TEST(HfExport, TokenizerIdsGoIntoConfig) {
  auto imported = load_hf_model(testing::fixture("qwen3_dense") + "/model");
  auto extras = hf_config_extras(imported.model->config(), at::kFloat);
  extras.bos_token_id = 5;
  extras.eos_token_id = 7;
  const auto plan = plan_hf_export(imported.model->config(), extras);
  EXPECT_EQ(plan.config_json["bos_token_id"], 5);
  EXPECT_EQ(plan.config_json["eos_token_id"], 7);
  EXPECT_EQ(hf_config_extras(imported.model->config(), at::kBFloat16).dtype, "bfloat16");
}

// A strata-native model: built from its config with random weights, exported, imported: the same
// logits (the architecture computes this model exactly).
void expect_exports_as(const TransformerConfig& config, const std::string& expected_type, const std::string& name) {
  SCOPED_TRACE(name);
  at::manual_seed(3);
  auto model = build_language_model(std::make_shared<const TransformerConfig>(config));
  std::string model_type;
  auto again = load_hf_model(export_model(*model, name, model_type));
  EXPECT_EQ(model_type, expected_type);
  const auto input_ids = at::randint(config.vocab_size, {2, 24}, at::kLong);
  EXPECT_TRUE(at::equal(logits_of(*model, input_ids), logits_of(*again.model, input_ids)));
}

TEST(HfExport, StrataModelsExportToTheArchitectureThatMakesThem) {
  auto gpt = *testing::small_config();  // attention + MLP layers without a pattern, q/k norms
  expect_exports_as(gpt, "qwen3", "gpt");

  auto unfused = gpt;
  unfused.hybrid_layer_pattern = "*-*-";
  unfused.num_layers = 4;
  unfused.rotary_scaling.kind = RotaryScalingKind::Linear;
  unfused.rotary_scaling.factor = 2.0;
  expect_exports_as(unfused, "qwen3", "unfused");

  // strata's default hybrid, with Qwen3-Next's gated attention and (1 + w) norms, and a MoE layer.
  auto hybrid = train::default_model_config();
  hybrid.hybrid_layer_pattern = "G-*E";
  hybrid.attention_output_gate = true;
  hybrid.layernorm_zero_centered_gamma = true;
  hybrid.rotary_percent = 0.5;
  hybrid.num_moe_experts = 4;
  hybrid.moe_router_topk = 2;
  hybrid.moe_ffn_hidden_size = 32;
  hybrid.moe_shared_expert_intermediate_size = 48;
  hybrid.moe_shared_expert_gate = true;
  expect_exports_as(hybrid, "qwen3_next", "hybrid");

  auto mamba = gpt;
  mamba.hybrid_layer_pattern = "M-*-";
  mamba.num_layers = 4;
  mamba.qk_layernorm = false;
  mamba.position_embedding_type = PositionEmbeddingType::None;
  mamba.gated_linear_unit = false;
  mamba.activation_func = Activation::SquaredReLU;
  mamba.mamba_num_heads = 4;
  mamba.mamba_head_dim = 16;
  mamba.mamba_state_dim = 8;
  mamba.mamba_num_groups = 2;
  mamba.mamba_time_step_limit_min = mamba.mamba_time_step_min;
  expect_exports_as(mamba, "nemotron_h", "mamba");
}

TEST(HfExport, RefusesModelsNoArchitectureMakes) {
  // strata's default model: attention without Qwen3-Next's output gate, norms without its (1 + w).
  const auto refused = testing::error_of([] {
    plan_hf_export(train::default_model_config(), {});
  });
  EXPECT_NE(refused.find("no HF architecture strata exports"), std::string::npos) << refused;
  EXPECT_NE(refused.find("qwen3_next: attention_output_gate is false in this model, true in qwen3_next"),
            std::string::npos)
      << refused;
  EXPECT_NE(refused.find("layernorm_zero_centered_gamma is false in this model, true in qwen3_next"), std::string::npos)
      << refused;
  EXPECT_NE(refused.find("qwen3: layer 0 is Gated DeltaNet"), std::string::npos) << refused;

  auto mhc = *testing::small_config();
  mhc.enable_mhc_connections = true;
  const auto with_mhc = testing::error_of([&] { plan_hf_export(mhc, {}); });
  EXPECT_NE(with_mhc.find("qwen3: enable_mhc_connections is true in this model, false in qwen3"), std::string::npos)
      << with_mhc;

  auto mtp = *testing::small_config();
  mtp.mtp_num_layers = 1;
  const auto with_mtp = testing::error_of([&] { plan_hf_export(mtp, {}); });
  EXPECT_NE(with_mtp.find("qwen3: layers is \"*-*-/*-\" in this model, \"*-*-\" in qwen3"), std::string::npos)
      << with_mtp;

  auto no_qk_norm = *testing::small_config();
  no_qk_norm.qk_layernorm = false;
  const auto plain = testing::error_of([&] { plan_hf_export(no_qk_norm, {}); });
  EXPECT_NE(plain.find("qwen3: qk_layernorm is false in this model, true in qwen3"), std::string::npos) << plain;
  EXPECT_NE(plain.find("nemotron_h: "), std::string::npos) << plain;
}

}  // namespace
}  // namespace strata::hf
