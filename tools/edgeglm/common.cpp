#include "common.h"

#include <cstdio>

#include "core/sys_info.h"

namespace edgeglm::cli {

int fail(const Status& s) {
  std::fprintf(stderr, "edgeglm: error: %s\n", s.message().c_str());
  return 1;
}

void ModelArgs::add(CLI::App* cmd, bool with_ctx) {
  cmd->add_option("-m,--model", model, "model: .gguf file, llama2.c .bin, or Hugging Face directory")
      ->required();
  cmd->add_option("--tokenizer", tokenizer, "llama2.c tokenizer.bin for a llama2.c checkpoint");
  cmd->add_option("-t,--threads", threads, "threads (default: all usable cores)")
      ->check(CLI::Range(0, 1024));
  if (with_ctx)
    cmd->add_option("-c,--ctx", ctx, "context size in tokens (KV cache is sized from it)")
        ->check(CLI::Range(int64_t(16), int64_t(1) << 20));
}

Result<Loaded> load_model(const ModelArgs& args) {
  Loaded l;
  EG_ASSIGN_OR_RETURN(l.model, model::Model::load(args.model, args.tokenizer));
  auto tok = tokenizer::Tokenizer::from_metadata(l.model->file().meta);
  if (!tok.ok()) {
    std::string hint = args.tokenizer.empty() && l.model->file().kind == formats::FileKind::kLlama2c
                           ? " (a llama2.c checkpoint needs --tokenizer tokenizer.bin)"
                           : "";
    return Status::error(args.model + ": " + tok.status().message() + hint);
  }
  l.tokenizer = std::move(tok).value();
  return l;
}

void SamplingArgs::add(CLI::App* cmd) {
  cmd->add_option("--temp", params.temperature, "temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", params.top_k, "keep the k most likely tokens (0 = off)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", params.top_p, "nucleus sampling mass (1 = off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", params.min_p, "drop tokens below min-p x the best probability (0 = off)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repeat-penalty", params.repeat_penalty, "penalty for recent tokens (1 = off)")
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--repeat-last-n", params.repeat_last_n, "window of the penalties")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--presence-penalty", params.presence_penalty, "OpenAI presence penalty")
      ->check(CLI::Range(-2.0, 2.0));
  cmd->add_option("--frequency-penalty", params.frequency_penalty, "OpenAI frequency penalty")
      ->check(CLI::Range(-2.0, 2.0));
  cmd->add_option("-s,--seed", params.seed, "random seed (same seed, same text)");
}

bool write_stdout(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return true;
}

void print_timings(const runtime::GenerateResult& r) {
  std::fprintf(stderr,
               "\nprompt: %lld tokens (%lld evaluated) in %.1f ms, %.1f tok/s | generation: %zu "
               "tokens in %.1f ms, %.1f tok/s | finish: %s | peak RSS %.1f MiB\n",
               (long long)r.n_prompt, (long long)r.n_prompt_evaluated, r.prompt_ms,
               r.prompt_tok_per_s(), r.tokens.size(), r.generate_ms, r.gen_tok_per_s(),
               runtime::finish_reason_name(r.finish), double(peak_rss_bytes()) / (1 << 20));
}

}  // namespace edgeglm::cli
