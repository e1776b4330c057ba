// Hyper-parameters of a decoder-only transformer, read from GGUF-style metadata.
#pragma once
#include <cstdint>
#include <string>

#include "core/status.h"
#include "formats/model_file.h"

namespace edgeglm::model {

enum class Arch { kLlama, kQwen2, kGlm, kGlm4 };

enum class RopeScaling { kNone, kLinear, kLlama3 };

struct RopeConfig {
  int64_t n_rot = 0;        // rotated dims per head (partial rotary when < head_dim)
  float base = 10000.0f;    // theta_i = pos * base^(-2i / n_rot)
  bool neox = false;        // pair (i, i + n_rot/2) instead of (2i, 2i + 1)
  RopeScaling scaling = RopeScaling::kNone;
  float factor = 1.0f;      // linear: pos / factor; llama3: low-frequency divisor
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_ctx = 8192;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;  // as in general.architecture
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;
  bool qkv_bias = false;    // q/k/v projections carry biases (qwen2, glm, glm4)
  bool post_norms = false;  // glm4: extra norms on the attention and MLP outputs
  RopeConfig rope;

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

const char* arch_display_name(Arch a);

// Reads and validates the hyper-parameters; errors name the file and the key.
Result<ModelConfig> read_config(const formats::ModelFile& file);

}  // namespace edgeglm::model
