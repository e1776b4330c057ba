// edgeglm: one command-line program; each subcommand is a thin shell over the library.
#include <CLI/CLI.hpp>

#include "common.h"

int main(int argc, char** argv) {
  CLI::App app{"edgeglm: compress, run and serve small language models on edge CPUs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "edgeglm 0.1.0");
  int exit_code = 0;
  edgeglm::cli::register_info(app, exit_code);
  edgeglm::cli::register_run(app, exit_code);
  edgeglm::cli::register_chat(app, exit_code);
  edgeglm::cli::register_convert(app, exit_code);
  edgeglm::cli::register_eval(app, exit_code);
  edgeglm::cli::register_bench(app, exit_code);
  edgeglm::cli::register_quantize(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
