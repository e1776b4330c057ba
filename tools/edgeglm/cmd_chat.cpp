// edgeglm chat: multi-turn chat with the model's chat template. Reads one user message per line
// from stdin (interactive or piped); "/reset" starts over, "/quit" or end of input leaves.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "common.h"
#include "runtime/chat_prompt.h"
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
  std::string default_system;  // the model template's own, when it has one
  if (!a.template_name.empty()) {
    tmpl = tokenizer::chat_template_from_name(a.template_name);
  } else {
    const std::string src =
        loaded->model->file().get_string("tokenizer.chat_template").value_or("");
    tmpl = tokenizer::detect_chat_template(src);
    default_system = tokenizer::default_system_prompt(src);
  }
  if (!tmpl.ok()) return fail(tmpl.status().with_context(a.model.model));

  ThreadPool pool(a.model.thread_count(), a.model.pin_cpus());
  model::ContextOptions co = a.model.context_options();
  auto session = runtime::Session::create(*loaded->model, tok, co, pool);
  if (!session.ok()) return fail(session.status());

  const bool interactive = isatty(STDIN_FILENO);
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
    // The prompt leaves room for an answer: the lesser of -n and a quarter of the context.
    const int64_t answer_room = std::min<int64_t>(a.n, a.model.ctx / 4);
    auto prompt = runtime::build_chat_prompt(tok, *tmpl, messages, a.model.ctx - answer_room,
                                             default_system);
    if (!prompt.ok()) {
      std::fprintf(stderr, "edgeglm: %s; message not sent\n", prompt.status().message().c_str());
      messages.pop_back();
      continue;
    }
    if (prompt->dropped_messages > 0)
      std::fprintf(stderr, "edgeglm: context of %lld tokens full: dropped the %zu oldest message(s)\n",
                   (long long)a.model.ctx, prompt->dropped_messages);
    auto r = (*session)->generate(prompt->tokens, go, write_stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (!r.ok()) return fail(r.status());
    if (a.timings) print_timings(*r);
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
