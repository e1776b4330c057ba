// AVX-512 VNNI integer kernels, prefill path (many tokens). Rows are processed in pairs of tiles
// of 16 rows, the reduction dimension in chunks of kChunk blocks. Each chunk of a row tile is
// decoded once into unsigned 8-bit values and repacked so that one zmm holds 4 consecutive values
// of each of the 16 rows:
//   w8[b][j][tile][16 rows][4 bytes]  values 4j..4j+3 of block b (j = 0..7)
//   ds[b][tile][16 rows]              the block's weight scale (Q6_K: of its first 16 values)
//   m [b][tile][16 rows]              its min (Q4_1/Q5_1/Q4_K/Q5_K), Q6_K: scale of values 16..31
// Then vpdpbusd of such a zmm with 4 activation bytes broadcast gives 16 rows' partial sums in
// 16 lanes, so a block of 32 values is 8 instructions per 16 rows and token, with no horizontal
// reduction. A register tile of 2 x 16 rows x T tokens (T <= 6) keeps 2T int32 and 2T float
// accumulators in registers; the 8 weight vectors of a block are loaded once per tile of tokens.
// The offset of a format enters exactly, as the initial value of the int32 accumulator (-offset
// times the activation block sum); mins enter in float (m * da * block sum).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/layout.h"
#include "kernels/x86/qgemm_avx512.h"
#include "quant/blocks.h"

namespace edgeglm::kernels::avx512 {
namespace {

using namespace edgeglm::quant;

constexpr int kChunk = 16;  // blocks of 32 per chunk of the reduction dimension (multiple of 8)
constexpr int kMaxTok = 6;  // tokens per register tile

enum class Kind { kOffset, kMin, kHalves };

// ---- unpacking one row: blocks [b, b + n) into 32 unsigned values each, scales with a stride ----

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i nibbles_32(const uint8_t* qs) {  // 16 packed bytes -> [low nibbles | high nibbles]
  const __m128i x = loadu128(qs);
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(x, m)),
                                 _mm_and_si128(_mm_srli_epi16(x, 4), m), 1);
}
inline void store32(uint8_t* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }

struct UnpackQ8_0 {
  static constexpr Kind kKind = Kind::kOffset;
  static constexpr int kOffsetValue = 128;
  static void run(const uint8_t* row, int64_t b, int n, uint8_t* v, float* ds, float*, int st) {
    const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(row) + b;
    for (int k = 0; k < n; ++k) {
      store32(v + 32 * k, _mm256_xor_si256(loadu256(blk[k].qs), _mm256_set1_epi8(char(0x80))));
      ds[k * st] = h2f(blk[k].d);
    }
  }
};
template <class Block, bool kFive, bool kHasMin>
struct UnpackLegacy {
  static constexpr Kind kKind = kHasMin ? Kind::kMin : Kind::kOffset;
  static constexpr int kOffsetValue = kFive ? 16 : 8;
  static void run(const uint8_t* row, int64_t b, int n, uint8_t* v, float* ds, float* m, int st) {
    const Block* blk = reinterpret_cast<const Block*>(row) + b;
    for (int k = 0; k < n; ++k) {
      __m256i x = nibbles_32(blk[k].qs);
      if constexpr (kFive) {
        uint32_t qh;
        std::memcpy(&qh, blk[k].qh, 4);
        x = _mm256_mask_add_epi8(x, __mmask32(qh), x, _mm256_set1_epi8(0x10));
      }
      store32(v + 32 * k, x);
      ds[k * st] = h2f(blk[k].d);
      if constexpr (kHasMin) m[k * st] = h2f(blk[k].m);
    }
  }
};
using UnpackQ4_0 = UnpackLegacy<BlockQ4_0, false, false>;
using UnpackQ4_1 = UnpackLegacy<BlockQ4_1, false, true>;

// A run-time layout of U's format (kernels/layout.h): rows in groups of G, units of UB blocks of BS
// bytes. Chunks start on a unit and hold whole units (kChunk is a multiple of UB, and the layouts
// only take rows of whole units).
template <class U, int G, int UB, int BS>
struct Relaid {
  static constexpr Kind kKind = U::kKind;
  static constexpr int kOffsetValue = U::kOffsetValue;
  static constexpr int kGroupRows = G;
  static constexpr size_t kUnit = size_t(UB) * BS;
  static_assert(kChunk % UB == 0);
  static const uint8_t* unit(const uint8_t* w, size_t row_bytes, int64_t r, int64_t b) {
    return w + size_t(r / G) * G * row_bytes + size_t((b / UB) * G + r % G) * kUnit;
  }
  // Row r alone (outside a whole group of the tile).
  static void run_row(const uint8_t* w, size_t row_bytes, int64_t r, int64_t b, int n, uint8_t* v, float* ds,
                      float* m, int st) {
    const uint8_t* p = unit(w, row_bytes, r, b);
    for (int k = 0; k < n; k += UB, p += G * kUnit) U::run(p, 0, UB, v + 32 * k, ds + k * st, m + k * st, st);
  }
  // The group of rows r..r+G-1 (r a multiple of G) in memory order, one sequential read: row i's
  // values at v + i * vstride, its scales at ds[i + k * st]. Row by row instead was 1.3-1.6x slower.
  static void run_group(const uint8_t* w, size_t row_bytes, int64_t r, int64_t b, int n, uint8_t* v,
                        size_t vstride, float* ds, float* m, int st) {
    const uint8_t* p = unit(w, row_bytes, r, b);
    for (int k = 0; k < n; k += UB)
      for (int i = 0; i < G; ++i, p += kUnit)
        U::run(p, 0, UB, v + i * vstride + 32 * k, ds + i + k * st, m + i + k * st, st);
  }
};
using UnpackQ8_0R8 = Relaid<UnpackQ8_0, kQ8R8Rows, 2, sizeof(BlockQ8_0)>;
using UnpackQ4_0R8 = Relaid<UnpackQ4_0, kQ4R8Rows, 4, sizeof(BlockQ4_0)>;
using UnpackQ4_1R8 = Relaid<UnpackQ4_1, kQ4R8Rows, 4, sizeof(BlockQ4_1)>;
using UnpackQ5_0 = UnpackLegacy<BlockQ5_0, true, false>;
using UnpackQ5_1 = UnpackLegacy<BlockQ5_1, true, true>;

// I4_G / U4_G: kSub sub-blocks of 32 per group share its scale (and min); sub-block s is laid out
// as a Q4_0 block's qs at qs + 16s.
template <class Block, bool kHasMin, int kSub>
struct UnpackGroup {
  static constexpr Kind kKind = kHasMin ? Kind::kMin : Kind::kOffset;
  static constexpr int kOffsetValue = 8;
  static void run(const uint8_t* row, int64_t b, int n, uint8_t* v, float* ds, float* m, int st) {
    const Block* blk = reinterpret_cast<const Block*>(row);
    for (int k = 0; k < n; ++k) {
      const Block& g = blk[(b + k) / kSub];
      store32(v + 32 * k, nibbles_32(g.qs + 16 * ((b + k) % kSub)));
      ds[k * st] = h2f(g.d);
      if constexpr (kHasMin) m[k * st] = h2f(g.m);
    }
  }
};
using UnpackI4_G64 = UnpackGroup<BlockI4_G64, false, 2>;
using UnpackI4_G128 = UnpackGroup<BlockI4_G128, false, 4>;
using UnpackU4_G64 = UnpackGroup<BlockU4_G64, true, 2>;
using UnpackU4_G128 = UnpackGroup<BlockU4_G128, true, 4>;

// I8_ROW (flipped to unsigned by +128, as Q8_0) / U8_ROW (unsigned as stored, min as Q4_1): every
// block of a row carries the row's scale (and min) from the header.
template <bool kUnsigned>
struct UnpackRow8 {
  static constexpr Kind kKind = kUnsigned ? Kind::kMin : Kind::kOffset;
  static constexpr int kOffsetValue = kUnsigned ? 0 : 128;
  static constexpr int kHeader = kUnsigned ? sizeof(RowU8Header) : sizeof(RowI8Header);
  static void run(const uint8_t* row, int64_t b, int n, uint8_t* v, float* ds, float* m, int st) {
    float d, mn = 0.0f;
    std::memcpy(&d, row, 4);
    if constexpr (kUnsigned) std::memcpy(&mn, row + 4, 4);
    const uint8_t* q = row + kHeader + 32 * b;
    for (int k = 0; k < n; ++k) {
      __m256i x = loadu256(q + 32 * k);
      if constexpr (!kUnsigned) x = _mm256_xor_si256(x, _mm256_set1_epi8(char(0x80)));
      store32(v + 32 * k, x);
      ds[k * st] = d;
      if constexpr (kUnsigned) m[k * st] = mn;
    }
  }
};

template <bool kFive>
struct UnpackK45 {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  static constexpr Kind kKind = Kind::kMin;
  static constexpr int kOffsetValue = 0;
  // Sub-block j of 32 is a block with scale d*sc_j and min -dmin*mn_j (both exact in float).
  static void run(const uint8_t* row, int64_t b, int n, uint8_t* v, float* ds, float* m, int st) {
    const Block* blk = reinterpret_cast<const Block*>(row) + b / 8;
    for (int i = 0; i < n / 8; ++i, v += 256, ds += 8 * st, m += 8 * st) {
      const float d = h2f(blk[i].d), dmin = h2f(blk[i].dmin);
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, mn;
        unpack_scale_min_k4(j, blk[i].scales, &sc, &mn);
        ds[j * st] = d * float(sc);
        m[j * st] = -dmin * float(mn);
      }
      const __m256i qh = kFive ? loadu256(reinterpret_cast<const BlockQ5_K*>(blk + i)->qh) : _mm256_setzero_si256();
      for (int c = 0; c < 4; ++c) {
        const __m256i x = loadu256(blk[i].qs + 32 * c);
        __m256i lo = lo_nib(x), hi = hi_nib(x);
        if constexpr (kFive) {
          const __m256i b4 = _mm256_set1_epi8(0x10);
          lo = _mm256_mask_add_epi8(lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c)))), lo, b4);
          hi = _mm256_mask_add_epi8(hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(2 << (2 * c)))), hi, b4);
        }
        store32(v + 64 * c, lo);
        store32(v + 64 * c + 32, hi);
      }
    }
  }
};

struct UnpackQ6_K {
  static constexpr Kind kKind = Kind::kHalves;
  static constexpr int kOffsetValue = 32;
  // Values 0..63 (the -32 is applied through the activation half-block sums); ds / m carry the
  // scales of the two halves of each block of 32.
  static void run(const uint8_t* row, int64_t b, int n, uint8_t* v, float* ds, float* m, int st) {
    const BlockQ6_K* blk = reinterpret_cast<const BlockQ6_K*>(row) + b / 8;
    const __m256i m4 = _mm256_set1_epi8(0x30);
    for (int i = 0; i < n / 8; ++i, v += 256, ds += 8 * st, m += 8 * st) {
      const float d = h2f(blk[i].d);
      for (int j = 0; j < 8; ++j) {
        ds[j * st] = d * float(blk[i].scales[2 * j]);
        m[j * st] = d * float(blk[i].scales[2 * j + 1]);
      }
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = loadu256(blk[i].ql + 64 * h), l1 = loadu256(blk[i].ql + 64 * h + 32);
        const __m256i qh = loadu256(blk[i].qh + 32 * h);
        uint8_t* o = v + 128 * h;
        store32(o, _mm256_or_si256(lo_nib(l0), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m4)));
        store32(o + 32, _mm256_or_si256(lo_nib(l1), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m4)));
        store32(o + 64, _mm256_or_si256(hi_nib(l0), _mm256_and_si256(qh, m4)));
        store32(o + 96, _mm256_or_si256(hi_nib(l1), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m4)));
      }
    }
  }
};

// The X8 layouts (kernels/layout.h) of U's format, F 2-byte fields per block (after the quants in
// the file block when kFieldsLast), kPer blocks of 32 per file block: each of a row's blocks is put
// back together from its block column (fields at 16f + 2k, 4-byte chunks at 16F + 32c + 4k for row k
// of the group) and unpacked by U, so the result is the file format's bit for bit. The extra copy
// is paid once per chunk of a tile and shared by all its tokens.
template <class U, class Block, int F, int kPer, bool kFieldsLast = false>
struct FromX8 {
  static constexpr Kind kKind = U::kKind;
  static constexpr int kOffsetValue = U::kOffsetValue;
  static constexpr int kGroupRows = kX8Rows;
  static constexpr size_t kBB = sizeof(Block);
  static constexpr size_t kChunks = (kBB - 2 * F) / 4;
  static_assert(kChunk % kPer == 0 && (kBB - 2 * F) % 4 == 0);
  static void run_row(const uint8_t* w, size_t row_bytes, int64_t r, int64_t b, int n, uint8_t* v, float* ds,
                      float* m, int st) {
    alignas(64) uint8_t file[kChunk / kPer * kBB];
    const uint8_t* g = w + size_t(r / kX8Rows) * kX8Rows * row_bytes;
    const size_t k = size_t(r % kX8Rows), f0 = kFieldsLast ? kBB - 2 * F : 0, q0 = kFieldsLast ? 0 : 2 * F;
    const int nu = (n + kPer - 1) / kPer;
    for (int u = 0; u < nu; ++u) {
      const uint8_t* col = g + size_t(b / kPer + u) * kX8Rows * kBB;
      uint8_t* o = file + size_t(u) * kBB;
      for (size_t f = 0; f < F; ++f) std::memcpy(o + f0 + 2 * f, col + 16 * f + 2 * k, 2);
      for (size_t c = 0; c < kChunks; ++c) std::memcpy(o + q0 + 4 * c, col + 16 * F + 32 * c + 4 * k, 4);
    }
    U::run(file, 0, n, v, ds, m, st);
  }
  static void run_group(const uint8_t* w, size_t row_bytes, int64_t r, int64_t b, int n, uint8_t* v,
                        size_t vstride, float* ds, float* m, int st) {
    for (int i = 0; i < kX8Rows; ++i) run_row(w, row_bytes, r + i, b, n, v + i * vstride, ds + i, m + i, st);
  }
};

// Q4_0 / Q4_1 / Q8_0 in X8: a 32-byte chunk holds 4 bytes of each of the 8 rows, half a repacked
// vector already (rows in lanes): Q8_0's chunk c is values 4c..4c+3 (flipped to unsigned), a Q4_x
// chunk c values 4c..4c+3 in its low nibbles and 16+4c..16+4c+3 in its high ones. direct_block
// writes the 8 rows' vectors j of one block (at w8 + j * jstride) and their scales, no transpose.
template <class U, class Block, int F, bool kQ8>
struct DirectX8 : FromX8<U, Block, F, 1> {
  static void direct_block(const uint8_t* col, uint8_t* w8, size_t jstride, float* ds, float* m) {
    _mm256_storeu_ps(ds, _mm256_cvtph_ps(loadu128(col)));
    if constexpr (F == 2) _mm256_storeu_ps(m, _mm256_cvtph_ps(loadu128(col + 16)));
    const uint8_t* q = col + 16 * F;
    if constexpr (kQ8) {
      for (int c = 0; c < 8; ++c)
        store32(w8 + c * jstride, _mm256_xor_si256(loadu256(q + 32 * c), _mm256_set1_epi8(char(0x80))));
    } else {
      for (int c = 0; c < 4; ++c) {
        const __m256i x = loadu256(q + 32 * c);
        store32(w8 + c * jstride, lo_nib(x));
        store32(w8 + (c + 4) * jstride, hi_nib(x));
      }
    }
  }
};
using DirectQ4_0X8 = DirectX8<UnpackQ4_0, BlockQ4_0, 1, false>;
using DirectQ4_1X8 = DirectX8<UnpackQ4_1, BlockQ4_1, 2, false>;
using DirectQ8_0X8 = DirectX8<UnpackQ8_0, BlockQ8_0, 1, true>;

// ---- repacking ----

// 16 rows of 32 bytes (row r at src + r*stride) -> 8 vectors, vector j = dword j of each row,
// stored at dst + j*dstride.
inline void transpose_16x8(const uint8_t* src, size_t stride, uint8_t* dst, size_t dstride) {
  __m512i z[8];
  for (int i = 0; i < 8; ++i)
    z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(src + i * stride)), loadu256(src + (i + 8) * stride), 1);
  const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  const __m512i t4 = _mm512_unpacklo_epi32(z[4], z[5]), t5 = _mm512_unpackhi_epi32(z[4], z[5]);
  const __m512i t6 = _mm512_unpacklo_epi32(z[6], z[7]), t7 = _mm512_unpackhi_epi32(z[6], z[7]);
  const __m512i u[8] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                        _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3),
                        _mm512_unpacklo_epi64(t4, t6), _mm512_unpackhi_epi64(t4, t6),
                        _mm512_unpacklo_epi64(t5, t7), _mm512_unpackhi_epi64(t5, t7)};
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int j = 0; j < 4; ++j) {
    _mm512_store_si512(dst + j * dstride, _mm512_permutex2var_epi64(u[j], lo, u[j + 4]));
    _mm512_store_si512(dst + (j + 4) * dstride, _mm512_permutex2var_epi64(u[j], hi, u[j + 4]));
  }
}

struct alignas(64) Packed {
  uint8_t w8[kChunk * 8 * 2 * 64];
  float ds[kChunk * 2 * 16];
  float m[kChunk * 2 * 16];
  uint8_t rows[16 * kChunk * 32];  // one tile's unpacked rows before the transpose
};

// Tile i of a DirectX8 format straight from its block columns, when both its groups of 8 rows are
// whole and aligned (or lie past the last row); false (nothing written) otherwise.
template <class U>
bool repack_direct(const uint8_t* w, size_t row_bytes, int64_t row, int nrows, int nt, int i, int64_t b0, int n,
                   Packed& pk) {
  const int r0 = 16 * i, st = nt * 16;
  if ((row + r0) % kX8Rows != 0) return false;
  for (int h = 0; h < 2; ++h)
    if (nrows - (r0 + 8 * h) > 0 && nrows - (r0 + 8 * h) < kX8Rows) return false;
  const size_t jstride = size_t(nt) * 64, bb = U::kBB;
  for (int h = 0; h < 2; ++h) {
    const int rr = r0 + 8 * h;
    const uint8_t* group = w + size_t(row + rr) * row_bytes;  // row + rr is a multiple of 8
    for (int k = 0; k < n; ++k) {
      uint8_t* w8 = pk.w8 + (size_t(k) * 8 * nt + size_t(i)) * 64 + 32 * h;
      float* ds = pk.ds + k * st + i * 16 + 8 * h;
      float* m = pk.m + k * st + i * 16 + 8 * h;
      if (rr < nrows) {
        U::direct_block(group + size_t(b0 + k) * kX8Rows * bb, w8, jstride, ds, m);
      } else {
        for (int j = 0; j < 8; ++j) store32(w8 + j * jstride, _mm256_setzero_si256());
        _mm256_storeu_ps(ds, _mm256_setzero_ps());
        _mm256_storeu_ps(m, _mm256_setzero_ps());
      }
    }
  }
  return true;
}

template <class U>
void repack(const uint8_t* w, size_t row_bytes, int64_t row, int nrows, int nt, int64_t b0, int n,
            Packed& pk) {
  const int st = nt * 16;
  for (int i = 0; i < nt; ++i) {
    if constexpr (requires { U::direct_block; }) {
      if (repack_direct<U>(w, row_bytes, row, nrows, nt, i, b0, n, pk)) continue;
    }
    for (int r = 0; r < 16; ++r) {
      const int rr = 16 * i + r;
      float* ds = pk.ds + i * 16 + r;
      float* m = pk.m + i * 16 + r;
      if constexpr (requires { U::kGroupRows; }) {
        constexpr int G = U::kGroupRows;
        if ((row + rr) % G == 0 && rr + G <= nrows && r + G <= 16) {
          U::run_group(w, row_bytes, row + rr, b0, n, pk.rows + r * kChunk * 32, kChunk * 32, ds, m, st);
          r += G - 1;
          continue;
        }
      }
      if (rr < nrows) {
        if constexpr (requires { U::kGroupRows; })
          U::run_row(w, row_bytes, row + rr, b0, n, pk.rows + r * kChunk * 32, ds, m, st);
        else
          U::run(w + size_t(row + rr) * row_bytes, b0, n, pk.rows + r * kChunk * 32, ds, m, st);
      } else {
        std::memset(pk.rows + r * kChunk * 32, 0, size_t(n) * 32);
        for (int k = 0; k < n; ++k) ds[k * st] = 0.0f, m[k * st] = 0.0f;
      }
    }
    for (int k = 0; k < n; ++k)
      transpose_16x8(pk.rows + 32 * k, kChunk * 32, pk.w8 + (k * 8 * nt + i) * 64, size_t(nt) * 64);
  }
}

// ---- the register tile ----

struct Acts {
  const QActs* a;
  const int32_t* corr;  // kOffset: (n_tok, nb) -offset * s;  kHalves: (n_tok, 2*nb) per half
  const float* das;     // kMin: (n_tok, nb) da * s
};

template <Kind K, int NT, int T>
void tile(const Packed& pk, int n, int64_t b0, const Acts& ac, int64_t t0, float* y, int64_t ldy,
          int64_t row, int nrows, bool first) {
  const QActs& a = *ac.a;
  const int64_t nb = a.nb();
  __mmask16 mk[NT];
  __m512 facc[NT][T];
  for (int i = 0; i < NT; ++i) {
    mk[i] = first_lanes(std::max(0, std::min(16, nrows - 16 * i)));
    for (int t = 0; t < T; ++t)
      facc[i][t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk[i], y + (t0 + t) * ldy + row + 16 * i);
  }
  const int8_t* aq[T];
  for (int t = 0; t < T; ++t) aq[t] = a.row_q(t0 + t) + b0 * 32;
  for (int k = 0; k < n; ++k) {
    const int64_t gb = b0 + k;
    constexpr int kPasses = K == Kind::kHalves ? 2 : 1;
#pragma GCC unroll 2
    for (int h = 0; h < kPasses; ++h) {
      __m512i acc[NT][T];
      for (int t = 0; t < T; ++t) {
        __m512i c = _mm512_setzero_si512();
        if constexpr (K == Kind::kOffset) c = _mm512_set1_epi32(ac.corr[(t0 + t) * nb + gb]);
        if constexpr (K == Kind::kHalves) c = _mm512_set1_epi32(ac.corr[(t0 + t) * 2 * nb + 2 * gb + h]);
        for (int i = 0; i < NT; ++i) acc[i][t] = c;
      }
      const uint8_t* wk = pk.w8 + size_t(k) * 8 * NT * 64;
      constexpr int kJ = 8 / kPasses;
#pragma GCC unroll 8
      for (int jj = 0; jj < kJ; ++jj) {
        const int j = h * kJ + jj;
        __m512i wv[NT];
        for (int i = 0; i < NT; ++i) wv[i] = _mm512_load_si512(wk + (j * NT + i) * 64);
        for (int t = 0; t < T; ++t) {
          int32_t x4;
          std::memcpy(&x4, aq[t] + 32 * k + 4 * j, 4);
          const __m512i x = _mm512_set1_epi32(x4);
          for (int i = 0; i < NT; ++i) acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], wv[i], x);
        }
      }
      const float* sc = (K == Kind::kHalves && h == 1 ? pk.m : pk.ds) + k * NT * 16;
      __m512 dsv[NT];
      for (int i = 0; i < NT; ++i) dsv[i] = _mm512_load_ps(sc + 16 * i);
      for (int t = 0; t < T; ++t) {
        const __m512 da = _mm512_set1_ps(a.row_d(t0 + t)[gb]);
        for (int i = 0; i < NT; ++i)
          facc[i][t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[i][t]), dsv[i]), da, facc[i][t]);
      }
    }
    if constexpr (K == Kind::kMin) {
      for (int t = 0; t < T; ++t) {
        const __m512 das = _mm512_set1_ps(ac.das[(t0 + t) * nb + gb]);
        for (int i = 0; i < NT; ++i)
          facc[i][t] = _mm512_fmadd_ps(_mm512_load_ps(pk.m + k * NT * 16 + 16 * i), das, facc[i][t]);
      }
    }
  }
  for (int i = 0; i < NT; ++i)
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * ldy + row + 16 * i, mk[i], facc[i][t]);
}

using TileFn = void (*)(const Packed&, int, int64_t, const Acts&, int64_t, float*, int64_t, int64_t, int, bool);

template <Kind K, int NT>
TileFn tile_for(int t) {
  switch (t) {
    case 1: return tile<K, NT, 1>;
    case 2: return tile<K, NT, 2>;
    case 3: return tile<K, NT, 3>;
    case 4: return tile<K, NT, 4>;
    case 5: return tile<K, NT, 5>;
    default: return tile<K, NT, 6>;
  }
}

struct Scratch {
  Packed pk;
  std::vector<int32_t> corr;
  std::vector<float> das;
};

template <class U>
void gemm(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  constexpr Kind K = U::kKind;
  thread_local Scratch s;
  const int64_t nb = a.nb(), n_tok = a.n_tok;
  Acts ac{&a, nullptr, nullptr};
  if constexpr (K == Kind::kOffset) {
    if (int64_t(s.corr.size()) < n_tok * nb) s.corr.resize(size_t(n_tok * nb));
    for (int64_t i = 0; i < n_tok * nb; ++i) s.corr[size_t(i)] = -U::kOffsetValue * a.s[i];
    ac.corr = s.corr.data();
  } else if constexpr (K == Kind::kMin) {
    if (int64_t(s.das.size()) < n_tok * nb) s.das.resize(size_t(n_tok * nb));
    for (int64_t i = 0; i < n_tok * nb; ++i) s.das[size_t(i)] = a.d[i] * float(a.s[i]);
    ac.das = s.das.data();
  } else {
    if (int64_t(s.corr.size()) < 2 * n_tok * nb) s.corr.resize(size_t(2 * n_tok * nb));
    for (int64_t h = 0; h < 2 * n_tok * nb; ++h) {
      const __m128i q = loadu128(a.q + 16 * h);
      const __m128i sum = _mm_sad_epu8(_mm_xor_si128(q, _mm_set1_epi8(char(0x80))), _mm_setzero_si128());
      // sum of (q + 128) over 16 bytes, minus 16 * 128
      const int32_t v = int32_t(_mm_cvtsi128_si32(sum) + _mm_extract_epi16(sum, 4)) - 2048;
      s.corr[size_t(h)] = -U::kOffsetValue * v;
    }
    ac.corr = s.corr.data();
  }
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  for (int64_t row = r0; row < r1; row += 32) {
    const int nrows = int(std::min<int64_t>(32, r1 - row));
    const int nt = nrows > 16 ? 2 : 1;
    for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
      const int n = int(std::min<int64_t>(kChunk, nb - b0));
      repack<U>(wb, row_bytes, row, nrows, nt, b0, n, s.pk);
      for (int64_t t0 = 0; t0 < n_tok; t0 += kMaxTok) {
        const int tt = int(std::min<int64_t>(kMaxTok, n_tok - t0));
        const TileFn f = nt == 2 ? tile_for<K, 2>(tt) : tile_for<K, 1>(tt);
        f(s.pk, n, b0, ac, t0, y, ldy, row, nrows, b0 == 0);
      }
    }
  }
}

}  // namespace

void prefill_gemm(DType t, const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy,
                  int64_t r0, int64_t r1) {
  switch (t) {
    case DType::Q8_0: return gemm<UnpackQ8_0>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q8_0_R8: return gemm<UnpackQ8_0R8>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q4_0: return gemm<UnpackQ4_0>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q4_1: return gemm<UnpackQ4_1>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q4_0_R8: return gemm<UnpackQ4_0R8>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q4_1_R8: return gemm<UnpackQ4_1R8>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q4_0_X8: return gemm<DirectQ4_0X8>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q4_1_X8: return gemm<DirectQ4_1X8>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q8_0_X8: return gemm<DirectQ8_0X8>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q5_0_X8: return gemm<FromX8<UnpackQ5_0, BlockQ5_0, 1, 1>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q5_1_X8: return gemm<FromX8<UnpackQ5_1, BlockQ5_1, 2, 1>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q4_K_X8: return gemm<FromX8<UnpackK45<false>, BlockQ4_K, 2, 8>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q5_K_X8: return gemm<FromX8<UnpackK45<true>, BlockQ5_K, 2, 8>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q6_K_X8: return gemm<FromX8<UnpackQ6_K, BlockQ6_K, 9, 8, true>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q5_0: return gemm<UnpackQ5_0>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q5_1: return gemm<UnpackQ5_1>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q4_K: return gemm<UnpackK45<false>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q5_K: return gemm<UnpackK45<true>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::Q6_K: return gemm<UnpackQ6_K>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::I8_ROW: return gemm<UnpackRow8<false>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::U8_ROW: return gemm<UnpackRow8<true>>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::I4_G64: return gemm<UnpackI4_G64>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::I4_G128: return gemm<UnpackI4_G128>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::U4_G64: return gemm<UnpackU4_G64>(w, row_bytes, a, y, ldy, r0, r1);
    case DType::U4_G128: return gemm<UnpackU4_G128>(w, row_bytes, a, y, ldy, r0, r1);
    default: return;
  }
}

}  // namespace edgeglm::kernels::avx512
