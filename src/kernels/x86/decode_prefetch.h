// Software prefetch distance of the x86 decode kernels (avx2 and avx512 tables), which stream each
// weight row once with a few rows in flight. The hardware prefetchers alone left decode at ~55%
// of the streaming-read bandwidth. The rows of one step are adjacent in memory, so a fixed
// distance along a short row (a 576..2048-wide matrix has 0.3-4 KiB rows) lands in the next row of
// the same step, which is already being read; when the step's rows are at most kPrefetchGroupMax
// bytes together, the distance is the group itself, so every load prefetches the same place in
// the rows that come next. Longer rows prefetch kPrefetchAlongRow bytes ahead within the row.
// Measured with bench/micro/qgemm_bench.cpp (docs/BENCHMARKS.md, "Decode kernels on AMD Zen").
// Anonymous namespace: ISA files share no inline symbols (docs/ARCHITECTURE.md).
#pragma once
#include <cstddef>
#include <cstdint>

namespace edgeglm::kernels {
namespace {

constexpr int64_t kPrefetchAlongRow = 1024;
// Kernels that read one sequential stream (the Q8_0_R8 groups of kernels/layout.h) prefetch this
// far ahead of it (2, 4 and 8 KiB measured within noise of each other; 4 KiB chosen).
constexpr int64_t kPrefetchSequential = 4096;
constexpr int64_t kPrefetchGroupMax = 65536;

inline int64_t decode_prefetch_distance(size_t row_bytes, int rows) {
  const int64_t group = int64_t(row_bytes) * rows;
  if (group > kPrefetchGroupMax) return kPrefetchAlongRow;
  return group > kPrefetchAlongRow ? group : kPrefetchAlongRow;
}

}  // namespace
}  // namespace edgeglm::kernels
