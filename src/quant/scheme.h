// Quantization schemes: the names `edgeglm quantize --scheme` takes and the weight format each
// puts on every tensor of a model.
//
// Rules (per tensor, given its GGUF name and shape):
//  * Only 2-D ".weight" matrices are quantized; norms, biases and other vectors stay F32.
//  * GGUF schemes (q8_0, q4_0, ..., q4_k_m, q5_k_m) follow llama.cpp's choices so the files match
//    what its quantizer writes: the output matrix (or the token embedding when it is tied to the
//    output) becomes Q6_K unless the scheme is Q8_0; Q4_K_M / Q5_K_M put Q6_K on attn_v and
//    ffn_down of the layers where llama.cpp's "use more bits" rule holds (the first and last
//    eighth of the layers and every third layer between); a K-quant on a matrix whose row length
//    is not a multiple of 256 falls back as llama.cpp's does (Q4_K -> Q5_0, Q5_K -> Q5_1,
//    Q6_K -> Q8_0). Source: llama.cpp src/llama-quant.cpp (llama_tensor_get_type), checked
//    against files its llama-quantize wrote for SmolLM2-135M.
//  * edgeglm's own schemes put their format on every matrix (int8 / uint8-asym include the
//    embedding and output: "every matmul"); the 4-bit ones keep the output matrix (or tied
//    embedding) at the GGUF rule's Q6_K / Q8_0, like llama.cpp's 4-bit types, and fall back to the
//    32-group format (Q4_0 / Q4_1) when a row is not a multiple of the group.
//  * `mixed` has no fixed format: the planner (compress/mixed_plan.h) picks one per tensor.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace edgeglm::quant {

enum class SchemeKind {
  kFloat,  // f32 / f16 / bf16: conversion, no integer rounding
  kGguf,   // a GGUF type (or llama.cpp mix) with llama.cpp's per-tensor rules
  kOwn,    // edgeglm's schemes: dynamic int8, asymmetric, group-wise int4
  kMixed,  // per-tensor plan under a size budget
};

struct Scheme {
  const char* name;         // as on the command line
  SchemeKind kind;
  DType type;               // the format of ordinary matrices (kMixed: none, F32)
  const char* description;  // one line for --list
  uint32_t file_type;       // GGUF general.file_type (llama_ftype) written for it
  bool calibrated_rounding; // --calib improves its rounding (integer formats)
};

const std::vector<Scheme>& schemes();
// Case-insensitive; the error lists the valid names.
Result<const Scheme*> find_scheme(std::string_view name);

// What the rules need to know about a tensor and its model.
struct TensorDesc {
  std::string name;     // GGUF name, e.g. "blk.3.attn_v.weight"
  int n_dims = 0;
  int64_t cols = 0;     // ne[0], the row length
  int64_t rows = 0;     // product of the other dimensions
};
struct ModelDesc {
  int64_t n_layer = 0;
  bool tied_output = false;  // no output.weight: token_embd is the output matrix too
};

// A 2-D weight matrix the schemes quantize (everything else stays as it is, F32).
bool is_quantizable(const TensorDesc& t);
// The output matrix: output.weight, or token_embd.weight when the model ties them.
bool is_output_matrix(const TensorDesc& t, const ModelDesc& m);
// Layer index from "blk.N....", or -1.
int64_t layer_of(const std::string& tensor_name);

// Format for `t` under a fixed scheme (not kMixed). Not-quantizable tensors give their
// own type back (`current`). Always a type whose block divides t.cols:
// fallback_type(scheme_preferred_type(...), t.cols).
DType scheme_tensor_type(const Scheme& s, const TensorDesc& t, const ModelDesc& m, DType current);
// The format the scheme gives `t` before the row-length fallback (it may not divide t.cols).
DType scheme_preferred_type(const Scheme& s, const TensorDesc& t, const ModelDesc& m, DType current);

// The type to use when `want` cannot store rows of `cols` elements (llama.cpp's fallbacks for
// K-quants, 32-groups for edgeglm's 64/128-groups, F16 as the last resort).
DType fallback_type(DType want, int64_t cols);

// Bits per weight of a tensor of `cols`-element rows in type t (counts per-row headers).
double type_bits_per_weight(DType t, int64_t cols);

}  // namespace edgeglm::quant
