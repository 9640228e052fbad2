#pragma once
// `--help` as strata prints it: each option with the values it takes and its default, e.g.
//   --train-iters INT >= 1, default 60
// (CLI11's own layout shows "INT:INT >= 1=60").
#include <CLI/CLI.hpp>

namespace strata::tools {

class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_opts(const CLI::Option* option) const override;
};

}  // namespace strata::tools
