// Comparison report: several models (a base first, then its compressed variants) evaluated the
// same way, one row each: size on disk, bits per weight, perplexity and its change from the base,
// KL divergence from the base and top-1 agreement, HellaSwag accuracy, prefill/decode speed, and
// the peak resident memory of that model's evaluation.
//
//   CompareOptions o;
//   o.ppl_file = "wiki.test.raw";
//   o.max_chunks = 20;
//   o.notes = {"base = SmolLM2 Q4_1 dequantized to F32"};
//   EG_ASSIGN_OR_RETURN(CompareReport r, compare_models({"base.gguf", "q4_0.gguf"}, o, pool));
//   std::printf("%s", report_markdown(r).c_str());
//   EG_TRY(write_report("out/compare", r));  // out/compare.md and out/compare.json
//
// Models are evaluated one after another, each loaded alone. The base's log-probabilities on the
// perplexity text are written once to a temporary logits file (eval/logits_file.h; about
// chunks * (ctx/2) * 2 * n_vocab bytes, e.g. 25 MiB per 512-token chunk of a 49K vocab) in
// CompareOptions::work_dir, read back row by row for every other model, and removed at the end.
// Peak RSS: before each model the process's high-water mark is reset (writing "5" to
// /proc/self/clear_refs); where that is not permitted the figure is the process's peak so far,
// and ModelReport::peak_rss_per_model says so.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "eval/bench.h"
#include "eval/hellaswag.h"
#include "eval/kld.h"

namespace edgeglm::eval {

struct CompareOptions {
  std::string ppl_file;        // text for perplexity and KLD (llama.cpp chunks); "": skip both
  std::string hellaswag_file;  // hellaswag_val.txt format; "": skip
  int64_t hellaswag_tasks = -1;  // first N tasks; < 0: all
  int64_t n_ctx = 512;
  int64_t max_chunks = -1;     // < 0: all the text gives
  DType kv_type = DType::F16;
  bool bench = true;           // prefill/decode speed with bench_options
  BenchOptions bench_options = {{64}, {32}, 2, 512, 42, DType::F16};
  std::string tokenizer_path;  // tokenizer.bin for llama2.c checkpoints
  std::string work_dir;        // for the base's logits file; "": the system temp directory
  std::vector<std::string> notes;  // free text shown under the table
};

struct ModelReport {
  std::string path;
  std::string name;             // file name of path
  uint64_t file_bytes = 0;      // on disk
  int64_t n_params = 0;         // elements of all tensors
  double bits_per_weight = 0;   // file_bytes * 8 / n_params
  int64_t matrix_params = 0;    // elements of the 2-D tensors
  uint64_t matrix_bytes = 0;
  double matrix_bits_per_weight = 0;  // matrix_bytes * 8 / matrix_params
  std::optional<PerplexityResult> ppl;
  std::optional<KldResult> kld;  // vs the base; never for the base itself
  std::optional<HellaswagResult> hellaswag;  // without per-task scores
  std::optional<double> prefill_tok_per_s;   // mean over bench repetitions
  std::optional<double> decode_tok_per_s;
  uint64_t peak_rss_bytes = 0;
  bool peak_rss_per_model = false;  // false: the high-water mark could not be reset
  double seconds = 0;               // wall time of this model's evaluation
};

struct CompareReport {
  CompareOptions options;
  std::vector<ModelReport> models;  // models[0] is the base
  int threads = 0;
  std::string isa;
};

// progress(model_index, n_models, what is running, e.g. "perplexity + KLD 3/10").
using CompareProgress = std::function<void(size_t, size_t, const std::string&)>;

// Evaluates paths[0] (the base) and then every other path. Errors name the model (and file).
Result<CompareReport> compare_models(const std::vector<std::string>& paths,
                                     const CompareOptions& opts, ThreadPool& pool,
                                     const CompareProgress& progress = nullptr);

// Change of perplexity from the base, in percent (models[i] vs models[0]); nullopt without both.
std::optional<double> ppl_delta_percent(const CompareReport& r, size_t i);

// A markdown table (base first; "-" where a figure does not apply) followed by the setup and
// the notes.
std::string report_markdown(const CompareReport& r);
nlohmann::json report_json(const CompareReport& r);

// Fails early (before hours of evaluation) if PREFIX.md / PREFIX.json cannot be created.
Status check_report_prefix(const std::string& prefix);
// Writes PREFIX.md and PREFIX.json, each as a .tmp file renamed into place.
Status write_report(const std::string& prefix, const CompareReport& r);

// Resets this process's peak-RSS high-water mark; false where the kernel does not permit it.
bool reset_peak_rss();

}  // namespace edgeglm::eval
