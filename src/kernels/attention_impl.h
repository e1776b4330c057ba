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

constexpr int64_t kAttentionMaxDims = 1024;  // the widest head blocked_attention takes

#include "kernels/f16_row_impl.h"

// The view of kv head `kv_head` alone: its slice of position j at data + j * row_bytes.
inline KvView head_view(const KvView& c, int64_t kv_head, int64_t head_dim) {
  const size_t stride = c.head_bytes ? c.head_bytes : dtype_row_bytes(c.type, head_dim);
  return {c.type, static_cast<const char*>(c.data) + size_t(kv_head) * stride, c.row_bytes, 0};
}

// Calls f(slice) with the slicer of c's cache type: slice(row, n, buf) gives the n elements of (a
// head view's) cache row `row` as floats, a pointer into the cache (F32) or into buf. A loop over
// rows inside f takes the type switch once and gets the conversion inlined (10-15% faster decode
// attention than a switch per row; docs/BENCHMARKS.md, session 12). always_inline: GCC 12 kept
// it out of line, and the row loop then read its captures from memory (3-4% slower).
template <class F>
[[gnu::always_inline]] inline decltype(auto) with_kv_slicer(const KvView& c, F&& f) {
  const char* base = static_cast<const char*>(c.data);  // by value: the row loop keeps them in registers
  const size_t row_bytes = c.row_bytes;
  auto row_at = [base, row_bytes](int64_t row) { return base + size_t(row) * row_bytes; };
  switch (c.type) {
    case DType::F32:
      return f([row_at](int64_t row, int64_t, float*) { return reinterpret_cast<const float*>(row_at(row)); });
    case DType::F16:
      return f([row_at](int64_t row, int64_t n, float* buf) {
        f16_to_f32_row(reinterpret_cast<const uint16_t*>(row_at(row)), buf, n);
        return static_cast<const float*>(buf);
      });
    default:  // Q8_0, n a multiple of 32
      return f([row_at](int64_t row, int64_t n, float* buf) {
        const quant::BlockQ8_0* b = reinterpret_cast<const quant::BlockQ8_0*>(row_at(row));
        for (int64_t k = 0; k < n / 32; ++k) {
          const float d = fp16_to_f32(b[k].d);
          for (int j = 0; j < 32; ++j) buf[32 * k + j] = d * float(b[k].qs[j]);
        }
        return static_cast<const float*>(buf);
      });
  }
}

// One row through with_kv_slicer (the portable attention's per-row use).
inline const float* kv_slice(const KvView& c, int64_t row, int64_t n, float* buf) {
  return with_kv_slicer(c, [&](auto slice) { return slice(row, n, buf); });
}

// Rows ahead of the one being converted whose slices are prefetched. Deep in a conversation the
// cache is read from memory and the conversion waited on each line (70% of a SmolLM2 decode's
// attention at 1024 positions, with the heads side by side in each row).
constexpr int64_t kKvPrefetchRows = 32;

// A prefetch of the line holding p into every cache level. In asm: GCC 12's dead-code elimination
// removed a loop of __builtin_prefetch calls over a row's lines (nothing of it was left in the
// object file).
inline void prefetch_line(const char* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*p));
#elif defined(__aarch64__)
  asm volatile("prfm pldl1keep, %0" : : "Q"(*p));
#else
  __builtin_prefetch(p, 0, 3);
#endif
}

// Prefetch the `bytes` bytes of (a head view's) cache row `row` (for reading soon).
inline void prefetch_kv(const KvView& c, int64_t row, size_t bytes) {
  const char* r = static_cast<const char*>(c.data) + size_t(row) * c.row_bytes;
  for (size_t b = 0; b < bytes; b += 64) prefetch_line(r + b);
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

// Softmax of one row of n scores in place. The maximum and the sum keep 8 partial results and the
// exponentials have a loop of their own, so the compiler vectorizes all three (one loop computing
// and summing them stays scalar: a float sum is not reordered without -ffast-math).
// Returns the row's maximum and the sum of exp(s - max) (attention_tokens' row_stats).
struct RowStats {
  float max, sum;
};
inline RowStats softmax_row(float* s, int64_t n) {
  float m8[8], a8[8] = {};
  for (float& m : m8) m = -INFINITY;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int i = 0; i < 8; ++i) m8[i] = s[j + i] > m8[i] ? s[j + i] : m8[i];
  float mx = std::max(std::max(std::max(m8[0], m8[1]), std::max(m8[2], m8[3])),
                      std::max(std::max(m8[4], m8[5]), std::max(m8[6], m8[7])));
  for (; j < n; ++j) mx = s[j] > mx ? s[j] : mx;
  for (j = 0; j < n; ++j) s[j] = fast_expf(s[j] - mx);
  for (j = 0; j + 8 <= n; j += 8)
    for (int i = 0; i < 8; ++i) a8[i] += s[j + i];
  float sum = ((a8[0] + a8[1]) + (a8[2] + a8[3])) + ((a8[4] + a8[5]) + (a8[6] + a8[7]));
  for (; j < n; ++j) sum += s[j];
  const float inv = 1.0f / sum;
  for (j = 0; j < n; ++j) s[j] *= inv;
  return {mx, sum};
}

// Ops::weigh_values<nv> for a run-time nv in [1, NV].
template <class Ops, int NV>
inline void weigh_vectors(int nv, const float* p, const float* const* rows, int64_t n, int64_t dim, float* o) {
  if constexpr (NV > 1) {
    if (nv < NV) return weigh_vectors<Ops, NV - 1>(nv, p, rows, n, dim, o);
  }
  Ops::template weigh_values<NV>(p, rows, n, dim, o);
}

// Scores of the nh rows of a vector of 8 (queries transposed in qt) against NK converted key rows
// kr: s[h * ld + i] = scale * q_h . kr[i].
template <class Ops, int NK>
inline void score_keys(const float* qt, const float* const* kr, int64_t hd, float scale, int nh, float* s,
                       int64_t ld) {
  alignas(32) float lanes[NK][8];
  Ops::template dot_heads<NK>(qt, kr, hd, lanes);
  for (int i = 0; i < NK; ++i)  // whole rows of lanes: one vector multiply each
    for (int h = 0; h < 8; ++h) lanes[i][h] *= scale;
  for (int h = 0; h < nh; ++h)
    for (int i = 0; i < NK; ++i) s[h * ld + i] = lanes[i][h];
}

// Scores of nr <= 3 rows (at qr[0..nr)) against keys [j0, j0 + m) converted in kr[0..m), through
// Ops::dot_rows<NR, NK>(qr, kr, hd, scale, s, ld): s[r * ld + i] = scale * q_r . kr[i] for NR rows
// and NK (4 or 1) keys, the dimensions in the lanes. For fewer rows than a vector has lanes, where
// the transposed queries would leave lanes idle (decode with groups of 1 to 4 heads).
template <class Ops, int NR>
inline void score_rows(const float* const* qr, const float* const* kr, int64_t m, int64_t hd, float scale, float* s,
                       int64_t ld) {
  int64_t j = 0;
  for (; j + 4 <= m; j += 4) Ops::template dot_rows<NR, 4>(qr, kr + j, hd, scale, s + j, ld);
  for (; j < m; ++j) Ops::template dot_rows<NR, 1>(qr, kr + j, hd, scale, s + j, ld);
}

// The blocked attention of the SIMD files (x86/attention_avx2.cpp, arm/attention_neon.cpp), for
// head dims that are whole multiples of 8 (the caller checks). Ops supplies the two inner kernels:
//   Ops::dot_heads<NK>(qt, kr, hd, lanes): lanes[i][h] = q_h . kr[i] for NK key rows kr (qt:
//     hd x 8, row h in lane h, unused lanes 0);
//   Ops::weigh_values<NV>(p, rows, n, dim, o): o[0, NV * Ops::kLanes) += sum over the n keys of
//     p[j] * (rows[j] + dim)[0, NV * Ops::kLanes), for NV vectors up to Ops::kDims / Ops::kLanes;
//   Ops::dot_rows<NR, NK> (score_rows), which scores groups of up to 4 heads instead of dot_heads.
// The query rows are the run's tokens x the group's heads (row r: token r / group, head r % group),
// transposed in vectors of 8 rows. Scores: each block of kAttentionKeyBlock key rows is converted
// once, then every vector of rows that sees any of them scores them, a key's element broadcast
// against the vector advancing 8 rows' scores, Ops::kKeys keys in flight. A vector's rows score the
// keys of its longest row; each row's softmax and sum take only its own (causal). Values: each
// block of rows converted once, then per query row Ops::kDims dimensions in registers over them.
template <class Ops>
void blocked_attention(const float* q, int64_t ldq, const KvView& kc, const KvView& vc, const int64_t* n_kv,
                       int64_t nt, int64_t kv_head, int64_t group, int64_t hd, float scale, float* out,
                       float* scratch, float* row_stats) {
  const KvView k = head_view(kc, kv_head, hd), v = head_view(vc, kv_head, hd);
  const int64_t rows = nt * group, vecs = (rows + 7) / 8;
  int64_t ld = 0;  // the longest row: score rows' stride
  for (int64_t i = 0; i < nt; ++i) ld = std::max(ld, n_kv[i]);
  float* scores = scratch;  // (rows, ld)
  float* qt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scores + rows * ld) + 31) & ~uintptr_t(31));
  float* buf = qt + vecs * 8 * hd;  // kAttentionKeyBlock converted rows
  const int64_t h0 = kv_head * group;
  const size_t slice_bytes = dtype_row_bytes(k.type, hd);
  auto row_at = [&](int64_t r) { return (r / group) * ldq + (h0 + r % group) * hd; };
  auto row_n = [&](int64_t r) { return n_kv[r / group]; };
  // Groups of up to 4 heads: rows in chunks of at most 3 (4 = 2 + 2), the dimensions in the lanes.
  // By group, not by row count, so that a token's scores are the same whichever run it is in.
  const bool by_rows = group <= 4;
  for (int64_t c = 0; !by_rows && c < vecs; ++c) {
    float* t = qt + c * 8 * hd;
    for (int h = 0; h < 8; ++h) {
      const int64_t r = 8 * c + h;
      const float* qr = r < rows ? q + row_at(r) : nullptr;
      for (int64_t d = 0; d < hd; ++d) t[8 * d + h] = qr ? qr[d] : 0.0f;
    }
  }
  const float* kr[kAttentionKeyBlock];
  // Rows [j0, j0 + nb) of c as floats in kr, the rows kKvPrefetchRows ahead prefetched; the cache
  // type is decided once per block.
  auto convert_block = [&](const KvView& c, int64_t j0, int64_t nb) {
    with_kv_slicer(c, [&](auto slice) {
      for (int64_t i = 0; i < nb; ++i) {
        if (j0 + i + kKvPrefetchRows < ld) prefetch_kv(c, j0 + i + kKvPrefetchRows, slice_bytes);
        kr[i] = slice(j0 + i, hd, buf + i * hd);
      }
    });
  };
  for (int64_t j0 = 0; j0 < ld; j0 += kAttentionKeyBlock) {  // pass 1: scores
    const int64_t nb = std::min(kAttentionKeyBlock, ld - j0);
    convert_block(k, j0, nb);
    for (int64_t r0 = 0; by_rows && r0 < rows;) {
      const int nr = int(rows - r0 == 4 ? 2 : std::min<int64_t>(3, rows - r0));
      const float* qr[3];
      int64_t n = 0;
      for (int i = 0; i < nr; ++i) qr[i] = q + row_at(r0 + i), n = std::max(n, row_n(r0 + i));
      const int64_t m = std::min(nb, n - j0);
      float* s = scores + r0 * ld + j0;
      if (nr == 1) score_rows<Ops, 1>(qr, kr, m, hd, scale, s, ld);
      if (nr == 2) score_rows<Ops, 2>(qr, kr, m, hd, scale, s, ld);
      if (nr == 3) score_rows<Ops, 3>(qr, kr, m, hd, scale, s, ld);
      r0 += nr;
    }
    for (int64_t c = 0; !by_rows && c < vecs; ++c) {
      const int nh = int(std::min<int64_t>(8, rows - 8 * c));
      int64_t n = 0;
      for (int h = 0; h < nh; ++h) n = std::max(n, row_n(8 * c + h));
      const int64_t m = std::min(nb, n - j0);
      const float* t = qt + c * 8 * hd;
      float* s = scores + 8 * c * ld + j0;
      int64_t j = 0;
      for (; j + Ops::kKeys <= m; j += Ops::kKeys)
        score_keys<Ops, int(Ops::kKeys)>(t, kr + j, hd, scale, nh, s + j, ld);
      for (; j < m; ++j) score_keys<Ops, 1>(t, kr + j, hd, scale, nh, s + j, ld);
    }
  }
  for (int64_t i = 0; i < std::min(kKvPrefetchRows, ld); ++i) prefetch_kv(v, i, slice_bytes);  // over the softmax
  for (int64_t r = 0; r < rows; ++r) {
    const RowStats st = softmax_row(scores + r * ld, row_n(r));
    if (row_stats) row_stats[2 * r] = st.max, row_stats[2 * r + 1] = st.sum;
    std::fill_n(out + row_at(r), hd, 0.0f);
  }
  for (int64_t j0 = 0; j0 < ld; j0 += kAttentionKeyBlock) {  // pass 2: values
    const int64_t nb = std::min(kAttentionKeyBlock, ld - j0);
    convert_block(v, j0, nb);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = std::min(nb, row_n(r) - j0);
      if (n <= 0) continue;
      float* o = out + row_at(r);
      for (int64_t d = 0; d < hd; d += Ops::kDims)
        weigh_vectors<Ops, int(Ops::kDims / Ops::kLanes)>(int(std::min<int64_t>(Ops::kDims, hd - d) / Ops::kLanes),
                                                          scores + r * ld + j0, kr, n, d, o + d);
    }
  }
}

// Whether blocked_attention takes this shape (else the portable code below).
inline bool blocked_attention_fits(int64_t head_dim) { return head_dim % 8 == 0 && head_dim <= kAttentionMaxDims; }

// One token of the portable attention (the scalar twin, and the SIMD files' fallback).
inline void portable_attention(const float* q, const KvView& kc, const KvView& vc, int64_t n_kv, int64_t kv_head,
                               int64_t group, int64_t head_dim, float scale, float* out, float* scratch,
                               float* row_stats) {
  const KvView k = head_view(kc, kv_head, head_dim), v = head_view(vc, kv_head, head_dim);
  float* scores = scratch;              // (group, n_kv)
  float* row = scratch + group * n_kv;  // one decoded head slice
  const int64_t h0 = kv_head * group;
  // Pass 1: every key row is read (and decoded) once for all query heads of the group.
  for (int64_t j = 0; j < n_kv; ++j) {
    const float* kj = kv_slice(k, j, head_dim, row);
    for (int64_t g = 0; g < group; ++g)
      scores[g * n_kv + j] = dot(q + (h0 + g) * head_dim, kj, head_dim) * scale;
  }
  for (int64_t g = 0; g < group; ++g) {
    const RowStats st = softmax_row(scores + g * n_kv, n_kv);
    if (row_stats) row_stats[2 * g] = st.max, row_stats[2 * g + 1] = st.sum;
    std::fill_n(out + (h0 + g) * head_dim, head_dim, 0.0f);
  }
  // Pass 2: every value row once, accumulated into each head's output with its weight.
  for (int64_t j = 0; j < n_kv; ++j) {
    const float* vj = kv_slice(v, j, head_dim, row);
    for (int64_t g = 0; g < group; ++g) {
      const float p = scores[g * n_kv + j];
      float* o = out + (h0 + g) * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) o[d] += p * vj[d];
    }
  }
}

}  // namespace

// An ISA file with an attention of its own names this one EG_ATTENTION_PORTABLE (its fallback).
#ifndef EG_ATTENTION_PORTABLE
#define EG_ATTENTION_PORTABLE attention_tokens
#endif
void EG_ATTENTION_PORTABLE(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                           int64_t nt, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                           float* scratch, float* row_stats) {
  for (int64_t i = 0; i < nt; ++i)
    portable_attention(q + i * ldq, k, v, n_kv[i], kv_head, group, head_dim, scale, out + i * ldq, scratch,
                       row_stats ? row_stats + 2 * group * i : nullptr);
}

#ifdef EG_ATTENTION_BLOCKED
// The SIMD files' attention_tokens: blocked_attention where the shape fits, else the portable code.
template <class Ops>
void attention_tokens_with(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                           int64_t nt, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                           float* scratch, float* row_stats) {
  if (!blocked_attention_fits(head_dim))
    return EG_ATTENTION_PORTABLE(q, ldq, k, v, n_kv, nt, kv_head, group, head_dim, scale, out, scratch, row_stats);
  blocked_attention<Ops>(q, ldq, k, v, n_kv, nt, kv_head, group, head_dim, scale, out, scratch, row_stats);
}
#endif

void silu_mul(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + fast_expf(-g[i])) * u[i];
}

}  // namespace edgeglm::kernels::EG_KERNEL_NS
