// edgeglm eval: perplexity on a text file (llama.cpp's protocol by default).
#include <nlohmann/json.hpp>

#include <cstdio>

#include "common.h"
#include "core/mapped_file.h"
#include "eval/perplexity.h"

namespace edgeglm::cli {
namespace {

struct EvalArgs {
  ModelArgs model;
  std::string ppl_file;
  std::string protocol = "llamacpp";
  int64_t chunks = -1;
  bool json = false;
};

int run(const EvalArgs& a) {
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  auto text = read_text_file(a.ppl_file);
  if (!text.ok()) return fail(text.status());
  eval::PerplexityOptions po;
  po.n_ctx = a.model.ctx;
  po.kv_type = a.model.kv_type;
  po.protocol = a.protocol == "full" ? eval::PplProtocol::kFull : eval::PplProtocol::kLlamaCpp;
  po.max_chunks = a.chunks;
  ThreadPool pool(a.model.thread_count(), a.model.pin_cpus());
  auto r = eval::perplexity(*loaded->model, *loaded->tokenizer, *text, po, pool,
                            [&](int64_t done, int64_t total, double ppl) {
                              std::fprintf(stderr, "\r[%lld/%lld] ppl %.4f", (long long)done,
                                           (long long)total, ppl);
                              if (done == total) std::fputc('\n', stderr);
                            });
  if (!r.ok()) return fail(r.status().with_context(a.ppl_file));
  if (a.json) {
    nlohmann::json j = {{"model", a.model.model},  {"file", a.ppl_file},
                        {"protocol", a.protocol},  {"ctx", a.model.ctx},
                        {"perplexity", r->perplexity}, {"nll", r->nll},
                        {"nll_stderr", r->nll_stderr}, {"tokens", r->tokens},
                        {"chunks", r->chunks},     {"text_tokens", r->text_tokens},
                        {"seconds", r->seconds}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("perplexity %.4f (nll %.5f +/- %.5f nats/token) over %lld tokens in %lld chunks of %lld, "
                "protocol %s, %.1f s\n",
                r->perplexity, r->nll, r->nll_stderr, (long long)r->tokens, (long long)r->chunks,
                (long long)a.model.ctx, a.protocol.c_str(), r->seconds);
  }
  return 0;
}

}  // namespace

void register_eval(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<EvalArgs>();
  a->model.ctx = 512;
  CLI::App* cmd = app.add_subcommand("eval", "evaluate a model: perplexity on a text file");
  a->model.add(cmd);
  cmd->add_option("--ppl", a->ppl_file, "text file to measure perplexity on")->required();
  cmd->add_option("--protocol", a->protocol,
                  "llamacpp: chunks of ctx starting with BOS, second half scored; full: every token scored")
      ->check(CLI::IsMember({"llamacpp", "full"}));
  cmd->add_option("--chunks", a->chunks, "evaluate at most this many chunks (-1: all)");
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
