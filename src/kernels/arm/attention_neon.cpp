// ARMv8.0-A Advanced SIMD attention (Cortex-A72 and up; the "neon" and "dotprod" tables both use
// it): blocked_attention (attention_impl.h) with 8 query rows in two registers, 8 keys per score step
// (16 accumulators of the 32 registers) and 32 dimensions (8 registers) per value step. Head dims
// not a multiple of 8 take the portable code. Checked against a double-precision reference under
// qemu (test_matmul); its speed on a board is not measured yet.
#include <arm_neon.h>

#define EG_KERNEL_NS neon
#define EG_ATTENTION_PORTABLE attention_tokens_portable
#define EG_ATTENTION_BLOCKED
#include "kernels/attention_impl.h"

namespace edgeglm::kernels::neon {
namespace {

struct NeonOps {
  static constexpr int64_t kLanes = 4, kKeys = 8, kDims = 32;
  // lanes[i][h] = q_h . kr[i] (qt: head_dim x 8, head h in lane h; heads 0..3 and 4..7 apart).
  template <int NK>
  static void dot_heads(const float* qt, const float* const* kr, int64_t hd, float (*lanes)[8]) {
    float32x4_t lo[NK], hi[NK];
    for (int i = 0; i < NK; ++i) lo[i] = vdupq_n_f32(0.0f), hi[i] = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < hd; ++d) {
      const float32x4_t q0 = vld1q_f32(qt + 8 * d), q1 = vld1q_f32(qt + 8 * d + 4);
      for (int i = 0; i < NK; ++i) {
        const float kd = kr[i][d];
        lo[i] = vfmaq_n_f32(lo[i], q0, kd);
        hi[i] = vfmaq_n_f32(hi[i], q1, kd);
      }
    }
    for (int i = 0; i < NK; ++i) vst1q_f32(lanes[i], lo[i]), vst1q_f32(lanes[i] + 4, hi[i]);
  }

  // s[r * ld + i] = scale * q_r . kr[i] for NR rows qr and NK keys kr (NK 4 or 1): 4 dimensions per
  // vector, NR x NK accumulators, each reduced by vaddvq.
  template <int NR, int NK>
  static void dot_rows(const float* const* qr, const float* const* kr, int64_t hd, float scale, float* s,
                       int64_t ld) {
    float32x4_t acc[NR][NK];
    for (int r = 0; r < NR; ++r)
      for (int i = 0; i < NK; ++i) acc[r][i] = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < hd; d += 4) {
      float32x4_t kv[NK];
      for (int i = 0; i < NK; ++i) kv[i] = vld1q_f32(kr[i] + d);
      for (int r = 0; r < NR; ++r) {
        const float32x4_t qv = vld1q_f32(qr[r] + d);
        for (int i = 0; i < NK; ++i) acc[r][i] = vfmaq_f32(acc[r][i], qv, kv[i]);
      }
    }
    for (int r = 0; r < NR; ++r)
      for (int i = 0; i < NK; ++i) s[r * ld + i] = vaddvq_f32(acc[r][i]) * scale;
  }

  // o[0, 4 * NV) += sum over keys j of p[j] * v_j[0, 4 * NV) (v_j = rows[j] + dim).
  template <int NV>
  static void weigh_values(const float* p, const float* const* rows, int64_t n, int64_t dim, float* o) {
    float32x4_t acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = vld1q_f32(o + 4 * v);
    for (int64_t j = 0; j < n; ++j) {
      const float pj = p[j];
      const float* r = rows[j] + dim;
      for (int v = 0; v < NV; ++v) acc[v] = vfmaq_n_f32(acc[v], vld1q_f32(r + 4 * v), pj);
    }
    for (int v = 0; v < NV; ++v) vst1q_f32(o + 4 * v, acc[v]);
  }
};

}  // namespace

void attention_tokens(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                      int64_t nt, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                      float* scratch, float* row_stats) {
  attention_tokens_with<NeonOps>(q, ldq, k, v, n_kv, nt, kv_head, group, head_dim, scale, out, scratch, row_stats);
}

}  // namespace edgeglm::kernels::neon
