// Calibration-aware weight quantization: quantizes one weight matrix W (rows = output channels,
// cols = input channels, float, row-major) into a weight format so that the *output* error
// ||(W - Wq) X||^2 = tr((W - Wq) H (W - Wq)^T) is small, where H = sum over calibration tokens of
// x x^T is the (cols x cols) second moment of the matrix's input activations. diag(H) is the
// per-input-channel "importance matrix".
//
// Methods (details and measurements in the .cpp files named below):
//   kGptq         GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training
//                 Quantization for Generative Pre-trained Transformers", arXiv:2210.17323):
//                 columns are quantized one by one and each rounding error is compensated on the
//                 columns not yet quantized, in blocks with lazy batch updates (gptq.cpp), from
//                 one reverse Cholesky factor of the damped H (gptq_factor.cpp). By default
//                 columns go by decreasing diag(H) (act order) and every group's parameters are
//                 fitted up front by an importance-weighted search (static groups); with
//                 act_order = false, a group is fitted when the sweep reaches it, from the
//                 already error-updated weights. Then the codes and scales are polished on the
//                 exact output error: coordinate descent on the codes and a least-squares
//                 re-solve of each row's scales (gptq_refine.cpp).
//   kWeightedRtn  No error propagation: every group's parameters are fitted by the same
//                 importance-weighted search (weights diag(H)), then each weight is rounded to the
//                 nearest level ("imatrix" quantization, as llama-quantize --imatrix does).
// Searches: weighted_grids.cpp (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 and edgeglm's I8_ROW U8_ROW I4_G* U4_G*),
// weighted_kquants.cpp (Q4_K Q5_K Q6_K).
// The output bytes are ordinary blocks of the format: quant::dequantize_row decodes them.
//
// Measured on the synthetic layers of tests/quant/test_calibrated.cpp with the default options
// (output error relative to plain round-to-nearest, quant::quantize_row; in-sample, 2048
// calibration tokens for 512 columns; "mild" layer = 2-4x outlier channels):
//   format   weighted-rtn  gptq      format   weighted-rtn  gptq
//   q4_0     0.871         0.464     q6_k     0.873         0.479
//   q4_1     0.745         0.406     i8_row   0.973         0.511
//   q5_0     0.884         0.457     u8_row   0.954         0.504
//   q5_1     0.767         0.416     i4_g64   0.847         0.444
//   q8_0     0.925         0.474     i4_g128  0.802         0.411
//   q4_k     0.882         0.493     u4_g64   0.762         0.417
//   q5_k     0.867         0.479     u4_g128  0.777         0.421
// With strong (10-100x) outlier channels gptq is 0.004-0.033 of plain. On held-out tokens (the
// HeldOutActivations test) gptq/plain for Q4_0 is 0.57 (mild, 2048 calibration tokens) and 0.66
// (mild, 512 tokens), 0.02 (strong).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace edgeglm::quant {

enum class CalibMethod { kGptq, kWeightedRtn };

struct CalibOptions {
  CalibMethod method = CalibMethod::kGptq;
  // Dampening: lambda = damp * median(diag(H)) is added to diag(H) before factorizing (and to the
  // importance weights of kWeightedRtn). It regularizes against overfitting the calibration set:
  // directions the calibration tokens do not excite still cost something. When the damped H is
  // still not positive definite, damp is multiplied by 10 (up to 4 times) before giving up.
  // GPTQ's paper uses 0.01 * mean(diag(H)); the mean is dominated by a few outlier channels in LLM
  // activations. Measured on held-out activations (the setup of test_calibrated's
  // HeldOutActivations with 96 rows; Q4_0 GPTQ/plain error, calibration on 512 / 4096 tokens for
  // 512 columns):
  //   strong outliers: mean 0.01 0.023 / 0.014, mean 0.1 0.041 / 0.028, median 0.3 0.023 / 0.014
  //   mild outliers:   mean 0.01 1.264 / 0.568, mean 0.1 0.750 / 0.546, median 0.3 0.657 / 0.541
  // (median 1.0: 0.026/0.017 and 0.605/0.555). damp_median = false gives GPTQ's mean rule.
  double damp = 0.3;
  bool damp_median = true;
  // Columns per lazy-batch block; rounded up to a multiple of the format's parameter group
  // (32..256 columns). Affects speed only (the result is the same up to float rounding).
  int64_t block_cols = 128;
  // Process columns by decreasing diag(H) (GPTQ's "act order"): the most important columns are
  // quantized first, while the most columns are left to absorb their error. Groups stay in column
  // order, so all group parameters are then fitted up front from the unmodified weights ("static
  // groups") instead of when the sweep reaches them. Measured GPTQ/plain on held-out tokens
  // (HeldOutActivations), act order vs natural order: mild layer, 512 calibration tokens
  // Q4_0 0.657 vs 0.685, Q4_1 0.577 vs 0.609, Q4_K 0.719 vs 0.741, I4_G128 0.621 vs 0.643;
  // 2048 tokens 0.568 vs 0.576 (Q4_0); strong layer I4_G128 0.033 vs 0.039, others equal.
  // In-sample the two are within +-2% (ActOrderStaticGroupsDecode). Hence the default.
  bool act_order = true;
  // Legacy/own formats, GPTQ in natural order (act_order = false) only: rank the best candidate
  // scales by simulating the group's own error propagation (the exact GPTQ loss of the group)
  // instead of the weighted rounding error of the current values.
  bool exact_group_search = true;
  // GPTQ: polish passes after the sweep (gptq_refine.cpp). Each pass moves single integer codes
  // by one level while that lowers the output error (coordinate descent, up to 4 sweeps over the
  // columns), then re-solves each row's group scales (and mins; k-quants: d and dmin) by least
  // squares on the output error with the codes fixed. Measured output error, passes 0 / 1 / 2
  // (PolishNeverHurts, mild layer): Q4_0 4.81e-3 / 4.28e-3 / 4.22e-3, Q4_1 3.04e-3 / 2.62e-3 /
  // 2.59e-3, Q4_K 3.07e-3 / 2.76e-3 / 2.73e-3; a third pass gains < 0.3%. A pass costs about
  // 2-3 GPTQ sweeps (products with H per row instead of one triangle).
  int polish_passes = 2;
};

// A factorized, damped H, reusable for every matrix that reads the same activations (q/k/v,
// gate/up). Opaque; built by prepare_hessian.
struct CalibHessian {
  int64_t cols = 0;
  double damp_used = 0;           // damp after retries
  std::vector<int32_t> perm;      // processing order: perm[p] = original column (act_order)
  std::vector<float> diag;        // (cols) damped diag(H), original column order
  std::vector<float> h;           // (cols, cols) damped H, original column order
  // Reverse Cholesky of the damped, permuted H = U U^T (U upper), stored normalized:
  std::vector<float> v;           // (cols, cols) row-major, v[k*cols+i] = U[k][i] / U[i][i], k < i
  std::vector<float> cond_w;      // (cols) U[p][p]^2: weight of column p's rounding error
};

// Damps and factorizes h (cols x cols, symmetric; only the upper triangle i <= j is read). Error
// if cols <= 0, h has non-finite values or a negative diagonal, diag(H) is all zero, or H is not
// positive definite even after the damping retries. pool may be nullptr.
Result<std::shared_ptr<const CalibHessian>> prepare_hessian(const float* h, int64_t cols,
                                                            ThreadPool* pool,
                                                            const CalibOptions& opts = {});

// True for the weight formats quantize_matrix accepts with an H: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q4_K, Q5_K, Q6_K, I8_ROW, U8_ROW, I4_G64, I4_G128, U4_G64, U4_G128.
bool calib_supported(DType t);

// Quantizes w (rows x cols) into out (rows * dtype_row_bytes(t, cols) bytes). h (cols x cols)
// nullptr -> plain reference rounding, bytes identical to quant::quantize_row per row (then any
// type with a reference quantizer is accepted). Errors (never asserts) for an unsupported type,
// cols not a multiple of the type's block size, rows/cols <= 0, null w/out, non-finite weights,
// or an unusable h (see prepare_hessian). pool may be nullptr (single-threaded).
Status quantize_matrix(DType t, const float* w, int64_t rows, int64_t cols, const float* h,
                       uint8_t* out, ThreadPool* pool, const CalibOptions& opts = {});
// The same with a prepared H (hess->cols must equal cols); the options baked into hess
// (damp, act_order) are the ones used.
Status quantize_matrix(DType t, const float* w, int64_t rows, int64_t cols,
                       const CalibHessian& hess, uint8_t* out, ThreadPool* pool,
                       const CalibOptions& opts = {});

// Relative output error of a quantized matrix: tr(E H E^T) / tr(W H W^T) with E = W - deq(q),
// using the undamped h. Lets a mixed-precision planner predict the loss of each format. Returns
// NaN on bad arguments (unknown type, bad shape, null pointers); 0 when tr(W H W^T) == 0.
double weighted_error(DType t, const float* w, const uint8_t* q, int64_t rows, int64_t cols,
                      const float* h, ThreadPool* pool = nullptr);

}  // namespace edgeglm::quant
