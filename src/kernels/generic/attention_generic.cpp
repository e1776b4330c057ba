// Baseline build of attention: the scalar twin (on aarch64 it already converts f16 with NEON).
#define EG_KERNEL_NS generic
#include "kernels/attention_impl.h"
