// ARMv8.0-A Advanced SIMD attention (Cortex-A72 and up; the "neon" and "dotprod" tables both use
// it): blocked_attention (attention_impl.h) with 8 heads in two registers, 8 keys per score step
// (16 accumulators of the 32 registers) and 32 dimensions (8 registers) per value step. Head dims
// not a multiple of 8 take the portable code. Checked against a double-precision reference under
// qemu (test_matmul); its speed on a board is not measured yet.
#include <arm_neon.h>

#define EG_KERNEL_NS neon
#define EG_ATTENTION_PORTABLE attention_group_portable
#define EG_ATTENTION_BLOCKED
#include "kernels/attention_impl.h"

namespace edgeglm::kernels::neon {
namespace {

struct NeonOps {
  static constexpr int64_t kLanes = 4, kKeys = 8, kDims = 32;
  template <int NK>
  static void score_keys(const float* qt, const KvView& k, int64_t j0, int64_t off, int64_t hd, float scale,
                         int nh, float* kbuf, float* s, int64_t ld) {
    const float* kr[NK];
    for (int i = 0; i < NK; ++i) kr[i] = kv_slice(k, j0 + i, off, hd, kbuf + i * hd);
    float32x4_t lo[NK], hi[NK];  // heads 0..3 and 4..7
    for (int i = 0; i < NK; ++i) lo[i] = vdupq_n_f32(0.0f), hi[i] = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < hd; ++d) {
      const float32x4_t q0 = vld1q_f32(qt + 8 * d), q1 = vld1q_f32(qt + 8 * d + 4);
      for (int i = 0; i < NK; ++i) {
        const float kd = kr[i][d];
        lo[i] = vfmaq_n_f32(lo[i], q0, kd);
        hi[i] = vfmaq_n_f32(hi[i], q1, kd);
      }
    }
    float lanes[NK][8];
    for (int i = 0; i < NK; ++i) {
      vst1q_f32(lanes[i], vmulq_n_f32(lo[i], scale));
      vst1q_f32(lanes[i] + 4, vmulq_n_f32(hi[i], scale));
    }
    for (int h = 0; h < nh; ++h)
      for (int i = 0; i < NK; ++i) s[h * ld + j0 + i] = lanes[i][h];
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

void attention_group(const float* q, const KvView& k, const KvView& v, int64_t n_kv, int64_t kv_head,
                     int64_t group, int64_t head_dim, float scale, float* out, float* scratch) {
  attention_group_with<NeonOps>(q, k, v, n_kv, kv_head, group, head_dim, scale, out, scratch);
}

}  // namespace edgeglm::kernels::neon
