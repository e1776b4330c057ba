// edgeglm: one command-line program; each subcommand is a thin shell over the library.
#include <CLI/CLI.hpp>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common.h"

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // Buffers of 4 MiB and more (contexts, logits, weight copies) are mmapped and go back to the
  // system when freed. glibc's default raises this threshold after each large free, after which
  // such buffers come from the heap and stay there: quantize --scheme mixed, which builds and
  // drops a model and context per tensor, peaked at 6.4 GB RSS instead of 1.4 GB.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
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
#if defined(EDGEGLM_HAVE_HTTP)
  edgeglm::cli::register_serve(app, exit_code);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
