// Zero-padding of the FFN's intermediate channels, so that every matrix product of a model can
// use a format made of 32-element blocks. stories260K's FFN has 172 channels: ffn_down's rows
// (172 long) fit no 32-block format, and the int8 scheme would have to leave it in F16, where
// PyTorch's quantize_dynamic quantizes every Linear.
//
// ffn_gate and ffn_up get zero rows (and zero bias entries) and ffn_down zero columns up to the
// next multiple; {arch}.feed_forward_length says the new size and edgeglm.ffn_padded_from the old. The function is unchanged exactly:
// a new channel is silu(0) * 0 = 0 and meets a zero column, and int8 activations quantize those
// zeros to 0 whatever their block's scale. The file stays an ordinary model of its architecture
// (llama.cpp reads it too); the FFN does (to - from) / from more work.
#pragma once
#include <cstdint>
#include <memory>

#include "core/status.h"
#include "formats/model_file.h"
#include "model/config.h"

namespace edgeglm::compress {

struct PadFfnResult {
  std::unique_ptr<formats::ModelFile> file;  // null: nothing to pad (already a multiple)
  int64_t from = 0, to = 0;                  // FFN channels before and after
};

// Pads to a multiple of `multiple`. Models whose FFN cannot be padded this way (fused gate|up,
// no gate, per-layer sizes, tensors of unexpected shape) give an error saying why; the caller
// then keeps the model as it is.
Result<PadFfnResult> pad_ffn(const formats::ModelFile& file, const model::ModelConfig& cfg, int64_t multiple);

}  // namespace edgeglm::compress
