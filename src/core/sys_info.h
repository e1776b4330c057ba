// Process and CPU facts: peak resident memory, CPU features (for kernel dispatch and `info`).
#pragma once
#include <cstddef>
#include <string>

namespace edgeglm {

size_t current_rss_bytes();
size_t peak_rss_bytes();

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool neon = false, dotprod = false, fp16_arith = false, i8mm = false;
};
const CpuFeatures& cpu_features();
std::string cpu_features_string();

}  // namespace edgeglm
