// Activation smoothing (SmoothQuant, Xiao et al. 2022): int8 activations lose precision where a
// few input channels are much larger than the rest (one 32-element block shares one scale). For
// a matrix product y = W x whose input x comes from a linear producer, x_j is divided by s_j in
// the producer and column j of W multiplied by s_j: the product is unchanged in exact
// arithmetic, the activations are flatter and the weights take part of the range.
//   s_j = rms(x_j)^alpha / max_r |W_rj|^(1 - alpha)
// Sites folded (each only when the model has the separate tensors it needs):
//   attention input:  attn_norm.weight /= s;  attn_q/k/v columns *= s
//   FFN input:        ffn_norm.weight /= s;   ffn_gate/up columns *= s
//   FFN down input:   ffn_up rows /= s (silu(gate) * up is linear in up); ffn_down columns *= s
//   attention output: attn_v rows (and bias) /= s; attn_output columns *= s, with one s per
//                     (kv head, dim) shared by the query heads of the group
// The output matrix is left alone (tied to the embedding in the small models). The calibration
// statistics are transformed to match (H_ij / (s_i s_j)), so calibrated rounding sees the
// smoothed inputs.
#pragma once
#include <memory>

#include "compress/calibration.h"
#include "formats/model_file.h"
#include "model/config.h"

namespace edgeglm::compress {

struct SmoothOptions {
  double alpha = 0.5;  // migration strength, 0 (none) .. 1 (all onto the weights)
};

struct SmoothResult {
  std::unique_ptr<formats::ModelFile> file;  // a copy of the input with the smoothed tensors (F32)
  int sites = 0;                             // (site, layer) pairs smoothed
};

Result<SmoothResult> smooth_model(const formats::ModelFile& file, const model::ModelConfig& cfg,
                                  Calibration& calib, const SmoothOptions& opts);

}  // namespace edgeglm::compress
