// AVX2 + FMA + F16C build of the float kernels (compiled with those flags; selected at run time
// only on CPUs that report them).
#define EG_KERNEL_NS avx2
#include "kernels/matmul_impl.h"

namespace edgeglm::kernels::avx2 {

FormatKernels format(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return {nullptr, gemm_f};
    default: return {};
  }
}

const KernelTable& table() {
  static const KernelTable t = {"avx2", format, nullptr, dot_f32};
  return t;
}

}  // namespace edgeglm::kernels::avx2
