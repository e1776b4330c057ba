// GLM-4-0414: the GLM block plus an RMS norm on the attention output (post_attention_norm) and on
// the MLP output (post_ffw_norm), each applied before its residual add.
#include "model/arch/arch.h"

namespace edgeglm::model {
namespace {
const char* const kNames[] = {"glm4", nullptr};
const ArchSpec kSpec = {Arch::kGlm4, kNames, /*rope_neox=*/false, /*partial_rotary_half=*/true,
                        /*qkv_bias=*/true, /*post_norms=*/true};
}  // namespace

const ArchSpec& glm4_spec() { return kSpec; }

}  // namespace edgeglm::model
