#pragma once
// hf-check: builds a model from an HF checkpoint, runs the reference inputs forward and backward,
// and compares logits, loss and every parameter gradient with what HF computed.
//   DIR/model/                 config.json + safetensors, as HF wrote them
//   DIR/reference.safetensors  input_ids, logits, loss, grad.<hf name> (tests/fixtures/hf/README.md)
#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

namespace strata::hf {

struct HfCheckTolerances {
  double logits_rel = 1e-4;
  double loss_abs = 1e-5;
  double grad_rel = 1e-3;
};

struct HfCheckResult {
  std::string model_type;
  double logits_rel = 0.0;  // ||logits - ref|| / ||ref||
  double loss_abs = 0.0;    // |loss - ref|
  double grad_rel_max = 0.0;
  std::vector<std::pair<std::string, double>> grad_rel;  // per HF parameter, worst first
  bool pass = false;
  at::Tensor logits;  // strata's, on the CPU (scripts/check_hf_export.py compares them with HF's)
};

// `reference_device` is where HF computed the reference (the fixtures: the CPU). Indexers
// (DeepSeek-V3.2, V4) then choose among tied scores as torch.topk did there (top_k_selection.h).
HfCheckResult hf_check(const std::filesystem::path& dir, at::Device device = at::kCPU,
                       const HfCheckTolerances& tolerances = {}, at::Device reference_device = at::kCPU);

// ||a - b|| / ||b|| in float64.
double relative_error(const at::Tensor& a, const at::Tensor& b);

// "hf-check <arch>: logits_rel=<x> loss_abs=<x> grad_rel_max=<x> PASS|FAIL"
std::string summary_line(const HfCheckResult& result);

}  // namespace strata::hf
