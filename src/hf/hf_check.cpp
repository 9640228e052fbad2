#include "strata/hf/hf_check.h"

#include <cstdio>

#include "strata/core/error.h"
#include "strata/hf/architecture.h"
#include "strata/io/safetensors.h"
#include "strata/layers/top_k_selection.h"
#include "strata/model/loss.h"

namespace strata::hf {

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  auto a64 = a.detach().to(at::kCPU, at::kDouble), b64 = b.detach().to(at::kCPU, at::kDouble);
  if (a64.sizes() != b64.sizes()) fail("relative_error: shapes differ (", a64.sizes(), " vs ", b64.sizes(), ")");
  const auto ref = b64.norm().item<double>();
  const auto diff = (a64 - b64).norm().item<double>();
  return ref == 0.0 ? diff : diff / ref;
}

HfCheckResult hf_check(const std::filesystem::path& dir, at::Device device, const HfCheckTolerances& tol,
                       at::Device reference_device) {
  auto hf = load_hf_model(dir / "model");
  auto reference = io::SafetensorsFile::open(dir / "reference.safetensors");
  HfCheckResult result;
  result.model_type = hf.model_type;

  auto& model = *hf.model;
  model.to(device);
  model.train();  // dropout is zero in the fixtures; train mode checks the training path
  auto input_ids = reference.load("input_ids").to(device);
  // HF's indexers (DeepSeek-V3.2, V4) chose among exactly tied scores as torch.topk does on the
  // reference's device, a choice no index rule reproduces on the CPU; strata's own rule (lowest
  // index) would read other tied keys. Choosing as the reference did, on any device, keeps the
  // comparison to rounding.
  auto logits = [&] {
    ReferenceTopKTieOrder reference_ties(reference_device);
    return model.forward(input_ids);
  }();
  auto loss = causal_lm_loss(logits, input_ids);
  loss.backward();

  result.logits_rel = relative_error(logits, reference.load("logits"));
  result.logits = logits.detach().cpu();
  result.loss_abs = std::abs(loss.item<double>() - reference.load("loss").item<double>());

  // Buffers (the MoE expert bias) and parameters the loss does not reach (DSA's indexer) get no
  // gradient, and HF records none for them. Missing gradients count as zero: compared with a
  // reference gradient they fail, and a reference without one must have a zero one here.
  std::map<std::string, at::Tensor> grads;
  for (const auto& [name, tensor] : model.canonical_state_dict())
    grads.emplace(name, tensor.grad().defined() ? tensor.grad() : at::zeros_like(tensor));
  for (const auto& [hf_name, grad] : hf.tensor_map.export_runtime(grads)) {
    const auto ref_name = "grad." + hf_name;
    if (!reference.contains(ref_name)) {
      if (grad.count_nonzero().item<int64_t>() != 0)
        fail(dir.string(), ": strata computed a gradient for ", hf_name, " but the reference has no ", ref_name);
      continue;
    }
    result.grad_rel.emplace_back(hf_name, relative_error(grad, reference.load(ref_name)));
  }
  std::sort(result.grad_rel.begin(), result.grad_rel.end(), [](auto& a, auto& b) { return a.second > b.second; });
  result.grad_rel_max = result.grad_rel.empty() ? 0.0 : result.grad_rel.front().second;
  result.pass = result.logits_rel <= tol.logits_rel && result.loss_abs <= tol.loss_abs &&
                result.grad_rel_max <= tol.grad_rel;
  return result;
}

std::string summary_line(const HfCheckResult& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "hf-check %s: logits_rel=%.3e loss_abs=%.3e grad_rel_max=%.3e %s", r.model_type.c_str(),
                r.logits_rel, r.loss_abs, r.grad_rel_max, r.pass ? "PASS" : "FAIL");
  return buf;
}

}  // namespace strata::hf
