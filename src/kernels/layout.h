// Run-time weight layouts: a matrix of a file format rearranged once at load time so a kernel
// table reads it faster. The bytes are the file format's, in another order; the tensor's size is
// unchanged. Models ask the active table which layout it prefers (preferred_layout) and convert
// with to_runtime_layout; every table computes every layout (tables without a kernel of their own
// get the file form of each row from runtime_row), so forcing a lower ISA after load stays correct.
//
// Each layout keeps rows in groups of G (rows % G == 0) and cuts every row into units of U bytes;
// unit p of row i of a group sits at byte (G * p + i) * U of the group, which occupies the bytes
// its rows occupy row-major. A decode step over the G rows then reads the group as one sequential
// stream where row-major rows are G streams (from DRAM 15-30% faster on AMD Zen 5, more with huge
// pages; docs/BENCHMARKS.md):
//   Q8_0_R8 (DType::Q8_0_R8): Q8_0, G = 8, a unit is a pair of blocks (68 bytes; blocks per row even)
//   F16_R4  (DType::F16_R4):  F16,  G = 4, a unit is 32 values (64 bytes; cols % 32 == 0)
//   Q4_0_R8 / Q4_1_R8:        Q4_0 / Q4_1, G = 8, a unit is 4 blocks (72 / 80 bytes; cols % 128 == 0)
//
// The X8 layouts go further: block column b of a group of 8 rows (8 blocks, 8 * block_bytes bytes at
// b * 8 * block_bytes of the group) holds the 8 rows' 2-byte fields first, field f of row k at
// 16f + 2k (Q4_0, Q5_0, Q8_0: d; Q4_1, Q5_1: d, m; Q4_K, Q5_K: d, dmin; Q6_K: its 16 int8 scales as 8
// pairs, then d), then the rest of the block interleaved by 4 bytes: its bytes 4c..4c+3 of row k at
// 16F + 32c + 4k (F fields; c = 0..3, Q5_x: 0..4 over qh then qs, Q8_0: 0..7; Q6_K: 0..47 over ql then
// qh; Q4_K: 0..34 over the 12 packed scale bytes then qs, Q5_K: 0..42 over scales, qh, qs). One
// 32-byte load then holds 4 bytes of each of the 8 rows, so a kernel keeps row k in lane k and
// converts, scales and adds once per block for all 8 rows:
//   Q4_0_X8 / Q4_1_X8 / Q5_0_X8 / Q5_1_X8 / Q8_0_X8: G = 8, any number of blocks (cols % 32 == 0)
//   Q4_K_X8 / Q5_K_X8 / Q6_K_X8:  Q4_K / Q5_K / Q6_K, G = 8, any number of super-blocks (cols % 256 == 0)
#pragma once
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace edgeglm::kernels {

constexpr int kQ8R8Rows = 8;   // Q8_0_R8: rows per group
constexpr int kF16R4Rows = 4;  // F16_R4: rows per group
constexpr int kF16R4Unit = 64; // F16_R4: bytes of one row's 32 values
constexpr int kQ4R8Rows = 8;   // Q4_0_R8 / Q4_1_R8: rows per group (a unit is 4 blocks)
constexpr int kX8Rows = 8;     // the X8 layouts: rows per group
constexpr int kLayoutRowsLcm = 8;  // every layout's group size divides this

// Rows [r0, r1) split for a layout of groups of G: [r0, begin) and [end, r1) lie outside whole
// groups (kernels take them one by one in their file form), [begin, end) is whole groups.
// (Anonymous namespace: ISA files share no inline symbols, docs/ARCHITECTURE.md.)
namespace {
struct GroupSpan {
  int64_t begin, end;
};
inline GroupSpan whole_groups(int64_t r0, int64_t r1, int64_t G) {
  const int64_t begin = std::min(r1, (r0 + G - 1) / G * G);
  return {begin, std::max(begin, r1 / G * G)};
}
}  // namespace

bool is_runtime_layout(DType t);
// The file format a layout rearranges (Q8_0 for Q8_0_R8, ...); t itself for file formats.
DType file_dtype(DType t);
// The layout the active kernel table computes fastest for a (rows, cols) matrix of type t: the first
// that table computes itself, else the first a lower table (not generic) computes; t when none
// applies (also in float-activation mode, and when EDGEGLM_WEIGHT_LAYOUT=file). EDGEGLM_WEIGHT_LAYOUT=
// q8_0_r8,q4_0_x8,... restricts the choice to the layouts named (to measure one against another).
DType preferred_layout(DType t, int64_t rows, int64_t cols);
// dst (rows * row_bytes bytes, not overlapping src) = the matrix src of file_dtype(layout) in
// `layout`. The shape must be one preferred_layout accepted for it.
void to_runtime_layout(DType layout, const void* src, void* dst, int64_t rows, size_t row_bytes);
// out (row_bytes) = row r of w in its file format.
void runtime_row(DType layout, const void* w, size_t row_bytes, int64_t r, void* out);
// Row r of a matrix of type t in its file format: a pointer into w for file formats, else the row
// copied into buf (grown to row_bytes).
const uint8_t* file_form_row(DType t, const void* w, size_t row_bytes, int64_t r, std::vector<uint8_t>& buf);

}  // namespace edgeglm::kernels
