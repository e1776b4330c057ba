// ARMv8.2-A build (dotprod + fp16; Cortex-A76, RK3588) of the float kernels and the "dotprod"
// table, selected only when HWCAP reports ASIMDDP. Arithmetic stays fp32: F16 weights are widened
// exactly as in the neon build, so results match it within float summation order.
// Integer kernels in qgemm_dotprod.cpp.
#define EG_KERNEL_NS dotprod
#include "kernels/arm/matmul_arm_impl.h"

namespace edgeglm::kernels::dotprod {

void quantize_acts(const float* x, int64_t n, int8_t* q, float* d, int32_t* s);  // qgemm_dotprod.cpp

const KernelTable& table() {
  static const KernelTable t = {"dotprod", format, quantize_acts, dot_f32};
  return t;
}

}  // namespace edgeglm::kernels::dotprod
