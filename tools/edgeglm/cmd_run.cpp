// edgeglm run: prints the prompt, then the generated text as it is produced; timings on stderr.
#include <cstdio>

#include "common.h"
#include "core/mapped_file.h"

namespace edgeglm::cli {
namespace {

struct RunArgs {
  ModelArgs model;
  SamplingArgs sampling;
  std::string prompt;
  std::string prompt_file;
  int32_t n = 128;
  std::vector<std::string> stop;
  bool no_bos = false;
  bool ignore_eos = false;
};

int run(RunArgs a) {
  if (!a.prompt_file.empty()) {
    auto text = read_text_file(a.prompt_file, size_t(64) << 20);
    if (!text.ok()) return fail(text.status());
    a.prompt = std::move(*text);
  }
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  ThreadPool pool(a.model.thread_count(), a.model.pin_cpus());
  model::ContextOptions co = a.model.context_options();
  auto session = runtime::Session::create(*loaded->model, *loaded->tokenizer, co, pool);
  if (!session.ok()) return fail(session.status());
  const tokenizer::Tokenizer& tok = *loaded->tokenizer;
  std::vector<int32_t> prompt = tok.encode(a.prompt, /*add_special=*/false, /*parse_special=*/true);
  // The model's own BOS policy, but an empty prompt always starts from BOS (there is nothing else
  // to condition on).
  if (!a.no_bos && tok.bos_id() >= 0 && (tok.add_bos() || prompt.empty()))
    prompt.insert(prompt.begin(), tok.bos_id());
  if (prompt.empty()) return fail(Status::error("empty prompt and the vocabulary has no BOS token"));

  runtime::GenerateOptions go;
  go.max_tokens = a.n;
  go.sampling = a.sampling.params;
  go.stop = a.stop;
  go.ignore_eos = a.ignore_eos;
  std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
  std::fflush(stdout);
  auto r = (*session)->generate(prompt, go, write_stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!r.ok()) return fail(r.status());
  print_timings(*r);
  return 0;
}

}  // namespace

void register_run(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "generate text from a prompt (streaming)");
  a->model.add(cmd);
  a->sampling.add(cmd);
  auto* prompt = cmd->add_option("-p,--prompt", a->prompt, "prompt text");
  cmd->add_option("-f,--file", a->prompt_file, "read the prompt from a file")->excludes(prompt);
  cmd->add_option("-n,--n-predict", a->n, "tokens to generate (-1: until the context is full)")
      ->check(CLI::Range(-1, 1 << 24));
  cmd->add_option("--stop", a->stop, "stop string (repeatable)");
  cmd->add_flag("--no-bos", a->no_bos, "do not prepend BOS to a non-empty prompt");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "keep generating past end-of-text tokens");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
