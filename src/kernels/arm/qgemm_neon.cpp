// ARMv8.0-A integer kernels (table "neon"): int8 dot products from widening multiplies, SMULL /
// SMLAL2 into int16 lanes and SADALP/SADDLP into int32 -- no SDOT on a Cortex-A72.
#include <arm_neon.h>

namespace edgeglm::kernels::neon {
namespace {

// |w| <= 128, |a| <= 127: two products per int16 lane cannot overflow (2 * 128 * 127 < 32768).
inline int32x4_t dot16(int8x16_t w, int8x16_t a) {
  return vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(a)), w, a));
}
inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
  const int16x8_t p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(a0)), w0, a0);
  const int16x8_t p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w1), vget_low_s8(a1)), w1, a1);
  return vpadalq_s16(vpaddlq_s16(p0), p1);
}
// |w| <= 32: four products per int16 lane stay below 4 * 32 * 127 = 16256.
inline int32x4_t dot32_small(int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
  int16x8_t p = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
  p = vmlal_high_s8(p, w0, a0);
  p = vmlal_s8(p, vget_low_s8(w1), vget_low_s8(a1));
  p = vmlal_high_s8(p, w1, a1);
  return vpaddlq_s16(p);
}

}  // namespace
}  // namespace edgeglm::kernels::neon

#define EG_KERNEL_NS neon
#include "kernels/arm/qgemm_arm_impl.h"
