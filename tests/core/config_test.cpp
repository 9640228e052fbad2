#include "strata/core/config.h"

#include <gtest/gtest.h>

#include <limits>

#include "strata/core/error.h"

namespace strata {
namespace {

TransformerConfig small_config() {
  TransformerConfig c;
  c.num_layers = 2;
  c.hidden_size = 64;
  c.ffn_hidden_size = 128;
  c.num_attention_heads = 4;
  c.num_query_groups = 2;
  c.kv_channels = 16;
  c.vocab_size = 256;
  return c;
}

TEST(TransformerConfig, ValidConfigPasses) { EXPECT_NO_THROW(validate(small_config())); }

TEST(TransformerConfig, ErrorNamesFieldAndValue) {
  auto c = small_config();
  c.num_query_groups = 3;
  try {
    validate(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_query_groups = 3"), std::string::npos) << e.what();
  }
}

// 2 * hidden_size overflowed (undefined behaviour) when Mamba derived its heads from it; found by
// the model_config fuzzer.
TEST(TransformerConfig, MambaHeadsFromAHugeHiddenSizeAreRefused) {
  auto c = small_config();
  c.hybrid_layer_pattern = "M-";
  c.hidden_size = std::numeric_limits<int64_t>::max();
  try {
    validate(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TransformerConfig.hidden_size = 9223372036854775807: too large for "
                                         "mamba_num_heads = 0 to derive the heads"),
              std::string::npos)
        << e.what();
  }
}

TEST(TransformerConfig, RotaryDimIsEvenFraction) {
  auto c = small_config();
  c.rotary_percent = 0.25;
  EXPECT_EQ(c.rotary_dim(), 4);
}

TEST(TransformerConfig, RotaryScalingIsValidatedForItsKind) {
  auto c = small_config();
  c.rotary_scaling.original_max_position_embeddings = -1;  // unused without scaling
  EXPECT_NO_THROW(validate(c));
  c.rotary_scaling.kind = RotaryScalingKind::Llama3;
  c.rotary_scaling.factor = 8.0;
  try {
    validate(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "TransformerConfig.rotary_scaling.original_max_position_embeddings = -1 "
                                     "(llama3): expected the positive pre-training context length");
  }
  c.rotary_scaling.kind = RotaryScalingKind::Linear;  // linear places no bands, so needs no context
  EXPECT_NO_THROW(validate(c));
}

TEST(TransformerConfig, UnknownActivationListsValidValues) {
  try {
    parse_activation("swish", "--activation");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--activation: unknown activation 'swish'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("squared_relu"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata
