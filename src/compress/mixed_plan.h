// Mixed precision: a per-tensor format plan that meets a size budget with the least predicted
// loss of output quality.
//
// 1. Sensitivity: each quantizable tensor alone is quantized to a probe format (Q4_0) and the
//    model is run on calibration text; the mean KL divergence of its token distributions from
//    the reference's is that tensor's measured loss. The reference is the model with every
//    matrix in Q8_0 (fast int8 kernels; Q8_0's own loss is ~100x below a 4-bit tensor's), so a
//    run per tensor stays affordable: ~0.2 s each for SmolLM2-135M on 2 cores.
// 2. Every other candidate format's loss is predicted from the measured one, scaled by the ratio
//    of the tensor's importance-weighted relative error in that format to the probe's
//    (sum H_jj e_rj^2 / sum H_jj w_rj^2, H_jj the calibration second moment of input channel j).
// 3. The plan minimises the sum of predicted losses under the byte budget: a Lagrangian sweep
//    (each tensor independently minimises loss + lambda * bytes, lambda bisected to the budget),
//    then the remaining bytes go greedily to the upgrades with the best loss saved per byte.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/calibration.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::compress {

struct MixedOptions {
  double target_bpw = 0;       // bits per weight over all tensors (> 0: use it)
  double target_mib = 0;       // or: output file size in MiB
  int64_t sensitivity_tokens = 256;  // calibration tokens each sensitivity run scores
  DType probe = DType::Q4_0;
  std::vector<DType> candidates;     // empty: the default ladder (4-bit .. 8-bit, f16)
};

struct TensorPlan {
  std::string name;
  int64_t rows = 0, cols = 0;
  double measured_kld = 0;                 // with the probe format
  std::map<DType, double> predicted_kld;   // per candidate
  std::map<DType, uint64_t> bytes;         // per candidate
  DType chosen = DType::F32;
};

struct MixedPlan {
  std::vector<TensorPlan> tensors;   // the quantizable tensors, in file order
  std::map<std::string, DType> types;
  uint64_t budget_bytes = 0;         // for all tensors
  uint64_t planned_bytes = 0;        // all tensors, with the plan
  uint64_t fixed_bytes = 0;          // tensors the plan does not touch (norms, ...)
  double predicted_kld = 0;          // sum over tensors
  double bits_per_weight = 0;
  double seconds = 0;
};

// Fails when the budget is below the smallest plan the candidates allow (shapes only: cheap,
// so callers can check before calibrating).
Status check_mixed_budget(const formats::ModelFile& file, const MixedOptions& opts);

// The default candidate ladder.
std::vector<DType> default_mixed_candidates();

// progress(done, total) over the sensitivity runs.
Result<MixedPlan> plan_mixed(const model::Model& model, const tokenizer::Tokenizer& tok,
                             const std::string& calib_text, const Calibration* calib,
                             const MixedOptions& opts, ThreadPool& pool,
                             const std::function<void(int64_t, int64_t)>& progress = nullptr);

// Lagrangian + greedy choice on given per-tensor predictions (exposed for tests): fills
// `chosen`, returns the bytes used, or an error when even the cheapest formats exceed budget.
Result<uint64_t> choose_formats(std::vector<TensorPlan>& tensors, uint64_t budget_bytes);

}  // namespace edgeglm::compress
