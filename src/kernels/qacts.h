// Activations quantized on the fly for integer dot products (house rule 6: integer weight formats
// multiply against int8 activations, never against dequantized weights).
//
// Layout of n_tok rows of n activations (n a multiple of 32), structure of arrays so every ISA can
// load 32 int8 values or 16 scales with one aligned load:
//   q[t*n + i]     int8 value of element i of row t
//   d[t*nb + b]    float scale of block b (32 elements) of row t; element = d * q
//   s[t*nb + b]    sum of the 32 q of that block (offset terms of Q4_0/Q5_0, the mins of
//                  Q4_1/Q5_1/Q4_K/Q5_K, the -32 of Q6_K)
//
// The quantizer is the same in every ISA, bit for bit: per block amax = max |x|, d = amax / 127,
// q = nearbyint(x * (127 / amax)) (round half to even, as SIMD conversions do), all zero when
// amax == 0. So integer partial sums are exact and ISAs differ only in float summation order.
#pragma once
#include <cstddef>
#include <cstdint>

namespace edgeglm::kernels {

constexpr int kQActBlock = 32;

struct QActs {
  int8_t* q = nullptr;
  float* d = nullptr;
  int32_t* s = nullptr;
  int64_t n = 0;      // elements per row
  int64_t n_tok = 0;  // rows
  int64_t nb() const { return n / kQActBlock; }
  const int8_t* row_q(int64_t t) const { return q + t * n; }
  const float* row_d(int64_t t) const { return d + t * nb(); }
  const int32_t* row_s(int64_t t) const { return s + t * nb(); }
};

// Bytes of a buffer holding n_tok rows of n elements (64-byte aligned sections), and a view on one.
size_t qacts_bytes(int64_t n, int64_t n_tok);
QActs qacts_view(void* buffer64, int64_t n, int64_t n_tok);

// The reference quantizer of one row (definition above); ISAs provide bit-identical versions.
void quantize_acts_ref(const float* x, int64_t n, int8_t* q, float* d, int32_t* s);

}  // namespace edgeglm::kernels
