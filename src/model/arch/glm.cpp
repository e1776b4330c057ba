// GLM (GLM-Edge, GLM-4-9B-chat-hf; GGUF "chatglm", also ChatGLM3's legacy layout): q/k/v biases,
// fused q|k|v projection in the legacy layout, fused gate|up MLP, and partial rotary: only the
// first n_rot (= head_dim/2 by default) dims of each head rotate, as interleaved pairs.
#include "model/arch/arch.h"

namespace edgeglm::model {
namespace {
const char* const kNames[] = {"glm", "chatglm", nullptr};
const ArchSpec kSpec = {Arch::kGlm, kNames, /*rope_neox=*/false, /*partial_rotary_half=*/true,
                        /*qkv_bias=*/true, /*post_norms=*/false};
}  // namespace

const ArchSpec& glm_spec() { return kSpec; }

}  // namespace edgeglm::model
