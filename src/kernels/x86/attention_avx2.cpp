// AVX2 + FMA + F16C build of attention (f16 cache rows converted with vcvtph2ps).
#define EG_KERNEL_NS avx2
#include "kernels/attention_impl.h"
