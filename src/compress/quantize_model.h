// Whole-model quantization: `edgeglm quantize IN -o OUT --scheme S [--calib FILE] [--keep RE=T]`.
// The input (GGUF, Hugging Face directory, llama2.c) is read through its mmap and never written;
// the output is a GGUF written to OUT.tmp and renamed, one tensor in memory at a time. The chosen
// scheme, calibration and per-tensor plan are stored in the output's metadata:
//   edgeglm.quantize.scheme       string  scheme name
//   edgeglm.quantize.method       string  "rtn" (plain rounding) | "gptq" (calibrated rounding)
//   edgeglm.quantize.calibration  string  "none" | "<file>, <N> tokens"
//   edgeglm.quantize.plan         [string] "tensor=type" for every tensor whose type changed
#pragma once
#include <cstdint>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "compress/calibration.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "quant/scheme.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::compress {

// --keep REGEX=TYPE: tensors whose name matches REGEX (anywhere: std::regex_search) get TYPE.
// TYPE is a format name (q8_0, f16, i8_row, ...) or a fixed scheme name (int8, int4-g64, ...).
struct KeepRule {
  std::string pattern;
  std::regex re;
  DType type;
};
Result<KeepRule> parse_keep_rule(const std::string& spec);

struct QuantizeOptions {
  const quant::Scheme* scheme = nullptr;
  std::vector<KeepRule> keep;           // first match wins, over the scheme (and the plan)
  const Calibration* calib = nullptr;   // null: plain rounding
  // kMixed: the per-tensor types (from plan_mixed); every quantizable tensor must be present.
  std::map<std::string, DType> plan;
};

struct TensorChoice {
  std::string name;
  DType from = DType::F32, to = DType::F32;
  int64_t rows = 0, cols = 0;
  bool calibrated = false;  // rounded with calibration statistics (else plain rounding)
  uint64_t bytes = 0;       // in the output
  // The fixed scheme's format for this tensor; differs from `to` when that format cannot store
  // rows of `cols` elements and a fallback was taken (quant::fallback_type). Equal to `to` for
  // mixed plans and --keep rules, which choose only storable types.
  DType wanted = DType::F32;
};

// One line per group of tensors that a fixed scheme could not store in its own format because of
// their row length, e.g. "5 matrices kept as f16, not i8_row: rows of 172 elements are no whole
// number of its 32-element blocks (blk.0.ffn_down.weight, ...)". Empty when nothing fell back.
std::vector<std::string> fallback_notes(const std::vector<TensorChoice>& plan);

struct QuantizeResult {
  std::vector<TensorChoice> tensors;
  uint64_t in_bytes = 0;       // size of the input on disk
  uint64_t out_bytes = 0;      // size of the output file
  uint64_t weight_bytes = 0;   // bytes of all tensors in the output
  int64_t n_params = 0;
  double bits_per_weight = 0;  // over all tensors
  double seconds = 0;          // writing (quantization) time
  std::string method;          // "rtn" | "gptq"
};

// The per-tensor types the options give for `file` (what --plan-only prints for fixed schemes).
Result<std::vector<TensorChoice>> plan_tensors(const formats::ModelFile& file,
                                               const model::ModelConfig& cfg,
                                               const QuantizeOptions& opts);

// Checks the output can be written without touching the input: not the input itself, directory
// exists and is writable. Called before any long work.
Status check_output_path(const std::string& in_path, const std::string& out_path);

// progress(tensor_index, n_tensors, tensor_name).
using QuantizeProgress = std::function<void(size_t, size_t, const std::string&)>;
Result<QuantizeResult> quantize_model(const model::Model& model, const std::string& out_path,
                                      const QuantizeOptions& opts, ThreadPool& pool,
                                      const QuantizeProgress& progress = nullptr);

// Quantizes one float matrix (rows, cols) into `type`: calibrated rounding when `h` (cols x cols
// input second moments) is given and the type supports it, else plain rounding; rows are shared
// out over the pool. out: rows * dtype_row_bytes(type, cols).
Status quantize_matrix(DType type, const float* w, int64_t rows, int64_t cols, const float* h,
                       uint8_t* out, ThreadPool& pool);

}  // namespace edgeglm::compress
