#include "strata/hf/hf_check.h"

#include <cstdio>
#include <algorithm>
#include <optional>
#include <set>

#include "strata/core/error.h"
#include "strata/hf/architecture.h"
#include "strata/io/safetensors.h"
#include "strata/layers/top_k_selection.h"
#include "strata/model/loss.h"

namespace strata::hf {

namespace {

// strata on the reference's tokens: logits, loss, and every gradient under the names HF's modules
// have at run time.
struct StrataRun {
  std::string model_type;
  at::Tensor logits, loss;
  std::map<std::string, at::Tensor> grads;
};

// `dtype` converts the checkpoint's parameters (the float64 truth); without it they stay as stored.
StrataRun run_strata(const std::filesystem::path& dir, const at::Tensor& input_ids, at::Device device,
                     std::optional<at::ScalarType> dtype, at::Device reference_device) {
  auto hf = load_hf_model(dir / "model");
  auto& model = *hf.model;
  if (dtype) model.to(*dtype);
  model.to(device);
  model.train();  // dropout is zero in the fixtures; train mode checks the training path
  auto ids = input_ids.to(device);
  // HF's indexers (DeepSeek-V3.2, V4) chose among exactly tied scores as torch.topk does on the
  // reference's device, a choice no index rule reproduces on the CPU; strata's own rule (lowest
  // index) would read other tied keys. Choosing as the reference did, on any device, keeps the
  // comparison to rounding.
  auto logits = [&] {
    ReferenceTopKTieOrder reference_ties(reference_device);
    return model.forward(ids);
  }();
  auto loss = causal_lm_loss(logits, ids);
  loss.backward();
  // Buffers (the MoE expert bias) and parameters the loss does not reach (DSA's indexer) get no
  // gradient, and HF records none for them. Missing gradients count as zero: compared with a
  // reference gradient they fail, and a reference without one must have a zero one here.
  std::map<std::string, at::Tensor> grads;
  for (const auto& [name, tensor] : model.canonical_state_dict())
    grads.emplace(name, tensor.grad().defined() ? tensor.grad() : at::zeros_like(tensor));
  return {hf.model_type, logits.detach(), loss.detach(), hf.tensor_map.export_runtime(grads)};
}

// The factor between two float32 evaluations' errors that still counts as the same rounding: a
// different summation order lands within it (measured: strata's CPU float32 and HF's miss the
// float64 value of qwen3_next's layer-0 A_log gradient by 8.72e-3 and 8.70e-3), a wrong formula
// misses by more than float32 does.
constexpr double kSameRounding = 2.0;

}  // namespace

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  auto a64 = a.detach().to(at::kCPU, at::kDouble), b64 = b.detach().to(at::kCPU, at::kDouble);
  if (a64.sizes() != b64.sizes()) fail("relative_error: shapes differ (", a64.sizes(), " vs ", b64.sizes(), ")");
  const auto ref = b64.norm().item<double>();
  const auto diff = (a64 - b64).norm().item<double>();
  return ref == 0.0 ? diff : diff / ref;
}

HfCheckResult hf_check(const std::filesystem::path& dir, at::Device device, const HfCheckTolerances& tol,
                       at::Device reference_device) {
  auto reference = io::SafetensorsFile::open(dir / "reference.safetensors");
  const auto input_ids = reference.load("input_ids");
  const auto ours = run_strata(dir, input_ids, device, std::nullopt, reference_device);
  HfCheckResult result;
  result.model_type = ours.model_type;
  result.logits_rel = relative_error(ours.logits, reference.load("logits"));
  result.logits = ours.logits.cpu();
  result.loss_abs = std::abs(ours.loss.item<double>() - reference.load("loss").item<double>());

  std::vector<std::string> missed;
  for (const auto& [hf_name, grad] : ours.grads) {
    const auto ref_name = "grad." + hf_name;
    if (!reference.contains(ref_name)) {
      if (grad.count_nonzero().item<int64_t>() != 0)
        fail(dir.string(), ": strata computed a gradient for ", hf_name, " but the reference has no ", ref_name);
      continue;
    }
    result.grad_rel.emplace_back(hf_name, relative_error(grad, reference.load(ref_name)));
    if (result.grad_rel.back().second > tol.grad_rel) missed.push_back(hf_name);
  }

  // A gradient that misses the tolerance may be one the float32 reference cannot resolve to it: a
  // tiny sum of large terms that cancel (Gated DeltaNet's A_log and dt_bias, see pairwise_log_decay
  // in src/layers/gated_delta_rule.cpp). It is judged then against the truth, strata in float64 on
  // the CPU, and passes when the reference itself misses that truth by more than the tolerance, by
  // no more than float32 rounding does (strata's own float32 CPU run measures that: a reference
  // off for another reason, or a strata formula HF does not share, is not excused), and strata
  // misses it by no more than the reference does (both to kSameRounding).
  std::set<std::string> excused;
  if (!missed.empty()) {
    const auto truth = run_strata(dir, input_ids, at::kCPU, at::kDouble, reference_device);
    std::optional<StrataRun> cpu32;  // the device run itself when that is the CPU
    if (!device.is_cpu()) cpu32 = run_strata(dir, input_ids, at::kCPU, std::nullopt, reference_device);
    for (const auto& name : missed) {
      const auto& exact = truth.grads.at(name);
      Float64Judgement j{.name = name,
                         .reference_error = relative_error(reference.load("grad." + name), exact),
                         .strata_error = relative_error(ours.grads.at(name), exact),
                         .float32_error = relative_error((cpu32 ? *cpu32 : ours).grads.at(name), exact)};
      j.pass = j.reference_error > tol.grad_rel && j.reference_error <= kSameRounding * j.float32_error &&
               j.strata_error <= kSameRounding * j.reference_error;
      if (j.pass) excused.insert(name);
      result.float64_judged.push_back(j);
    }
  }
  std::sort(result.grad_rel.begin(), result.grad_rel.end(), [](auto& a, auto& b) { return a.second > b.second; });
  for (const auto& [name, rel] : result.grad_rel)
    if (!excused.count(name)) result.grad_rel_max = std::max(result.grad_rel_max, rel);
  result.pass = result.logits_rel <= tol.logits_rel && result.loss_abs <= tol.loss_abs &&
                result.grad_rel_max <= tol.grad_rel;
  return result;
}

std::string summary_line(const HfCheckResult& r) {
  char buf[320];
  int n = std::snprintf(buf, sizeof buf, "hf-check %s: logits_rel=%.3e loss_abs=%.3e grad_rel_max=%.3e",
                        r.model_type.c_str(), r.logits_rel, r.loss_abs, r.grad_rel_max);
  int excused = 0;
  for (const auto& j : r.float64_judged) excused += j.pass;
  if (excused > 0) n += std::snprintf(buf + n, sizeof buf - n, " (%d within the reference's float32 error)", excused);
  std::snprintf(buf + n, sizeof buf - n, " %s", r.pass ? "PASS" : "FAIL");
  return buf;
}

}  // namespace strata::hf
