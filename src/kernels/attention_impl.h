// Attention over a typed KV cache and silu(g)*u, compiled once per ISA like matmul_impl.h (EG_KERNEL_NS): the
// generic build is the scalar twin; the x86 AVX2 build converts f16 rows with F16C; on aarch64
// the baseline build converts with NEON (part of ARMv8.0).
// Not a public header: include only from an ISA translation unit.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/kernels.h"
#include "kernels/vec_math.h"
#include "quant/blocks.h"

#if defined(__F16C__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#ifndef EG_KERNEL_NS
#error "define EG_KERNEL_NS before including attention_impl.h"
#endif

namespace edgeglm::kernels::EG_KERNEL_NS {
namespace {

constexpr int64_t kAttentionMaxDims = 1024;  // blocked_attention's transposed queries (32 KiB)

#include "kernels/f16_row_impl.h"

// Elements [off, off + n) of cache row `row` as floats: a pointer into the cache (F32) or into buf.
inline const float* kv_slice(const KvView& c, int64_t row, int64_t off, int64_t n, float* buf) {
  const char* r = static_cast<const char*>(c.data) + size_t(row) * c.row_bytes;
  switch (c.type) {
    case DType::F32: return reinterpret_cast<const float*>(r) + off;
    case DType::F16:
      f16_to_f32_row(reinterpret_cast<const uint16_t*>(r) + off, buf, n);
      return buf;
    default: {  // Q8_0, off and n multiples of 32
      const quant::BlockQ8_0* b = reinterpret_cast<const quant::BlockQ8_0*>(r) + off / 32;
      for (int64_t k = 0; k < n / 32; ++k) {
        const float d = fp16_to_f32(b[k].d);
        for (int j = 0; j < 32; ++j) buf[32 * k + j] = d * float(b[k].qs[j]);
      }
      return buf;
    }
  }
}

inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Softmax of each of the group's score rows (n_kv each) in place, and their outputs (head_dim
// floats each, from `outs`) zeroed for the weighted sum.
inline void softmax_heads(float* scores, int64_t group, int64_t n_kv, float* outs, int64_t head_dim) {
  for (int64_t g = 0; g < group; ++g) {
    float* s = scores + g * n_kv;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n_kv; ++j) mx = s[j] > mx ? s[j] : mx;
    float sum = 0.0f;
    for (int64_t j = 0; j < n_kv; ++j) sum += s[j] = fast_expf(s[j] - mx);
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n_kv; ++j) s[j] *= inv;
    float* o = outs + g * head_dim;
    for (int64_t d = 0; d < head_dim; ++d) o[d] = 0.0f;
  }
}

// Ops::weigh_values<nv> for a run-time nv in [1, NV].
template <class Ops, int NV>
inline void weigh_vectors(int nv, const float* p, const float* const* rows, int64_t n, int64_t dim, float* o) {
  if constexpr (NV > 1) {
    if (nv < NV) return weigh_vectors<Ops, NV - 1>(nv, p, rows, n, dim, o);
  }
  Ops::template weigh_values<NV>(p, rows, n, dim, o);
}

// The blocked attention of the SIMD files (x86/attention_avx2.cpp, arm/attention_neon.cpp), for
// head dims that are whole multiples of 8 (the caller checks). Ops supplies the two inner kernels:
//   Ops::dot_heads<NK>(qt, kr, hd, lanes): lanes[i][h] = q_h . kr[i] for NK key rows kr (qt:
//     hd x 8, head h in lane h, other lanes 0);
//   Ops::weigh_values<NV>(p, rows, n, dim, o): o[0, NV * Ops::kLanes) += sum over the n keys of
//     p[j] * (rows[j] + dim)[0, NV * Ops::kLanes), for NV vectors up to Ops::kDims / Ops::kLanes.
// Scores: the queries transposed, so a key's element broadcast against one vector advances every
// head's score, and Ops::kKeys keys at a time keep that many accumulators in flight. Values:
// kAttentionKeyBlock rows converted once, then per head Ops::kDims dimensions in registers over them.
// Scores of heads [0, nh) against keys [j0, j0 + NK): s[h * ld + j] = scale * q_h . k_j (rows
// converted into kbuf).
template <class Ops, int NK>
inline void score_keys(const float* qt, const KvView& k, int64_t j0, int64_t off, int64_t hd, float scale, int nh,
                       float* kbuf, float* s, int64_t ld) {
  const float* kr[NK];
  for (int i = 0; i < NK; ++i) kr[i] = kv_slice(k, j0 + i, off, hd, kbuf + i * hd);
  alignas(32) float lanes[NK][8];
  Ops::template dot_heads<NK>(qt, kr, hd, lanes);
  for (int i = 0; i < NK; ++i)  // whole rows of lanes: one vector multiply each
    for (int h = 0; h < 8; ++h) lanes[i][h] *= scale;
  for (int h = 0; h < nh; ++h)
    for (int i = 0; i < NK; ++i) s[h * ld + j0 + i] = lanes[i][h];
}

template <class Ops>
void blocked_attention(const float* q, const KvView& k, const KvView& v, int64_t n_kv, int64_t kv_head,
                       int64_t group, int64_t hd, float scale, float* out, float* scratch) {
  float* scores = scratch;                 // (group, n_kv)
  float* rowbuf = scratch + group * n_kv;  // kAttentionKeyBlock converted rows
  const int64_t h0 = kv_head * group, off = kv_head * hd;
  alignas(32) float qt[kAttentionMaxDims * 8];
  for (int64_t c0 = 0; c0 < group; c0 += 8) {  // pass 1, 8 heads at a time
    const int nh = int(std::min<int64_t>(8, group - c0));
    for (int64_t d = 0; d < hd; ++d)
      for (int h = 0; h < 8; ++h) qt[8 * d + h] = h < nh ? q[(h0 + c0 + h) * hd + d] : 0.0f;
    float* s = scores + c0 * n_kv;
    int64_t j = 0;
    for (; j + Ops::kKeys <= n_kv; j += Ops::kKeys)
      score_keys<Ops, int(Ops::kKeys)>(qt, k, j, off, hd, scale, nh, rowbuf, s, n_kv);
    for (; j < n_kv; ++j) score_keys<Ops, 1>(qt, k, j, off, hd, scale, nh, rowbuf, s, n_kv);
  }
  softmax_heads(scores, group, n_kv, out + h0 * hd, hd);
  const float* rows[kAttentionKeyBlock];
  for (int64_t j0 = 0; j0 < n_kv; j0 += kAttentionKeyBlock) {  // pass 2, a block of value rows
    const int64_t n = std::min(kAttentionKeyBlock, n_kv - j0);
    for (int64_t i = 0; i < n; ++i) rows[i] = kv_slice(v, j0 + i, off, hd, rowbuf + i * hd);
    for (int64_t g = 0; g < group; ++g)
      for (int64_t d = 0; d < hd; d += Ops::kDims)
        weigh_vectors<Ops, int(Ops::kDims / Ops::kLanes)>(int(std::min<int64_t>(Ops::kDims, hd - d) / Ops::kLanes),
                                                          scores + g * n_kv + j0, rows, n, d, out + (h0 + g) * hd + d);
  }
}

// Whether blocked_attention takes this shape (else the portable code below).
inline bool blocked_attention_fits(int64_t head_dim, int64_t n_kv) {
  return head_dim % 8 == 0 && head_dim <= kAttentionMaxDims && n_kv >= 1;
}

}  // namespace

// An ISA file with an attention of its own names this one EG_ATTENTION_PORTABLE (its fallback).
#ifndef EG_ATTENTION_PORTABLE
#define EG_ATTENTION_PORTABLE attention_group
#endif
void EG_ATTENTION_PORTABLE(const float* q, const KvView& k, const KvView& v, int64_t n_kv,
                           int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                           float* scratch) {
  float* scores = scratch;                 // (group, n_kv)
  float* row = scratch + group * n_kv;     // one decoded head slice
  const int64_t h0 = kv_head * group;
  const int64_t off = kv_head * head_dim;
  // Pass 1: every key row is read (and decoded) once for all query heads of the group.
  for (int64_t j = 0; j < n_kv; ++j) {
    const float* kj = kv_slice(k, j, off, head_dim, row);
    for (int64_t g = 0; g < group; ++g)
      scores[g * n_kv + j] = dot(q + (h0 + g) * head_dim, kj, head_dim) * scale;
  }
  softmax_heads(scores, group, n_kv, out + h0 * head_dim, head_dim);
  // Pass 2: every value row once, accumulated into each head's output with its weight.
  for (int64_t j = 0; j < n_kv; ++j) {
    const float* vj = kv_slice(v, j, off, head_dim, row);
    for (int64_t g = 0; g < group; ++g) {
      const float p = scores[g * n_kv + j];
      float* o = out + (h0 + g) * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) o[d] += p * vj[d];
    }
  }
}

#ifdef EG_ATTENTION_BLOCKED
// The SIMD files' attention_group: blocked_attention where the shape fits, else the portable code.
template <class Ops>
void attention_group_with(const float* q, const KvView& k, const KvView& v, int64_t n_kv, int64_t kv_head,
                          int64_t group, int64_t head_dim, float scale, float* out, float* scratch) {
  if (!blocked_attention_fits(head_dim, n_kv))
    return EG_ATTENTION_PORTABLE(q, k, v, n_kv, kv_head, group, head_dim, scale, out, scratch);
  blocked_attention<Ops>(q, k, v, n_kv, kv_head, group, head_dim, scale, out, scratch);
}
#endif

void silu_mul(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + fast_expf(-g[i])) * u[i];
}

}  // namespace edgeglm::kernels::EG_KERNEL_NS
