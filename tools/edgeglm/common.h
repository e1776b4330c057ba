// Shared pieces of the subcommands: loading a model with its tokenizer, sampling flags, and
// turning a Status into one error line and a non-zero exit code.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "core/cpu_topology.h"
#include "eval/report.h"
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
void register_bench(CLI::App& app, int& exit_code);
void register_quantize(CLI::App& app, int& exit_code);
void register_serve(CLI::App& app, int& exit_code);  // built where cpp-httplib is found

// The comparison report (cmd_eval_compare.cpp): eval --compare and quantize --report.
int run_eval_compare(const std::vector<std::string>& models, const eval::CompareOptions& opts,
                     const std::string& report_prefix, bool json, ThreadPool& pool);

const CpuTopology& system_topology();
void add_kv_type_option(CLI::App* cmd, DType& kv_type);  // --kv-type f16|f32|q8_0  // read from sysfs once per process

int fail(const Status& s);  // prints "edgeglm: error: ..." to stderr, returns 1

struct ModelArgs {
  std::string model;
  std::string tokenizer;  // llama2.c tokenizer.bin, when the model file has no vocab
  int threads = 0;        // --threads; 0 ("auto"): one per --cpus entry, else the performance cores
  std::vector<int> cpus;  // --cpus: thread i runs on cpus[i % size]; empty = not pinned
  int64_t ctx = 2048;
  DType kv_type = DType::F16;  // --kv-type
  void add(CLI::App* cmd, bool with_ctx = true);
  void add_thread_options(CLI::App* cmd);  // --threads, --cpus (part of add)
  int thread_count() const;
  // CPUs the pool pins to: --cpus, or with --threads auto on a big.LITTLE board its performance
  // cores (auto_pin_cpus); empty: not pinned.
  std::vector<int> pin_cpus() const;
  model::ContextOptions context_options() const;  // n_ctx and kv_type from the flags
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
