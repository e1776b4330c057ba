// AVX2 + FMA + F16C attention. The portable code (attention_impl.h, f16 rows converted with
// vcvtph2ps) computed each score as a dot product with its own horizontal sum and kept the
// outputs in memory: about 4 GMAC/s, 3% of a tinyllama decode step at 32 positions and most of a
// 1024-token prefill. Here, for up to 8 query heads at a time:
// - scores: the heads' queries transposed (dimension-major, head h in lane h), so a key's element
//   broadcast times one vector advances all heads' scores; 8 keys at a time keep 8 independent
//   accumulators (one per key) in flight;
// - values: kAttentionKeyBlock rows converted once, then per head and 64 dimensions the output in
//   8 registers over the whole block.
// Head dims not a multiple of 8 take the portable code. Results differ from it only in rounding
// (summation order); test_matmul checks every table against a double-precision reference.
#include <immintrin.h>

#define EG_KERNEL_NS avx2
#define EG_ATTENTION_PORTABLE attention_group_portable
#include "kernels/attention_impl.h"

namespace edgeglm::kernels::avx2 {
namespace {

constexpr int64_t kKeys = 8;  // keys per score step

// Scores of heads [0, nh) (nh <= 8; qt: head_dim x 8, head h in lane h, other lanes 0) against
// keys [j0, j0 + NK): s[h * ld + j] = scale * q_h . k_j.
template <int NK>
inline void score_keys(const float* qt, const KvView& k, int64_t j0, int64_t off, int64_t hd, float scale,
                       int nh, float* kbuf, float* s, int64_t ld) {
  const float* kr[NK];
  for (int i = 0; i < NK; ++i) kr[i] = kv_slice(k, j0 + i, off, hd, kbuf + i * hd);
  __m256 acc[NK];
  for (int i = 0; i < NK; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t d = 0; d < hd; ++d) {
    const __m256 qv = _mm256_load_ps(qt + 8 * d);
    for (int i = 0; i < NK; ++i) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(kr[i] + d), qv, acc[i]);
  }
  alignas(32) float lanes[NK][8];
  const __m256 sc = _mm256_set1_ps(scale);
  for (int i = 0; i < NK; ++i) _mm256_store_ps(lanes[i], _mm256_mul_ps(acc[i], sc));
  for (int h = 0; h < nh; ++h)
    for (int i = 0; i < NK; ++i) s[h * ld + j0 + i] = lanes[i][h];
}

// o[0, 8 * NV) += sum over keys j of p[j] * v_j[0, 8 * NV) (v_j = rows[j] + dim).
template <int NV>
inline void weigh_values(const float* p, const float* const* rows, int64_t n, int64_t dim, float* o) {
  __m256 acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = _mm256_loadu_ps(o + 8 * v);
  for (int64_t j = 0; j < n; ++j) {
    const __m256 pj = _mm256_broadcast_ss(p + j);
    const float* r = rows[j] + dim;
    for (int v = 0; v < NV; ++v) acc[v] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(r + 8 * v), acc[v]);
  }
  for (int v = 0; v < NV; ++v) _mm256_storeu_ps(o + 8 * v, acc[v]);
}

void weigh_chunk(int nv, const float* p, const float* const* rows, int64_t n, int64_t dim, float* o) {
  switch (nv) {
    case 8: return weigh_values<8>(p, rows, n, dim, o);
    case 7: return weigh_values<7>(p, rows, n, dim, o);
    case 6: return weigh_values<6>(p, rows, n, dim, o);
    case 5: return weigh_values<5>(p, rows, n, dim, o);
    case 4: return weigh_values<4>(p, rows, n, dim, o);
    case 3: return weigh_values<3>(p, rows, n, dim, o);
    case 2: return weigh_values<2>(p, rows, n, dim, o);
    default: return weigh_values<1>(p, rows, n, dim, o);
  }
}

}  // namespace

void attention_group(const float* q, const KvView& k, const KvView& v, int64_t n_kv, int64_t kv_head,
                     int64_t group, int64_t head_dim, float scale, float* out, float* scratch) {
  const int64_t hd = head_dim;
  if (hd % 8 != 0 || hd > 1024 || n_kv < 1)
    return attention_group_portable(q, k, v, n_kv, kv_head, group, head_dim, scale, out, scratch);
  float* scores = scratch;              // (group, n_kv)
  float* rowbuf = scratch + group * n_kv;  // kAttentionKeyBlock converted rows
  const int64_t h0 = kv_head * group, off = kv_head * hd;
  alignas(32) float qt[1024 * 8];
  for (int64_t c0 = 0; c0 < group; c0 += 8) {  // pass 1, 8 heads at a time
    const int nh = int(std::min<int64_t>(8, group - c0));
    for (int64_t d = 0; d < hd; ++d)
      for (int h = 0; h < 8; ++h) qt[8 * d + h] = h < nh ? q[(h0 + c0 + h) * hd + d] : 0.0f;
    float* s = scores + c0 * n_kv;
    int64_t j = 0;
    for (; j + kKeys <= n_kv; j += kKeys) score_keys<kKeys>(qt, k, j, off, hd, scale, nh, rowbuf, s, n_kv);
    for (; j < n_kv; ++j) score_keys<1>(qt, k, j, off, hd, scale, nh, rowbuf, s, n_kv);
  }
  softmax_heads(scores, group, n_kv, out + h0 * hd, hd);
  const float* rows[kAttentionKeyBlock];
  for (int64_t j0 = 0; j0 < n_kv; j0 += kAttentionKeyBlock) {  // pass 2, a block of value rows
    const int64_t n = std::min(kAttentionKeyBlock, n_kv - j0);
    for (int64_t i = 0; i < n; ++i) rows[i] = kv_slice(v, j0 + i, off, hd, rowbuf + i * hd);
    for (int64_t g = 0; g < group; ++g)
      for (int64_t d = 0; d < hd; d += 64)
        weigh_chunk(int(std::min<int64_t>(8, (hd - d) / 8)), scores + g * n_kv + j0, rows, n, d,
                    out + (h0 + g) * hd + d);
  }
}

}  // namespace edgeglm::kernels::avx2
