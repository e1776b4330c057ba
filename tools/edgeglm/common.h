// Shared pieces of the subcommands: loading a model with its tokenizer, sampling flags, and
// turning a Status into one error line and a non-zero exit code.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::cli {

// Every subcommand registers itself and stores its exit code in `exit_code` when run.
void register_info(CLI::App& app, int& exit_code);
void register_run(CLI::App& app, int& exit_code);
void register_chat(CLI::App& app, int& exit_code);
void register_convert(CLI::App& app, int& exit_code);
void register_eval(CLI::App& app, int& exit_code);

int fail(const Status& s);  // prints "edgeglm: error: ..." to stderr, returns 1

struct ModelArgs {
  std::string model;
  std::string tokenizer;  // llama2.c tokenizer.bin, when the model file has no vocab
  int threads = 0;        // 0: all usable hardware threads
  int64_t ctx = 2048;
  void add(CLI::App* cmd, bool with_ctx = true);
  int thread_count() const { return threads > 0 ? threads : ThreadPool::hardware_threads(); }
};

struct Loaded {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
};
Result<Loaded> load_model(const ModelArgs& args);

struct SamplingArgs {
  runtime::SamplerParams params;
  void add(CLI::App* cmd);
};

void print_timings(const runtime::GenerateResult& r);  // stderr
bool write_stdout(std::string_view text);               // streaming callback: write + flush

}  // namespace edgeglm::cli
