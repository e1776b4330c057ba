// Weights bound to a model file: views into the mmap (zero copy), except matrices moved into a
// run-time layout at load (apply_runtime_layouts, kernels/layout.h). Fused tensors (q|k|v, gate|up)
// are split into row slices of the same mapping. Small vectors (norm weights, biases) stored in a
// format other than F32 are decoded once at load time.
#pragma once
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "formats/model_file.h"
#include "model/config.h"

namespace edgeglm::model {

struct LayerWeights {
  const float* attn_norm = nullptr;       // (n_embd)
  TensorView wq;                          // (q_dim, n_embd)
  TensorView wk;                          // (kv_dim, n_embd)
  TensorView wv;                          // (kv_dim, n_embd)
  const float* bq = nullptr;              // (q_dim) or null
  const float* bk = nullptr;              // (kv_dim) or null
  const float* bv = nullptr;              // (kv_dim) or null
  TensorView wo;                          // (n_embd, q_dim)
  const float* post_attn_norm = nullptr;  // (n_embd), glm4 only
  const float* ffn_norm = nullptr;        // (n_embd)
  TensorView w_gate;                      // (n_ff, n_embd)
  TensorView w_up;                        // (n_ff, n_embd)
  TensorView w_down;                      // (n_embd, n_ff)
  const float* post_ffn_norm = nullptr;   // (n_embd), glm4 only
};

struct Weights {
  TensorView token_embd;               // (n_vocab, n_embd)
  std::vector<LayerWeights> layers;    // n_layer
  const float* output_norm = nullptr;  // (n_embd)
  TensorView output;                   // (n_vocab, n_embd); the embedding when tied
  bool tied_output = false;
  std::vector<float> inv_freq;         // (n_rot/2) RoPE frequencies, scaling applied
  std::vector<std::unique_ptr<std::vector<float>>> decoded;  // owned decoded small vectors
  std::shared_ptr<uint8_t> relaid;  // matrices in a run-time layout (apply_runtime_layouts)
};

// Binds every tensor the architecture needs, checking names, shapes and types.
Result<Weights> bind_weights(const formats::ModelFile& file, const ModelConfig& cfg);

// Moves every matrix the active kernel table computes faster in a run-time layout
// (kernels/layout.h) into that layout, in one anonymous buffer (huge pages where the kernel gives
// them), and drops the copied pages of the file map so RSS stays at about the model's size.
// EDGEGLM_WEIGHT_LAYOUT=file keeps the zero-copy views of the file.
Status apply_runtime_layouts(Weights& w, const formats::ModelFile& file);

// RoPE inverse frequencies (n_rot/2), with linear / llama3 scaling applied, or per-dim factors
// from a rope_freqs tensor when the file has one.
std::vector<float> rope_inv_freq(const RopeConfig& rope, const float* freq_factors);

}  // namespace edgeglm::model
