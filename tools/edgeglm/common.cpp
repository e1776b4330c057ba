#include "common.h"

#include <cstdio>

#include "core/cpu_topology.h"
#include "core/sys_info.h"

namespace edgeglm::cli {

const CpuTopology& system_topology() {
  static const CpuTopology topo = read_cpu_topology();
  return topo;
}

int fail(const Status& s) {
  std::fprintf(stderr, "edgeglm: error: %s\n", s.message().c_str());
  return 1;
}

void ModelArgs::add_thread_options(CLI::App* cmd) {
  // Validated while parsing, so a bad value is one CLI11 error line naming the flag.
  cmd->add_option("-t,--threads", threads,
                  "threads: auto (the performance cores, or one per --cpus entry) or 1..1024")
      ->type_name("AUTO|N")
      ->default_str("auto")
      ->transform(CLI::Validator(
          [](std::string& s) {
            auto n = parse_thread_count(s);
            if (!n.ok()) return n.status().message();
            s = std::to_string(*n);
            return std::string();
          },
          ""));
  cmd->add_option_function<std::string>(
         "--cpus",
         [this](const std::string& s) { cpus = parse_usable_cpus(s, system_topology()).value(); },
         "pin thread i to the i-th CPU of this list, e.g. 4-7 (see info --cpu)")
      ->check(CLI::Validator(
          [](std::string& s) {
            auto ids = parse_usable_cpus(s, system_topology());
            return ids.ok() ? std::string() : ids.status().message();
          },
          ""))
      ->type_name("LIST");
}

void ModelArgs::add(CLI::App* cmd, bool with_ctx) {
  cmd->add_option("-m,--model", model, "model: .gguf file, llama2.c .bin, or Hugging Face directory")
      ->required();
  cmd->add_option("--tokenizer", tokenizer, "llama2.c tokenizer.bin for a llama2.c checkpoint");
  add_thread_options(cmd);
  if (with_ctx) {
    cmd->add_option("-c,--ctx", ctx, "context size in tokens (KV cache is sized from it)")
        ->check(CLI::Range(int64_t(16), int64_t(1) << 20));
    add_kv_type_option(cmd, kv_type);
  }
}

void add_kv_type_option(CLI::App* cmd, DType& kv_type) {
  cmd->add_option_function<std::string>(
         "--kv-type", [&kv_type](const std::string& s) { kv_type = model::parse_kv_type(s).value(); },
         "KV cache type: f16 (default), f32, or q8_0 (int8, half of f16; head size multiple of 32)")
      ->check(CLI::Validator(
          [](std::string& s) {
            auto t = model::parse_kv_type(s);
            return t.ok() ? std::string() : t.status().message();
          },
          ""))
      ->type_name("TYPE");
}

std::vector<int> ModelArgs::pin_cpus() const {
  if (!cpus.empty()) return cpus;
  return threads == 0 ? auto_pin_cpus(system_topology()) : std::vector<int>{};
}

model::ContextOptions ModelArgs::context_options() const {
  model::ContextOptions co;
  co.n_ctx = ctx;
  co.kv_type = kv_type;
  return co;
}

int ModelArgs::thread_count() const {
  return resolve_thread_count(threads, cpus, system_topology());
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
