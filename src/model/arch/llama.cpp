// Llama family: TinyStories/llama2.c, SmolLM2, TinyLlama, Llama-3.x (GQA, optional tied output,
// rope theta and llama3/linear rope scaling from metadata). GGUF stores q/k rows permuted for
// interleaved-pair RoPE; Hugging Face checkpoints (edgeglm.rope.neox) keep rotate_half layout.
#include "model/arch/arch.h"

namespace edgeglm::model {
namespace {
const char* const kNames[] = {"llama", "mistral", nullptr};
const ArchSpec kSpec = {Arch::kLlama, kNames, /*rope_neox=*/false, /*partial_rotary_half=*/false,
                        /*qkv_bias=*/false, /*post_norms=*/false};
}  // namespace

const ArchSpec& llama_spec() { return kSpec; }

}  // namespace edgeglm::model
