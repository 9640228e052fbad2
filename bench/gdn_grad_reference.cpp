// The chunked gated delta rule's output and input gradients on given inputs, twice: in float64
// (the LibTorch twin; every kernel is float32-only, so float64 runs the twin's algebra exactly)
// and as strata computes them for bf16 inputs (kernels on). bench/compare_gdn.py writes the inputs
// (q, k, v, g, beta and the output gradient d_out, as flash-linear-attention receives them),
// runs this, and compares flash-linear-attention's gradients and strata's own with the float64 ones.
//   strata_bench_gdn_grad_reference INPUTS.safetensors OUTPUTS.safetensors [--chunk-size 64]
// OUTPUTS holds float64/<name> and strata/<name> for name in out, q, k, v, g, beta.
#include <CLI/CLI.hpp>

#include <map>
#include <string>

#include "strata/io/safetensors.h"
#include "strata/layers/gated_delta_rule.h"

namespace {

// Runs the rule on copies of `inputs` cast to `dtype` (g stays float32 or wider, as callers pass it).
// Returns out and the five input gradients.
std::map<std::string, at::Tensor> rule_gradients(const std::map<std::string, at::Tensor>& inputs, at::ScalarType dtype,
                             int64_t chunk_size) {
  const auto device = at::Device(at::kCUDA);
  std::map<std::string, at::Tensor> x;
  for (const auto* name : {"q", "k", "v", "g", "beta"}) {
    const auto as = std::string(name) == "g" ? at::promote_types(dtype, at::kFloat) : dtype;
    x[name] = inputs.at(name).to(device, as).requires_grad_(true);
  }
  auto rule = strata::gated_delta_rule_chunked(x["q"], x["k"], x["v"], x["g"], x["beta"], chunk_size, std::nullopt);
  rule.out.backward(inputs.at("d_out").to(device, rule.out.scalar_type()));
  std::map<std::string, at::Tensor> result{{"out", rule.out.detach().cpu()}};
  for (const auto& [name, t] : x) result[name] = t.grad().cpu();
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"the chunked delta rule's gradients in float64 and as strata computes them in bf16"};
  std::string inputs_path, outputs_path;
  int64_t chunk_size = 64;
  app.add_option("inputs", inputs_path,
                 "safetensors with q, k, v, g, beta, d_out (q and k [1, T, Hk, Dk], the rest [1, T, H, ...])")
      ->required();
  app.add_option("outputs", outputs_path, "safetensors to write")->required();
  app.add_option("--chunk-size", chunk_size);
  CLI11_PARSE(app, argc, argv);

  const auto file = strata::io::SafetensorsFile::open(inputs_path);
  std::map<std::string, at::Tensor> inputs;
  for (const auto* name : {"q", "k", "v", "g", "beta", "d_out"}) inputs[name] = file.load(name);

  std::map<std::string, at::Tensor> outputs;
  for (const auto& [prefix, dtype] : {std::pair{"float64/", at::kDouble}, std::pair{"strata/", at::kBFloat16}})
    for (const auto& [name, t] : rule_gradients(inputs, dtype, chunk_size)) outputs[prefix + name] = t;
  strata::io::save_safetensors(outputs_path, outputs);
  return 0;
}
