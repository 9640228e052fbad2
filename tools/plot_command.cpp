#include <fstream>

#include "commands.h"
#include "output_paths.h"
#include "strata/core/error.h"
#include "strata/train/plot.h"

namespace strata::tools {

Subcommand add_plot(CLI::App& app) {
  struct Flags {
    std::string metrics, output = "metrics.svg";
  };
  auto flags = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("plot", "draw the loss and accuracy curves of a metrics JSONL file as SVG");
  cmd->add_option("METRICS", flags->metrics, "JSONL written by strata train --metrics")->required();
  cmd->add_option("-o,--output", flags->output, "SVG file to write");
  return {cmd, [flags] {
    refuse_output_over_input("--output", flags->output, {{"METRICS", flags->metrics}});
    const auto svg = train::plot_metrics_svg(flags->metrics);
    std::ofstream out(flags->output);
    if (!out) fail("--output ", flags->output, ": cannot write");
    out << svg;
    std::printf("wrote %s\n", flags->output.c_str());
    return 0;
  }};
}

}  // namespace strata::tools
