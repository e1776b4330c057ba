// Run-time kernel selection: every ISA build of the kernels compiled into the binary registers a
// table; the best one the CPU supports is chosen once, at first use. EDGEGLM_ISA=<name> in the
// environment (or force_isa) selects a lower one, for testing and comparison.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace edgeglm::kernels {

struct KernelTable {
  const char* name;  // "generic", "avx2"
  void (*matmul)(const TensorView& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool);
  float (*dot_f32)(const float* a, const float* b, int64_t n);
};

// Tables compiled in and usable on this CPU, best last.
std::vector<const KernelTable*> available_isas();
const KernelTable& active_isa();
Status force_isa(std::string_view name);  // error names the choices

}  // namespace edgeglm::kernels
