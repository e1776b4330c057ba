// edgeglm chat: multi-turn chat with the model's chat template. Reads one user message per line
// from stdin (interactive or piped); "/reset" starts over, "/quit" or end of input leaves.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "common.h"
#include "tokenizer/chat_template.h"

namespace edgeglm::cli {
namespace {

struct ChatArgs {
  ModelArgs model;
  SamplingArgs sampling;
  std::string system;
  std::string template_name;
  int32_t n = 512;
  bool timings = false;
};

int run(const ChatArgs& a) {
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  const tokenizer::Tokenizer& tok = *loaded->tokenizer;
  Result<tokenizer::ChatTemplate> tmpl = Status::error("unset");
  if (!a.template_name.empty()) {
    tmpl = tokenizer::chat_template_from_name(a.template_name);
  } else {
    tmpl = tokenizer::detect_chat_template(
        loaded->model->file().get_string("tokenizer.chat_template").value_or(""));
  }
  if (!tmpl.ok()) return fail(tmpl.status().with_context(a.model.model));

  ThreadPool pool(a.model.thread_count());
  model::ContextOptions co;
  co.n_ctx = a.model.ctx;
  auto session = runtime::Session::create(*loaded->model, tok, co, pool);
  if (!session.ok()) return fail(session.status());

  const bool interactive = isatty(STDIN_FILENO);
  const std::string bos = tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : "";
  const std::string eos = tok.eos_id() >= 0 ? tok.token_text(tok.eos_id()) : "";
  std::vector<tokenizer::ChatMessage> messages;
  if (!a.system.empty()) messages.push_back({"system", a.system});
  if (interactive)
    std::fprintf(stderr, "chat template %s; /reset to start over, /quit or Ctrl-D to leave\n",
                 tokenizer::chat_template_name(*tmpl));

  runtime::GenerateOptions go;
  go.max_tokens = a.n;
  go.sampling = a.sampling.params;
  std::string line;
  for (;;) {
    if (interactive) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      messages.resize(a.system.empty() ? 0 : 1);
      (*session)->reset();
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    const std::string rendered = tokenizer::apply_chat_template(*tmpl, messages, true, bos, eos);
    // Templates that spell BOS in their text bring it themselves; otherwise add it as the
    // vocab says.
    std::vector<int32_t> prompt = tok.encode(rendered, /*add_special=*/false, /*parse_special=*/true);
    if (tok.add_bos() && tok.bos_id() >= 0 && (prompt.empty() || prompt[0] != tok.bos_id()))
      prompt.insert(prompt.begin(), tok.bos_id());
    auto r = (*session)->generate(prompt, go, write_stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (!r.ok()) return fail(r.status());
    if (a.timings) print_timings(*r);
    if (r->finish == runtime::FinishReason::kContextFull) {
      std::fprintf(stderr, "edgeglm: the context (%lld tokens) is full; /reset or raise --ctx\n",
                   (long long)a.model.ctx);
    }
    messages.push_back({"assistant", r->text});
  }
  return 0;
}

}  // namespace

void register_chat(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "interactive chat using the model's chat template");
  a->model.add(cmd);
  a->sampling.add(cmd);
  cmd->add_option("--system", a->system, "system prompt");
  std::string names;
  for (const std::string& n : tokenizer::chat_template_names()) names += (names.empty() ? "" : ", ") + n;
  cmd->add_option("--chat-template", a->template_name, "override the model's template: " + names);
  cmd->add_option("-n,--n-predict", a->n, "tokens per answer at most")->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--timings", a->timings, "print speed after each answer");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
