// Qwen2 / Qwen2.5: the llama block with biases on the q/k/v projections and rotate_half (neox)
// RoPE, in both Hugging Face and GGUF files.
#include "model/arch/arch.h"

namespace edgeglm::model {
namespace {
const char* const kNames[] = {"qwen2", nullptr};
const ArchSpec kSpec = {Arch::kQwen2, kNames, /*rope_neox=*/true, /*partial_rotary_half=*/false,
                        /*qkv_bias=*/true, /*post_norms=*/false};
}  // namespace

const ArchSpec& qwen2_spec() { return kSpec; }

}  // namespace edgeglm::model
