#pragma once
// What every DeepSeek HF fixture test checks the same way (tests/fixtures/hf/<arch>): its
// config.json, the whole model against HF's logits, loss and every gradient, and layer 0 against
// the captured input and output.
#include <gtest/gtest.h>

#include <fstream>
#include <variant>

#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"
#include "strata/layers/top_k_selection.h"
#include "test_util.h"

namespace strata::testing {

inline nlohmann::json fixture_config(const std::string& arch) {
  std::ifstream in(fixture(arch) + "/model/config.json");
  return nlohmann::json::parse(in);
}

// The fixture's config.json (or an edited copy) as the importer parses it.
template <class Config>
Config parse_hf_config_as(const nlohmann::json& json) {
  return std::get<Config>(io::parse_hf_config(json, "config.json"));
}

// hf_check at the float32 tolerances, and a gradient compared for every one HF recorded (the
// indexers and the expert bias have none, in HF as in strata).
inline void expect_model_matches_hf(const std::string& arch, const std::string& model_type) {
  auto result = hf::hf_check(fixture(arch), test_device());
  EXPECT_EQ(result.model_type, model_type);
  EXPECT_LE(result.logits_rel, 1e-4);
  EXPECT_LE(result.loss_abs, 1e-5);
  EXPECT_LE(result.grad_rel_max, 1e-3) << result.grad_rel.front().first;
  auto reference = io::SafetensorsFile::open(fixture(arch) + "/reference.safetensors");
  size_t reference_grads = 0;
  for (const auto& name : reference.names()) reference_grads += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(result.grad_rel.size(), reference_grads);
  EXPECT_TRUE(result.pass);
}

// Layer 0 on HF's captured input gives HF's captured output. The model's forward first fills the
// context as it does for its layers; ties in an indexer's scores go as HF's did (hf_check.cpp).
inline void expect_first_layer_matches_hf(const std::string& arch) {
  auto hf = hf::load_hf_model(fixture(arch) + "/model");
  auto ref = io::SafetensorsFile::open(fixture(arch) + "/reference.safetensors");
  ReferenceTopKTieOrder reference_ties;
  ForwardContext ctx;
  hf.model->forward(ref.load("input_ids"), ctx);
  auto out = hf.model->decoder().layer(0).forward(ref.load("capture.model.layers.0.in0"), ctx);
  EXPECT_LE(hf::relative_error(out, ref.load("capture.model.layers.0.out0")), 1e-5);
}

}  // namespace strata::testing
