// ARMv8.0-A Advanced SIMD build of the float kernels and the "neon" table (Cortex-A72, Raspberry
// Pi 4). Always usable on AArch64; integer kernels in qgemm_neon.cpp.
#define EG_KERNEL_NS neon
#include "kernels/arm/matmul_arm_impl.h"

namespace edgeglm::kernels::neon {

void quantize_acts(const float* x, int64_t n, int8_t* q, float* d, int32_t* s);  // qgemm_neon.cpp

const KernelTable& table() {
  static const KernelTable t = {"neon", format, quantize_acts, dot_f32};
  return t;
}

}  // namespace edgeglm::kernels::neon
