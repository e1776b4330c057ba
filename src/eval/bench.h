// Speed benchmark of one model, llama-bench style:
//  * ppN (prefill): one Context::decode of N random token ids; tokens/s and time to first token
//    (the prefill time: its logits give the first generated token);
//  * tgN (decode): N single-token decodes from an empty context; tokens/s and per-token latency
//    percentiles (p50/p95/p99, nearest rank);
//  * at depth D (llama-bench's -d), both start from a context already holding D tokens (filled once
//    per depth, untimed; each repetition truncates back to it), named "ppN@dD" and "tgN@dD": what a
//    prompt or an answer costs deep in a conversation, where attention reads D cached positions;
// each repeated `reps` times after one untimed warm-up repetition, every figure reported as
// mean +- sample standard deviation over the repetitions. One Context serves every test; it is
// truncated to 0 between repetitions, never recreated.
//
// Roofline: decoding reads every weight matrix once per token plus the KV cache written so far, so
// tokens/s <= read bandwidth / (Model::bytes_per_token() + KV bytes read). For a tgN run the KV
// part is taken at the mean number of cached positions attended, D + (N + 1) / 2.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/thread_pool.h"
#include "eval/membw.h"
#include "model/model.h"

namespace edgeglm::eval {

constexpr int64_t kBenchMaxTokens = 32768;
constexpr int kBenchMaxReps = 1000;

struct BenchOptions {
  std::vector<int64_t> prompt_lengths = {128, 512};  // ppN tests; empty: none
  std::vector<int64_t> gen_lengths = {64, 128};      // tgN tests; empty: none
  int reps = 5;
  int64_t max_ubatch = 512;  // prefill runs in ubatches of min(N, max_ubatch) tokens
  uint64_t seed = 42;        // random token ids
  DType kv_type = DType::F16;  // KV cache type
  std::vector<int64_t> depths = {0};  // every test at each of these context depths
};
// Lengths in [1, kBenchMaxTokens], depths in [0, kBenchMaxTokens) with depth + length within
// kBenchMaxTokens, reps in [1, kBenchMaxReps], at least one test and one depth.
Status validate_bench_options(const BenchOptions& opts);

struct Stat {
  double mean = 0;
  double stddev = 0;  // sample standard deviation (n - 1); 0 for fewer than two samples
  int n = 0;
};
Stat summarize(const std::vector<double>& samples);
// Nearest-rank percentile (p in (0, 100]) of unsorted samples; 0 when empty.
double percentile(std::vector<double> samples, double p);

// "pp512", "tg128@d1024".
std::string bench_test_name(const char* kind, int64_t n_tokens, int64_t depth);

struct PrefillRun {
  int64_t n_tokens = 0;
  int64_t depth = 0;  // tokens in the context before the test
  Stat tok_per_s;
  Stat ttft_ms;
};

struct DecodeRun {
  int64_t n_tokens = 0;
  int64_t depth = 0;  // tokens in the context before the test
  Stat tok_per_s;
  Stat ms_per_token;  // mean latency of the run
  Stat p50_ms, p95_ms, p99_ms;
  double mean_kv_positions = 0;  // depth + (n + 1) / 2
  double bytes_per_token = 0;    // weights + KV at mean_kv_positions
  // Filled by apply_roofline (0 until then).
  double roofline_tok_per_s = 0;
  double roofline_fraction = 0;  // tok_per_s.mean / roofline_tok_per_s
};

struct BenchModelInfo {
  std::string name;  // as the user named it (path or synthetic shape)
  std::string arch;
  std::string type;  // weight types of the layer matrices by bytes, e.g. "q8_0" or "q5_0+q4_k"
  uint64_t size_bytes = 0;  // all tensors
  int64_t n_params = 0;
  double bits_per_weight = 0;
  uint64_t weight_bytes_per_token = 0;  // Model::bytes_per_token()
  uint64_t kv_bytes_per_position = 0;   // K and V of one position, all layers
  int64_t n_layer = 0, n_embd = 0, n_vocab = 0;
};

struct BenchResult {
  BenchModelInfo model;
  int threads = 0;
  std::string isa;   // kernels::active_isa().name
  int reps = 0;
  int64_t n_ctx = 0;
  int64_t n_ubatch = 0;
  uint64_t context_bytes = 0;  // KV cache + activations arena
  std::vector<PrefillRun> prefill;
  std::vector<DecodeRun> decode;
  uint64_t peak_rss_bytes = 0;  // after the runs (before any bandwidth measurement)
  std::optional<MemBandwidth> bandwidth;
};

// progress(test, rep, reps): rep 0 is the warm-up; reps 0 marks a step that is no test (filling
// the context to a depth).
using BenchProgress = std::function<void(const std::string&, int, int)>;

Result<BenchResult> run_bench(const model::Model& model, const std::string& name,
                              const BenchOptions& opts, ThreadPool& pool,
                              const BenchProgress& progress = nullptr);

// Sets bandwidth and each decode run's roofline figures (best pass of the measurement).
void apply_roofline(BenchResult& r, const MemBandwidth& bw);

nlohmann::json bench_json(const BenchResult& r);
std::string bench_table(const BenchResult& r);     // for people
std::string bench_markdown(const BenchResult& r);  // llama-bench-like markdown table

}  // namespace edgeglm::eval
