// AVX2 + FMA + F16C attention: blocked_attention (attention_impl.h) with 8 query rows in one register,
// 8 keys per score step and 64 dimensions (8 registers) per value step. The portable code computed
// each score as a dot product with its own horizontal sum and kept the outputs in memory: about 4
// GMAC/s, 3% of a tinyllama decode step at 32 positions and most of a 1024-token prefill; this runs
// at 10-19 GMAC/s (docs/BENCHMARKS.md). Head dims not a multiple of 8 take the portable code.
// Results differ from it only in rounding (summation order); test_matmul checks every table
// against a double-precision reference.
#include <immintrin.h>

#define EG_KERNEL_NS avx2
#define EG_ATTENTION_PORTABLE attention_tokens_portable
#define EG_ATTENTION_BLOCKED
#include "kernels/attention_impl.h"

namespace edgeglm::kernels::avx2 {
namespace {

// blocked_attention's inner kernels (attention_impl.h) in AVX2 + FMA.
struct Avx2Ops {
  static constexpr int64_t kLanes = 8, kKeys = 8, kDims = 64;
  // lanes[i][h] = q_h . kr[i] (qt: head_dim x 8, head h in lane h).
  template <int NK>
  static void dot_heads(const float* qt, const float* const* kr, int64_t hd, float (*lanes)[8]) {
    __m256 acc[NK];
    for (int i = 0; i < NK; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) {
      const __m256 qv = _mm256_load_ps(qt + 8 * d);
      for (int i = 0; i < NK; ++i) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(kr[i] + d), qv, acc[i]);
    }
    for (int i = 0; i < NK; ++i) _mm256_store_ps(lanes[i], acc[i]);
  }

  // o[0, 8 * NV) += sum over keys j of p[j] * v_j[0, 8 * NV) (v_j = rows[j] + dim).
  template <int NV>
  static void weigh_values(const float* p, const float* const* rows, int64_t n, int64_t dim, float* o) {
    __m256 acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = _mm256_loadu_ps(o + 8 * v);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 pj = _mm256_broadcast_ss(p + j);
      const float* r = rows[j] + dim;
      for (int v = 0; v < NV; ++v) acc[v] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(r + 8 * v), acc[v]);
    }
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(o + 8 * v, acc[v]);
  }
};

}  // namespace

void attention_tokens(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                      int64_t nt, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                      float* scratch) {
  attention_tokens_with<Avx2Ops>(q, ldq, k, v, n_kv, nt, kv_head, group, head_dim, scale, out, scratch);
}

}  // namespace edgeglm::kernels::avx2
