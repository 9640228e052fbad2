#include <cstdio>

#include "commands.h"
#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"

namespace strata::tools {

Subcommand add_hf_check(CLI::App& app) {
  struct Flags {
    std::string dir, device = "cpu", reference_device = "cpu", save_logits;
    bool verbose = false;
  };
  auto flags = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("hf-check", "compare strata with HF's logits, loss and gradients on a fixture");
  cmd->add_option("DIR", flags->dir, "folder with model/ (config.json + safetensors) and reference.safetensors")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--device", flags->device, "cpu or cuda");
  cmd->add_option("--reference-device", flags->reference_device,
                  "where HF made the reference, cpu (the fixtures) or cuda: indexers break ties as its top-k did");
  cmd->add_flag("--verbose", flags->verbose, "print every gradient's error");
  cmd->add_option("--save-logits", flags->save_logits, "write strata's logits to this safetensors file (\"logits\")");
  return {cmd, [flags] {
    auto result = hf::hf_check(flags->dir, parse_device(flags->device), {}, parse_device(flags->reference_device));
    const auto shown = flags->verbose ? result.grad_rel.size() : std::min<size_t>(result.grad_rel.size(), 5);
    std::printf("%-60s %s\n", "gradient (worst first)", "rel error");
    for (size_t i = 0; i < shown; ++i)
      std::printf("%-60s %.3e\n", result.grad_rel[i].first.c_str(), result.grad_rel[i].second);
    for (const auto& j : result.float64_judged)
      std::printf("%s against float64 (CPU): reference %.3e, strata %.3e, float32 on the CPU %.3e: %s\n",
                  j.name.c_str(), j.reference_error, j.strata_error, j.float32_error,
                  j.pass ? "within the reference's float32 error" : "FAIL");
    if (!flags->save_logits.empty()) io::save_safetensors(flags->save_logits, {{"logits", result.logits}});
    std::printf("%s\n", hf::summary_line(result).c_str());
    return result.pass ? 0 : 1;
  }};
}

}  // namespace strata::tools
