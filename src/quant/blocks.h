// Weight-format blocks, byte-identical to GGUF/ggml so tensors can be mmapped from a .gguf file
// and written back for llama.cpp; edgeglm's own formats (ids >= 1024) at the end. All multi-byte fields are little-endian; fp16 fields are raw
// IEEE binary16 bits (decode with fp16_to_f32). Structs are plain data: no constructors, no
// padding (every size is pinned by a static_assert).
//
// Notation below: "element e" is the e-th float of the block's slice of the row.
#pragma once
#include <cstdint>

namespace edgeglm::quant {

constexpr int kQK4_0 = 32;
constexpr int kQK4_1 = 32;
constexpr int kQK5_0 = 32;
constexpr int kQK5_1 = 32;
constexpr int kQK8_0 = 32;
constexpr int kQK8_1 = 32;
constexpr int kQK_K = 256;       // elements per k-quant super-block
constexpr int kKScaleSize = 12;  // bytes of packed 6-bit scales+mins in Q4_K / Q5_K

// Q4_0: symmetric 4-bit, 32 elements, 18 bytes.
//   [0,2)   d: fp16 scale
//   [2,18)  qs[16]: element j (0..15) is the low nibble of qs[j], element j+16 its high nibble
//   value = (q - 8) * d
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_1: asymmetric 4-bit, 32 elements, 20 bytes.
//   [0,2) d: fp16 scale   [2,4) m: fp16 offset (the block minimum)
//   [4,20) qs[16]: nibbles as in Q4_0
//   value = q * d + m
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: symmetric 5-bit, 32 elements, 22 bytes.
//   [0,2) d: fp16 scale
//   [2,6) qh: a little-endian uint32 whose bit e is bit 4 of element e
//   [6,22) qs[16]: low 4 bits, nibbles as in Q4_0
//   value = (q - 16) * d
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: asymmetric 5-bit, 32 elements, 24 bytes.
//   [0,2) d: fp16 scale   [2,4) m: fp16 offset   [4,8) qh as in Q5_0   [8,24) qs as in Q4_0
//   value = q * d + m
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// Q8_0: symmetric 8-bit, 32 elements, 34 bytes.
//   [0,2) d: fp16 scale   [2,34) qs[32]: int8, element e is qs[e]
//   value = q * d
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q8_1: Q8_0 plus a precomputed sum (activation format paired with Q4_1/Q5_1), 36 bytes.
//   [0,2) d: fp16 scale   [2,4) s: fp16 of d * sum(qs) (d unrounded at quantization time)
//   [4,36) qs[32]: int8
//   value = q * d
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK8_1];
};
static_assert(sizeof(BlockQ8_1) == 36);

// Q2_K: 2-bit, 256 elements in 16 sub-blocks of 16, 84 bytes.
//   [0,16)  scales[16]: sub-block k = e/16 has 4-bit scale (scales[k] & 0xF) and 4-bit min
//           (scales[k] >> 4)
//   [16,80) qs[64]: element e = 128*h + 32*g + l (h 0..1, g 0..3, l 0..31) is
//           (qs[32*h + l] >> 2*g) & 3
//   [80,82) d: fp16 super-scale for the scales   [82,84) dmin: fp16 super-scale for the mins
//   value = (d * sc) * q - (dmin * mn)
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 3-bit, 256 elements in 16 sub-blocks of 16, 110 bytes.
//   [0,32)   hmask[32]: the high bit of element e is bit (e/32) of hmask[e%32]
//   [32,96)  qs[64]: low 2 bits, laid out as Q2_K's qs
//   [96,108) scales[12]: sixteen 6-bit signed scales (stored +32). Scale k: low 4 bits are the
//            low nibble of byte k (k<8) or the high nibble of byte k-8 (k>=8); high 2 bits are
//            bits 2*(k/4)..2*(k/4)+1 of byte 8 + k%4
//   [108,110) d: fp16 super-scale
//   q = low2 - (high bit set ? 0 : 4), in -4..3;  value = (d * (sc - 32)) * q
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 4-bit, 256 elements in 8 sub-blocks of 32, 144 bytes.
//   [0,2) d: fp16 super-scale for scales   [2,4) dmin: fp16 super-scale for mins
//   [4,16) scales[12]: eight 6-bit scales sc[j] and 6-bit mins mn[j]:
//          j<4:  sc = b[j] & 63,                         mn = b[j+4] & 63
//          j>=4: sc = (b[j+4] & 0xF) | (b[j-4] >> 6) << 4, mn = (b[j+4] >> 4) | (b[j] >> 6) << 4
//   [16,144) qs[128]: element e = 64*c + l (l<32) is the low nibble of qs[32*c + l], element
//          64*c + 32 + l its high nibble; sub-block j = e/32
//   value = (d * sc) * q - (dmin * mn)
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: 5-bit, 256 elements in 8 sub-blocks of 32, 176 bytes.
//   [0,4) d, dmin and [4,16) scales exactly as Q4_K
//   [16,48) qh[32]: bit 4 of element e is bit (e/32) of qh[e%32]
//   [48,176) qs[128]: low 4 bits, laid out as Q4_K's qs
//   value = (d * sc) * q - (dmin * mn)
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 6-bit, 256 elements in 16 sub-blocks of 16, 210 bytes.
//   [0,128)   ql[128]: low 4 bits. For half h (0..1) and l<32, with L = ql + 64*h:
//             element 128h+l    = low nibble of L[l],    128h+32+l = low nibble of L[32+l],
//             element 128h+64+l = high nibble of L[l],   128h+96+l = high nibble of L[32+l]
//   [128,192) qh[64]: high 2 bits; element 128h + 32*g + l uses bits 2g..2g+1 of qh[32h + l]
//   [192,208) scales[16]: int8 scale of sub-block e/16
//   [208,210) d: fp16 super-scale
//   q = (low | high << 4) - 32, in -32..31;  value = (d * sc) * q
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K: 8-bit activation format paired with the k-quants, 292 bytes.
//   [0,4) d: float32 scale (not fp16)   [4,260) qs[256]: int8
//   [260,292) bsums[16]: int16 sum of qs over each group of 16 elements
//   value = d * q
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// ---------------- edgeglm's own formats (ids >= 1024, core/dtype.h) ----------------
// Not GGUF types: llama.cpp cannot read them. Layouts are fixed forever (files depend on them).
// Quantized values are multiplied with int8 activations in 32-element blocks (kernels/qacts.h),
// so every format below is made of 32-element sub-blocks laid out like Q4_0's or Q8_0's.

constexpr int kQKRow = 32;  // per-row formats: row length granularity

// I8_ROW ("i8_row", id 1024): per-output-channel symmetric int8 (as PyTorch's dynamic qint8).
// A row of n elements (n % 32 == 0, n > 0) is 4 + n bytes:
//   [0,4)     d: float32 scale (little-endian; rows are not 4-byte aligned in general: memcpy it)
//   [4,4+n)   q[n]: int8 in [-127, 127], element e is q[e]
//   value = d * q
struct RowI8Header {
  float d;
};
static_assert(sizeof(RowI8Header) == 4);

// U8_ROW ("u8_row", id 1025): per-output-channel asymmetric uint8 with a zero point.
// A row of n elements (n % 32 == 0, n > 0) is 8 + n bytes:
//   [0,4) d: float32 scale   [4,8) m: float32 offset (the row minimum; zero point z = -m / d)
//   [8,8+n) q[n]: uint8, element e is q[e]
//   value = d * q + m
struct RowU8Header {
  float d;
  float m;
};
static_assert(sizeof(RowU8Header) == 8);

// I4_G64 / I4_G128 ("i4_g64" id 1026 / "i4_g128" id 1027): symmetric 4-bit, one fp16 scale per
// group of G = 64 / 128 elements; 34 / 66 bytes.
//   [0,2)        d: fp16 scale
//   [2,2+G/2)    qs[G/2]: G/32 sub-blocks of 32 elements, sub-block s in qs[16s, 16s+16) exactly
//                like a Q4_0 block's qs: element 32s+j (j < 16) is the low nibble of qs[16s+j],
//                element 32s+j+16 its high nibble
//   value = d * (q - 8)
template <int G>
struct BlockI4G {
  uint16_t d;
  uint8_t qs[G / 2];
};
using BlockI4_G64 = BlockI4G<64>;
using BlockI4_G128 = BlockI4G<128>;
static_assert(sizeof(BlockI4_G64) == 34);
static_assert(sizeof(BlockI4_G128) == 66);

// U4_G64 / U4_G128 ("u4_g64" id 1028 / "u4_g128" id 1029): asymmetric 4-bit, fp16 scale and min
// per group of G = 64 / 128 elements; 36 / 68 bytes.
//   [0,2) d: fp16 scale   [2,4) m: fp16 offset (the group minimum)
//   [4,4+G/2) qs[G/2]: nibbles as in I4_G
//   value = d * q + m
template <int G>
struct BlockU4G {
  uint16_t d;
  uint16_t m;
  uint8_t qs[G / 2];
};
using BlockU4_G64 = BlockU4G<64>;
using BlockU4_G128 = BlockU4G<128>;
static_assert(sizeof(BlockU4_G64) == 36);
static_assert(sizeof(BlockU4_G128) == 68);

// Sub-block j's 6-bit scale and min from Q4_K/Q5_K packed scales (layout above).
inline void unpack_scale_min_k4(int j, const uint8_t* b, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = uint8_t(b[j] & 63);
    *mn = uint8_t(b[j + 4] & 63);
  } else {
    *sc = uint8_t((b[j + 4] & 0xF) | ((b[j - 4] >> 6) << 4));
    *mn = uint8_t((b[j + 4] >> 4) | ((b[j] >> 6) << 4));
  }
}

// Scale k (0..15, still biased by +32) from Q3_K packed scales (layout above).
inline int unpack_scale_q3_k(int k, const uint8_t* b) {
  const int low = k < 8 ? (b[k] & 0xF) : (b[k - 8] >> 4);
  const int high = (b[8 + k % 4] >> (2 * (k / 4))) & 3;
  return low | (high << 4);
}

}  // namespace edgeglm::quant
