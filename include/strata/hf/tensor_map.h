#pragma once
// How an HF checkpoint's tensors become strata's canonical tensors and back, one rule per
// strata tensor (llama.cpp's per-architecture name tables, with layout changes): a rename, a
// concatenation (gate_proj + up_proj -> linear_fc1), or a regrouping (q/k/v -> linear_qkv).
// The reverse direction exports checkpoints and maps gradients back for comparison with HF.
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace strata::hf {

struct TensorRule {
  std::string name;                    // strata's canonical name
  std::vector<std::string> hf_names;   // the HF checkpoint tensors it is made of
  std::function<at::Tensor(const std::vector<at::Tensor>&)> from_hf;
  std::function<std::vector<at::Tensor>(const at::Tensor&)> to_hf;
  // Where HF's modules hold the tensor at run time differs from its checkpoint for some
  // architectures (HF 5 fuses per-expert weights on load): gradients use these names. Empty:
  // the same as the checkpoint.
  std::vector<std::string> runtime_names;
  std::function<std::vector<at::Tensor>(const at::Tensor&)> to_runtime;
};

class TensorMap {
 public:
  void rename(const std::string& name, const std::string& hf_name);
  // strata tensor = cat(hf tensors, dim 0); sizes are read at import, kept for export.
  void concat_rows(const std::string& name, const std::vector<std::string>& hf_names, std::vector<int64_t> rows);
  // linear_qkv in Megatron's grouped layout from separate q/k/v projections. With
  // `output_gate`, HF's q projection holds [query; gate] per head and each strata group becomes
  // [queries, gates, key, value].
  void grouped_qkv(const std::string& name, const std::string& q, const std::string& k, const std::string& v,
                   int64_t num_groups, int64_t heads_per_group, int64_t head_dim, bool output_gate = false);
  // A MoE's grouped expert weight [E, rows, in] from HF's per-expert tensors
  // `<experts_prefix><e>.<part>` (e < num_experts): expert e's rows are its parts concatenated
  // (gate_proj.weight then up_proj.weight -> [gate; up]), part p holding rows[p] rows. HF 5 fuses
  // them on load into one parameter of this same layout, `runtime_name`, which gradients use
  // (empty: HF keeps the per-expert tensors at run time too).
  void stacked_experts(const std::string& name, const std::string& experts_prefix, int64_t num_experts,
                       const std::vector<std::string>& parts, std::vector<int64_t> rows,
                       const std::string& runtime_name = "");
  void add(TensorRule rule);
  // An HF tensor that repeats strata tensor `name` (DeepSeek's MTP layer stores copies of the
  // embedding and the output head it shares): import checks it equals what `name` imported,
  // export writes the copy.
  void duplicate(const std::string& name, const std::string& hf_name);

  const std::vector<TensorRule>& rules() const { return rules_; }

  // Builds strata tensors from HF ones; `hf_tensor` loads one by name. Every HF tensor named by
  // `available` must be used by some rule, else the error lists the unused ones.
  std::map<std::string, at::Tensor> import(const std::function<at::Tensor(const std::string&)>& hf_tensor,
                                           const std::vector<std::string>& available, const std::string& source) const;
  // strata tensors -> HF checkpoint names and layouts.
  std::map<std::string, at::Tensor> export_hf(const std::map<std::string, at::Tensor>& tensors) const;
  // strata tensors (gradients) -> the names and layouts of HF's parameters at run time.
  std::map<std::string, at::Tensor> export_runtime(const std::map<std::string, at::Tensor>& tensors) const;

 private:
  std::vector<TensorRule> rules_;
  std::vector<std::pair<std::string, std::string>> duplicates_;  // (strata name, HF name)
};

}  // namespace strata::hf
