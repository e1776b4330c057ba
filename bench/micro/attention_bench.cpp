// Microbenchmark of one decode step's attention (kernels::attention_group) for one ISA table: one
// token's query heads against n_kv cached positions of 4 kv heads, the cache head-major as the
// engine keeps it (f16, or f32 with a 5th argument "32"). Thread CPU time, best of 30 rounds of 20
// steps -> microseconds per (token, layer) and GMAC/s (scores + values).
// Build (not part of the CMake tree):
//   g++ -std=c++20 -O2 -Isrc bench/micro/attention_bench.cpp build/src/kernels/libedgeglm_kernels.a
//       build/src/quant/libedgeglm_quant.a build/src/core/libedgeglm_core.a -lpthread
// Usage: attention_bench ISA N_KV GROUP HEAD_DIM [32]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string_view>
#include <vector>

#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

using namespace edgeglm;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s ISA N_KV GROUP HEAD_DIM [32]\n", argv[0]);
    return 2;
  }
  if (!kernels::force_isa(argv[1]).is_ok()) {
    std::fprintf(stderr, "unknown or unavailable ISA %s\n", argv[1]);
    return 2;
  }
  const int64_t n_kv = std::atoll(argv[2]), group = std::atoll(argv[3]), hd = std::atoll(argv[4]);
  const int64_t n_kv_heads = 4, kv_dim = n_kv_heads * hd;
  if (n_kv < 1 || group < 1 || hd < 1) return 2;
  const DType ct = argc > 5 && std::string_view(argv[5]) == "32" ? DType::F32 : DType::F16;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> q(size_t(n_kv_heads * group * hd)), out(q.size()), kf(size_t(n_kv * kv_dim));
  for (auto& x : q) x = nd(rng);
  for (auto& x : kf) x = nd(rng);
  const size_t sb = dtype_row_bytes(ct, hd), head_bytes = sb * size_t(n_kv);  // one head's slice; its rows
  std::vector<uint8_t> kc(head_bytes * size_t(n_kv_heads)), vc(kc.size());
  for (int64_t g = 0; g < n_kv_heads; ++g)
    for (int64_t j = 0; j < n_kv; ++j) {
      quant::quantize_row(ct, kf.data() + j * kv_dim + g * hd, kc.data() + g * head_bytes + j * sb, hd);
      quant::quantize_row(ct, kf.data() + j * kv_dim + g * hd, vc.data() + g * head_bytes + j * sb, hd);
    }
  std::vector<float> scratch(size_t(kernels::attention_scratch_floats(n_kv, group, hd)));
  const kernels::KvView kv{ct, kc.data(), sb, head_bytes}, vv{ct, vc.data(), sb, head_bytes};
  auto cpu = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  double best = 1e9;
  for (int r = 0; r < 30; ++r) {
    const double t0 = cpu();
    for (int it = 0; it < 20; ++it)
      for (int64_t g = 0; g < n_kv_heads; ++g)
        kernels::attention_group(q.data(), kv, vv, n_kv, g, group, hd, 0.125f, out.data(), scratch.data());
    best = std::min(best, (cpu() - t0) / 20);
  }
  const double macs = 2.0 * double(n_kv * group * hd * n_kv_heads);
  std::printf("%s %s n_kv %lld group %lld hd %lld: %.1f us/token-layer, %.1f GMAC/s\n", argv[1], dtype_name(ct),
              (long long)n_kv, (long long)group, (long long)hd, best * 1e6, macs / best / 1e9);
}
