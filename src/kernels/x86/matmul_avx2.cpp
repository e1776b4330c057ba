// AVX2 + FMA + F16C build of the matmul kernels (compiled with those flags; selected at run time
// only on CPUs that report them).
#define EG_KERNEL_NS avx2
#include "kernels/matmul_impl.h"
