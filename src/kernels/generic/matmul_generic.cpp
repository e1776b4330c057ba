// Baseline build of the float kernels (any x86-64 / ARMv8): the scalar twin of every ISA variant.
#define EG_KERNEL_NS generic
#include "kernels/matmul_impl.h"
