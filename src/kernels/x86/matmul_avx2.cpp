// AVX2 + FMA + F16C build of the float kernels, plus the integer kernels and activation quantizer
// of x86/qgemm_avx2.cpp (compiled with those flags; selected at run time only on CPUs that report
// them).
#define EG_KERNEL_NS avx2
#include "kernels/matmul_impl.h"
#include "kernels/x86/qgemm_avx2.h"

namespace edgeglm::kernels::avx2 {

FormatKernels format(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return {nullptr, gemm_f};
    default: return {gemm_q_for(t), nullptr};  // integer formats (x86/qgemm_avx2.cpp), else none
  }
}

const KernelTable& table() {
  static const KernelTable t = {"avx2", format, quantize_acts, dot_f32};
  return t;
}

}  // namespace edgeglm::kernels::avx2
