// The memory lower bound checked before a run builds its model: it must stay a lower bound (never
// above what the model really holds, or a run that fits would be refused) and an honest one (its
// parameter count exact, or runs far too large would pass), and the refusal must give the numbers
// and the flags that set them.
#include "strata/train/memory_estimate.h"

#include <gtest/gtest.h>

#include <regex>

#include "strata/model/build_model.h"
#include "strata/model/layer_pattern.h"
#include "strata/model/loss.h"
#include "test_util.h"

namespace strata::train {
namespace {

// Widths at which the weight matrices dominate, as they do in real models.
TransformerConfig moderate(const std::string& pattern) {
  TransformerConfig c;
  use_llama_style(c);
  c.hybrid_layer_pattern = pattern;
  c.num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  c.hidden_size = 256;
  c.ffn_hidden_size = 512;
  c.num_attention_heads = 8;
  c.num_query_groups = 4;
  c.kv_channels = 32;
  c.vocab_size = 512;
  c.qk_layernorm = true;
  return c;
}

TransformerConfig dense() { return moderate("[*-][*-]"); }

TransformerConfig gated_delta_net_hybrid() {
  auto c = moderate("[G-][G-][*-]");
  c.linear_num_key_heads = 4;
  c.linear_num_value_heads = 8;
  c.linear_key_head_dim = 32;
  c.linear_value_head_dim = 32;
  c.attention_output_gate = true;
  return c;
}

TransformerConfig mamba2() {
  auto c = moderate("M-M-");
  c.mamba_head_dim = 32;
  c.mamba_num_groups = 2;
  c.mamba_state_dim = 32;
  return c;
}

TransformerConfig mixture_of_experts() {
  auto c = moderate("[*E][*E]");
  c.num_moe_experts = 4;
  c.moe_router_topk = 2;
  c.moe_ffn_hidden_size = 256;
  c.moe_shared_expert_intermediate_size = 256;
  return c;
}

TransformerConfig latent_attention() {
  auto c = moderate("[A-][A-]");
  c.q_lora_rank = 128;
  c.kv_lora_rank = 64;
  c.qk_head_dim = 32;
  c.qk_pos_emb_head_dim = 16;
  c.v_head_dim = 32;
  return c;
}

// MLA with DeepSeek's lightning indexer.
TransformerConfig sparse_attention() {
  auto c = latent_attention();
  c.hybrid_layer_pattern = "[D-][D-]";
  c.dsa_indexer_n_heads = 4;
  c.dsa_indexer_head_dim = 32;
  c.dsa_indexer_topk = 8;
  return c;
}

int64_t real_parameters(const TransformerConfig& c) {
  auto model = build_language_model(std::make_shared<const TransformerConfig>(c));
  int64_t count = 0;
  for (const auto& [name, tensor] : model->canonical_state_dict()) count += tensor.numel();
  return count;
}

TEST(MemoryEstimate, ParameterCountIsExact) {
  for (const auto& [name, config] : std::vector<std::pair<std::string, TransformerConfig>>{
           {"dense", dense()},
           {"gated delta net hybrid", gated_delta_net_hybrid()},
           {"mamba2", mamba2()},
           {"mixture of experts", mixture_of_experts()},
           {"latent attention", latent_attention()},
           {"sparse attention", sparse_attention()}}) {
    const auto estimate = estimate_training_memory(config, 1, 2, false, false);
    const auto real = static_cast<double>(real_parameters(config));
    EXPECT_EQ(estimate.parameters, real) << name;
    // Weights, gradients and AdamW's two moments, float32.
    EXPECT_EQ(estimate.parameter_bytes, 16.0 * estimate.parameters) << name;
  }
}

TEST(MemoryEstimate, ActivationsGrowLinearlyInBatchAndLengthAndShrinkWithRecompute) {
  const auto c = gated_delta_net_hybrid();
  const auto base = estimate_training_memory(c, 2, 64, false, false);
  EXPECT_GT(base.activation_bytes, 0.0);
  EXPECT_EQ(estimate_training_memory(c, 6, 64, false, false).activation_bytes, 3.0 * base.activation_bytes);
  EXPECT_EQ(estimate_training_memory(c, 2, 256, false, false).activation_bytes, 4.0 * base.activation_bytes);
  EXPECT_LT(estimate_training_memory(c, 2, 64, true, false).activation_bytes, base.activation_bytes);
  EXPECT_EQ(estimate_training_memory(c, 2, 64, false, true).activation_bytes, 0.5 * base.activation_bytes);
  // The parameters do not depend on the batch; shards split them.
  EXPECT_EQ(estimate_training_memory(c, 6, 256, true, true).parameter_bytes, base.parameter_bytes);
  EXPECT_EQ(estimate_training_memory(c, 2, 64, false, false, 4).parameter_bytes, base.parameter_bytes / 4.0);
}

// What autograd really keeps for backward of a forward and its loss, with and without recompute,
// is at least the estimate of the activations. (Models with a convolution, Gated DeltaNet's and
// Mamba2's, are left out: oneDNN's convolution refuses the counting allocator's pointers.)
TEST(MemoryEstimate, ActivationsAreALowerBoundOnWhatBackwardKeeps) {
  const int64_t batch = 2, length = 32;
  for (const auto& [name, config] : std::vector<std::pair<std::string, TransformerConfig>>{
           {"dense", dense()},
           {"mixture of experts", mixture_of_experts()},
           {"latent attention", latent_attention()}}) {
    auto model = build_language_model(std::make_shared<const TransformerConfig>(config));
    const auto ids = at::randint(config.vocab_size, {batch, length}, at::kLong);
    for (const bool recompute : {false, true}) {
      model->decoder().set_recompute(recompute);
      const auto kept = testing::bytes_saved_for_backward([&] {
        ForwardContext ctx;
        return std::vector{causal_lm_loss(model->forward(ids, ctx), ids)};
      });
      const auto estimate = estimate_training_memory(config, batch, length, recompute, false);
      EXPECT_LE(estimate.activation_bytes, static_cast<double>(kept)) << name << (recompute ? ", recompute" : "");
    }
  }
}

constexpr double kGiB = 1ull << 30;

TEST(CheckMemoryFits, RefusesAnEstimateAboveWhatTheMachineHasWithItsNumbers) {
  if (available_memory_bytes(at::kCPU) == 0.0) GTEST_SKIP() << "this machine does not say how much memory it has";
  // A petabyte: more than any machine this runs on.
  const MemoryEstimate estimate{.parameters = 1.25e13, .parameter_bytes = 2e5 * kGiB, .activation_bytes = 1e6 * kGiB};
  const auto message = testing::error_of([&] { check_memory_fits(estimate, 1, at::kCPU, 7, 4096); });
  EXPECT_TRUE(std::regex_search(
      message, std::regex("^this run needs at least 1.2e\\+06 GiB on cpu, more than the [0-9.e+]+ GiB available: "
                          "12500000000000 parameters take 2e\\+05 GiB with their gradients and AdamW state, the "
                          "activations of --micro-batch-size 7 x --seq-length 4096 at least 1e\\+06 GiB\\. ")))
      << message;
  // Ranks of one machine each need the whole estimate.
  const auto shared = testing::error_of([&] { check_memory_fits(estimate, 3, at::kCPU, 7, 4096); });
  EXPECT_NE(shared.find("needs at least 3.6e+06 GiB"), std::string::npos) << shared;
  EXPECT_NE(shared.find("on each of 3 ranks sharing this memory"), std::string::npos) << shared;
}

TEST(CheckMemoryFits, RefusesAHugeMicroBatchOfARealModel) {
  if (available_memory_bytes(at::kCPU) == 0.0) GTEST_SKIP() << "this machine does not say how much memory it has";
  const int64_t micro_batch = 1ll << 30, length = 1ll << 20;
  const auto estimate = estimate_training_memory(dense(), micro_batch, length, false, false);
  const auto message = testing::error_of([&] { check_memory_fits(estimate, 1, at::kCPU, micro_batch, length); });
  EXPECT_NE(message.find("--micro-batch-size 1073741824 x --seq-length 1048576"), std::string::npos) << message;
}

TEST(CheckMemoryFits, PassesASmallRun) {
  const auto small = estimate_training_memory(dense(), 2, 64, false, false);
  EXPECT_LT(small.total(), 64.0 * (1 << 20));  // the model of this file is small: well under 64 MiB
  EXPECT_NO_THROW(check_memory_fits(small, 1, at::kCPU, 2, 64));
}

}  // namespace
}  // namespace strata::train
