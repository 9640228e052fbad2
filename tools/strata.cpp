// strata: the command-line tool. Each subcommand is a thin shell over the library.
#include <cstdio>

#include "commands.h"
#include "help_formatter.h"
#include "strata/core/error.h"
#include "strata/core/version.h"

int main(int argc, char** argv) {
  // Line-buffered even into a pipe or a file: a run that is killed leaves every line it printed.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app{"strata: build, train and run hybrid language models from typed specs"};
  app.set_version_flag("--version", strata::build_description());
  // --help shows every option's default; subcommands inherit this.
  app.option_defaults()->always_capture_default();
  app.formatter(std::make_shared<strata::tools::HelpFormatter>());
  app.require_subcommand(1);
  const std::vector<strata::tools::Subcommand> commands = {
      strata::tools::add_train(app), strata::tools::add_describe(app), strata::tools::add_generate(app),
      strata::tools::add_hf_check(app), strata::tools::add_plot(app), strata::tools::add_tokenize(app),
      strata::tools::add_preprocess(app), strata::tools::add_export(app),
      strata::tools::add_eval(app)};
  CLI11_PARSE(app, argc, argv);
  try {
    for (const auto& command : commands)
      if (command.app->parsed()) return command.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata: %s\n", e.what());
    return 1;
  }
  return 0;
}
