#pragma once
// The subcommands of `strata`; each registers its flags and returns the function that runs it.
#include <CLI/CLI.hpp>

#include <functional>

namespace strata::tools {

struct Subcommand {
  CLI::App* app;
  std::function<int()> run;
};

Subcommand add_train(CLI::App& app);
Subcommand add_hf_check(CLI::App& app);
Subcommand add_plot(CLI::App& app);
Subcommand add_generate(CLI::App& app);
Subcommand add_describe(CLI::App& app);
Subcommand add_tokenize(CLI::App& app);
Subcommand add_preprocess(CLI::App& app);
Subcommand add_export(CLI::App& app);
Subcommand add_eval(CLI::App& app);

at::Device parse_device(const std::string& name);

}  // namespace strata::tools
