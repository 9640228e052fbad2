// The dense GPT built from typed specs against HF Qwen3 (tests/fixtures/hf/qwen3_dense).
#include <gtest/gtest.h>

#include "strata/core/error.h"
#include "strata/hf/architecture.h"
#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"
#include "test_util.h"

namespace strata::hf {
namespace {

TEST(HfQwen3, MatchesLogitsLossAndEveryGradient) {
  auto result = hf_check(testing::fixture("qwen3_dense"), testing::test_device());
  EXPECT_EQ(result.model_type, "qwen3");
  EXPECT_LE(result.logits_rel, 1e-4);
  EXPECT_LE(result.loss_abs, 1e-5);
  EXPECT_LE(result.grad_rel_max, 1e-3) << result.grad_rel.front().first;
  EXPECT_EQ(result.grad_rel.size(), 25u);  // every HF parameter has its gradient compared
  EXPECT_TRUE(result.pass);
}

TEST(HfQwen3, HiddenStatesMatchLayerByLayer) {
  auto hf = load_hf_model(testing::fixture("qwen3_dense") + "/model");
  auto ref = io::SafetensorsFile::open(testing::fixture("qwen3_dense") + "/reference.safetensors");
  auto input_ids = ref.load("input_ids");
  // Layer 0's captured input is the embedding output; its output is hidden_states.1.
  auto capture_in = ref.load("capture.model.layers.0.in0");
  auto capture_out = ref.load("capture.model.layers.0.out0");
  auto& model = *hf.model;
  ForwardContext ctx;
  model.forward(input_ids, ctx);  // fills ctx's rotary tables
  auto layer0 = model.decoder().layer(0).forward(capture_in, ctx);
  EXPECT_LE(relative_error(layer0, capture_out), 1e-5);
}

TEST(HfQwen3, ExportRoundTripsTheCheckpoint) {
  auto dir = testing::fixture("qwen3_dense") + "/model";
  auto hf = load_hf_model(dir);
  auto exported = hf.tensor_map.export_hf(hf.model->canonical_state_dict());
  auto original = io::CheckpointReader::open(dir);
  ASSERT_EQ(exported.size(), original.names().size());
  for (const auto& [name, tensor] : exported) EXPECT_TRUE(at::equal(tensor, original.load(name))) << name;
}

TEST(HfCheck, SummaryLineHasTheAgreedFormat) {
  HfCheckResult r{.model_type = "qwen3", .logits_rel = 1.5e-7, .loss_abs = 2e-8, .grad_rel_max = 3e-6, .pass = true};
  EXPECT_EQ(summary_line(r), "hf-check qwen3: logits_rel=1.500e-07 loss_abs=2.000e-08 grad_rel_max=3.000e-06 PASS");
}

}  // namespace
}  // namespace strata::hf
