// ARMv8.2-A integer kernels (table "dotprod"): SDOT adds four int8 products into each int32 lane.
#include <arm_neon.h>

namespace edgeglm::kernels::dotprod {
namespace {

inline int32x4_t dot16(int8x16_t w, int8x16_t a) { return vdotq_s32(vdupq_n_s32(0), w, a); }
inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
  return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, a0), w1, a1);
}
inline int32x4_t dot32_small(int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
  return dot32(w0, w1, a0, a1);
}

}  // namespace
}  // namespace edgeglm::kernels::dotprod

#define EG_KERNEL_NS dotprod
#include "kernels/arm/qgemm_arm_impl.h"
