#include "strata/hf/tensor_map.h"

#include <set>
#include <sstream>

#include "strata/core/error.h"

namespace strata::hf {

void TensorMap::add(TensorRule rule) { rules_.push_back(std::move(rule)); }

void TensorMap::duplicate(const std::string& name, const std::string& hf_name) { duplicates_.emplace_back(name, hf_name); }

void TensorMap::rename(const std::string& name, const std::string& hf_name) {
  add({name, {hf_name}, [](const std::vector<at::Tensor>& t) { return t[0]; },
       [](const at::Tensor& t) { return std::vector<at::Tensor>{t}; }});
}

void TensorMap::concat_rows(const std::string& name, const std::vector<std::string>& hf_names,
                            std::vector<int64_t> rows) {
  add({name, hf_names, [](const std::vector<at::Tensor>& t) { return at::cat(t, 0); },
       [rows = std::move(rows)](const at::Tensor& t) { auto parts = t.split_with_sizes(rows, 0);
         return std::vector<at::Tensor>(parts.begin(), parts.end()); }});
}

void TensorMap::grouped_qkv(const std::string& name, const std::string& q, const std::string& k,
                            const std::string& v, int64_t groups, int64_t heads_per_group, int64_t head_dim,
                            bool output_gate) {
  // Rows of one group in strata: [queries, gates (if any), key, value], each head_dim rows per head.
  const int64_t query_rows = heads_per_group * head_dim;
  const int64_t gate_rows = output_gate ? query_rows : 0;
  auto from_hf = [=](const std::vector<at::Tensor>& t) {
    const auto hidden = t[0].size(-1);
    std::vector<at::Tensor> per_group;
    if (output_gate) {
      // HF's q projection: per head [query (head_dim); gate (head_dim)].
      auto q_and_gate = t[0].reshape({groups, heads_per_group, 2, head_dim, hidden});
      per_group.push_back(q_and_gate.select(2, 0).reshape({groups, query_rows, hidden}));
      per_group.push_back(q_and_gate.select(2, 1).reshape({groups, gate_rows, hidden}));
    } else {
      per_group.push_back(t[0].reshape({groups, query_rows, hidden}));
    }
    per_group.push_back(t[1].reshape({groups, head_dim, hidden}));
    per_group.push_back(t[2].reshape({groups, head_dim, hidden}));
    return at::cat(per_group, 1).reshape({-1, hidden});
  };
  auto to_hf = [=](const at::Tensor& t) {
    const auto hidden = t.size(-1);
    auto g = t.reshape({groups, query_rows + gate_rows + 2 * head_dim, hidden});
    auto parts = g.split_with_sizes({query_rows, gate_rows, head_dim, head_dim}, 1);
    auto query = parts[0];
    if (output_gate) {
      auto q = parts[0].reshape({groups, heads_per_group, 1, head_dim, hidden});
      auto gate = parts[1].reshape({groups, heads_per_group, 1, head_dim, hidden});
      query = at::cat({q, gate}, 2);
    }
    return std::vector<at::Tensor>{query.reshape({-1, hidden}), parts[2].reshape({-1, hidden}),
                                   parts[3].reshape({-1, hidden})};
  };
  add({name, {q, k, v}, from_hf, to_hf});
}

void TensorMap::stacked_experts(const std::string& name, const std::string& experts_prefix, int64_t num_experts,
                                const std::vector<std::string>& parts, std::vector<int64_t> rows,
                                const std::string& runtime_name) {
  if (parts.size() != rows.size())
    fail("tensor map for ", name, ": ", parts.size(), " expert parts but ", rows.size(), " row counts");
  TensorRule rule{.name = name};
  for (int64_t e = 0; e < num_experts; ++e)
    for (const auto& part : parts) rule.hf_names.push_back(cat(experts_prefix, e, ".", part));
  // hf_names are expert-major: expert e's parts are entries [e * P, (e + 1) * P).
  const auto per_expert = static_cast<int64_t>(parts.size());
  rule.from_hf = [num_experts, per_expert](const std::vector<at::Tensor>& t) {
    std::vector<at::Tensor> experts;
    for (int64_t e = 0; e < num_experts; ++e)
      experts.push_back(at::cat(at::TensorList(t).slice(e * per_expert, per_expert), 0));
    return at::stack(experts);
  };
  rule.to_hf = [num_experts, rows = std::move(rows)](const at::Tensor& t) {
    std::vector<at::Tensor> out;
    for (int64_t e = 0; e < num_experts; ++e)
      for (const auto& part : t[e].split_with_sizes(rows, 0)) out.push_back(part);
    return out;
  };
  if (!runtime_name.empty()) {
    rule.runtime_names = {runtime_name};
    rule.to_runtime = [](const at::Tensor& t) { return std::vector<at::Tensor>{t}; };
  }
  add(std::move(rule));
}

std::map<std::string, at::Tensor> TensorMap::import(const std::function<at::Tensor(const std::string&)>& hf_tensor,
                                                    const std::vector<std::string>& available,
                                                    const std::string& source) const {
  const std::set<std::string> present(available.begin(), available.end());
  auto unused = present;
  std::map<std::string, at::Tensor> out;
  for (const auto& rule : rules_) {
    std::vector<at::Tensor> parts;
    for (const auto& hf_name : rule.hf_names) {
      if (!present.count(hf_name))
        fail(source, ": tensor '", hf_name, "' (needed for ", rule.name, ") is not in the checkpoint");
      unused.erase(hf_name);
      parts.push_back(hf_tensor(hf_name));
    }
    out.emplace(rule.name, rule.from_hf(parts));
  }
  for (const auto& [name, hf_name] : duplicates_) {
    if (!present.count(hf_name)) continue;  // a copy is optional: the original carries the values
    unused.erase(hf_name);
    auto it = out.find(name);
    if (it == out.end()) fail(source, ": tensor '", hf_name, "' repeats ", name, ", which nothing imported");
    if (!at::equal(hf_tensor(hf_name).to(it->second.scalar_type()), it->second))
      fail(source, ": tensor '", hf_name, "' should repeat ", name, " (the model shares one tensor), but its values ",
           "differ");
  }
  if (!unused.empty()) {
    std::ostringstream msg;
    msg << source << ": " << unused.size() << " checkpoint tensors have no place in the model:";
    for (const auto& n : unused) msg << "\n    " << n;
    throw Error(msg.str());
  }
  return out;
}

namespace {
const at::Tensor& find_tensor(const std::map<std::string, at::Tensor>& tensors, const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) fail("export to HF: strata tensor '", name, "' is missing");
  return it->second;
}
}  // namespace

std::map<std::string, at::Tensor> TensorMap::export_hf(const std::map<std::string, at::Tensor>& tensors) const {
  std::map<std::string, at::Tensor> out;
  for (const auto& rule : rules_) {
    auto parts = rule.to_hf(find_tensor(tensors, rule.name));
    for (size_t i = 0; i < parts.size(); ++i) out.emplace(rule.hf_names[i], parts[i]);
  }
  for (const auto& [name, hf_name] : duplicates_) out.emplace(hf_name, find_tensor(tensors, name));
  return out;
}

std::map<std::string, at::Tensor> TensorMap::export_runtime(const std::map<std::string, at::Tensor>& tensors) const {
  std::map<std::string, at::Tensor> out;
  for (const auto& rule : rules_) {
    const auto& tensor = find_tensor(tensors, rule.name);
    const bool same_as_checkpoint = rule.runtime_names.empty();
    auto parts = same_as_checkpoint ? rule.to_hf(tensor) : rule.to_runtime(tensor);
    const auto& names = same_as_checkpoint ? rule.hf_names : rule.runtime_names;
    for (size_t i = 0; i < parts.size(); ++i) out.emplace(names[i], parts[i]);
  }
  return out;
}

}  // namespace strata::hf
