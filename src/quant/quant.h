// Reference (scalar) row conversions for every weight format: the definition each fast kernel is
// tested against. Block structs with their byte layouts are in quant/blocks.h.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace edgeglm::quant {

using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);

struct QuantOps {
  DType dtype;
  DequantizeRowFn dequantize_row;  // every supported type
  QuantizeRowFn quantize_row;      // nullptr where no reference quantizer exists yet
};

// nullptr for types without conversions (e.g. integer tensors).
const QuantOps* quant_ops(DType t);

// Convenience wrappers; n must be a multiple of the type's block size.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
void quantize_row(DType t, const float* src, void* dst, int64_t n);

}  // namespace edgeglm::quant
