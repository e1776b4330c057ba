// What distinguishes one architecture from another, as data: each arch/<name>.cpp fills one
// ArchSpec. The forward pass is shared and reads these flags.
#pragma once
#include <string_view>

#include "model/config.h"

namespace edgeglm::model {

struct ArchSpec {
  Arch arch;
  const char* const* gguf_names;  // general.architecture values, nullptr-terminated
  bool rope_neox;                 // default pair layout of this architecture's GGUF files
  bool partial_rotary_half;       // n_rot defaults to head_dim / 2 when not in metadata
  bool qkv_bias;                  // attention q/k/v projections carry biases
  bool post_norms;                // norms on attention and MLP outputs before the residual add
};

const ArchSpec& llama_spec();
const ArchSpec& qwen2_spec();
const ArchSpec& glm_spec();
const ArchSpec& glm4_spec();

// nullptr if the architecture name is unknown.
const ArchSpec* find_arch(std::string_view gguf_name);

}  // namespace edgeglm::model
