// AVX2 + FMA + F16C attention: blocked_attention (attention_impl.h) with 8 query rows in one register,
// 8 keys per score step and 64 dimensions (8 registers) per value step, and dot_rows for groups of
// 1-4 heads (dimensions in the lanes). The portable code computed each score as a dot product with
// its own horizontal sum and kept the outputs in memory: about 4 GMAC/s. One thread, head dim 64,
// f16 cache: a 1024-token prompt in runs of tokens 24-26 GMAC/s, one token over 1024 positions
// 12.5 (group 3) to 19.7 (group 8) (docs/BENCHMARKS.md, "Prompt attention across tokens"). Head
// dims not a multiple of 8 take the portable code. Results differ from it only in rounding
// (summation order); test_matmul checks every table against a double-precision reference.
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

  // s[r * ld + i] = scale * q_r . kr[i] for NR rows qr and NK keys kr (NK 4 or 1): 8 dimensions per
  // vector, NR x NK accumulators (3 x 4 and the 4 keys fill the 16 registers; the queries are
  // memory operands), 4 keys' sums reduced together by three vhaddps.
  template <int NR, int NK>
  static void dot_rows(const float* const* qr, const float* const* kr, int64_t hd, float scale, float* s,
                       int64_t ld) {
    __m256 acc[NR][NK];
    for (int r = 0; r < NR; ++r)
      for (int i = 0; i < NK; ++i) acc[r][i] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 8) {
      __m256 kv[NK];
      for (int i = 0; i < NK; ++i) kv[i] = _mm256_loadu_ps(kr[i] + d);
      for (int r = 0; r < NR; ++r) {
        const __m256 qv = _mm256_loadu_ps(qr[r] + d);
        for (int i = 0; i < NK; ++i) acc[r][i] = _mm256_fmadd_ps(qv, kv[i], acc[r][i]);
      }
    }
    for (int r = 0; r < NR; ++r) {
      if constexpr (NK == 4) {
        // hadd(hadd(a0, a1), hadd(a2, a3)): each 128-bit half holds the 4 keys' sums of its half.
        const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(acc[r][0], acc[r][1]), _mm256_hadd_ps(acc[r][2], acc[r][3]));
        const __m128 v = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
        _mm_storeu_ps(s + r * ld, _mm_mul_ps(v, _mm_set1_ps(scale)));
      } else {
        for (int i = 0; i < NK; ++i) {  // the same additions as a key of 4 (batch-invariant scores)
          const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(acc[r][i], acc[r][i]), _mm256_hadd_ps(acc[r][i], acc[r][i]));
          const __m128 v = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
          s[r * ld + i] = _mm_cvtss_f32(_mm_mul_ss(v, _mm_set_ss(scale)));
        }
      }
    }
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
                      float* scratch, float* row_stats) {
  attention_tokens_with<Avx2Ops>(q, ldq, k, v, n_kv, nt, kv_head, group, head_dim, scale, out, scratch, row_stats);
}

}  // namespace edgeglm::kernels::avx2
