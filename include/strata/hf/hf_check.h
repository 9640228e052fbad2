#pragma once
// hf-check: builds a model from an HF checkpoint, runs the reference inputs forward and backward,
// and compares logits, loss and every parameter gradient with what HF computed.
//   DIR/model/                 config.json + safetensors, as HF wrote them
//   DIR/reference.safetensors  input_ids, logits, loss, grad.<hf name> (tests/fixtures/hf/README.md)
#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace strata::hf {

struct HfCheckTolerances {
  double logits_rel = 1e-4;
  double loss_abs = 1e-5;
  double grad_rel = 1e-3;
};

// A gradient that missed the tolerance against HF, judged against strata in float64 on the CPU
// (the truth): errors relative to it, of HF's reference, of strata's run, and of strata in float32
// on the CPU (how far float32 rounding alone takes this gradient). hf_check.cpp says when it passes.
struct Float64Judgement {
  std::string name;
  double reference_error = 0.0, strata_error = 0.0, float32_error = 0.0;
  bool pass = false;
};

struct HfCheckResult {
  std::string model_type;
  double logits_rel = 0.0;  // ||logits - ref|| / ||ref||
  double loss_abs = 0.0;    // |loss - ref|
  double grad_rel_max = 0.0;  // the worst of grad_rel, less the gradients float64_judged passes
  std::vector<std::pair<std::string, double>> grad_rel;  // per HF parameter against HF, worst first
  std::vector<Float64Judgement> float64_judged;
  bool pass = false;
  at::Tensor logits;  // strata's, on the CPU (scripts/check_hf_export.py compares them with HF's)
};

// `reference_device` is where HF computed the reference (the fixtures: the CPU). Indexers
// (DeepSeek-V3.2, V4) then choose among tied scores as torch.topk did there (top_k_selection.h).
HfCheckResult hf_check(const std::filesystem::path& dir, at::Device device = at::kCPU,
                       const HfCheckTolerances& tolerances = {}, at::Device reference_device = at::kCPU);

// ||a - b|| / ||b|| in float64.
double relative_error(const at::Tensor& a, const at::Tensor& b);

// "hf-check <arch>: logits_rel=<x> loss_abs=<x> grad_rel_max=<x> PASS|FAIL", with
// "(<n> within the reference's float32 error)" before PASS|FAIL when float64_judged passed n.
std::string summary_line(const HfCheckResult& result);

}  // namespace strata::hf
