#include <atomic>
#include <cstdlib>
#include <string>

#include "core/log.h"
#include "core/sys_info.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"

namespace edgeglm::kernels {

#define EG_DECLARE_ISA(ns)                                                                   \
  namespace ns {                                                                             \
  void matmul(const TensorView& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool); \
  float dot_f32(const float* a, const float* b, int64_t n);                                  \
  }
EG_DECLARE_ISA(generic)
#if defined(EDGEGLM_HAVE_X86_AVX2)
EG_DECLARE_ISA(avx2)
#endif

namespace {

const KernelTable kGeneric = {"generic", generic::matmul, generic::dot_f32};
#if defined(EDGEGLM_HAVE_X86_AVX2)
const KernelTable kAvx2 = {"avx2", avx2::matmul, avx2::dot_f32};
#endif

std::atomic<const KernelTable*> g_active{nullptr};

const KernelTable* choose() {
  auto all = available_isas();
  const KernelTable* best = all.back();
  if (const char* env = std::getenv("EDGEGLM_ISA")) {
    for (const KernelTable* t : all)
      if (std::string(env) == t->name) return t;
    log_warn(std::string("EDGEGLM_ISA=") + env + " is not available here; using " + best->name);
  }
  return best;
}

}  // namespace

std::vector<const KernelTable*> available_isas() {
  std::vector<const KernelTable*> v = {&kGeneric};
#if defined(EDGEGLM_HAVE_X86_AVX2)
  const CpuFeatures& c = cpu_features();
  if (c.avx2 && c.fma && c.f16c) v.push_back(&kAvx2);
#endif
  return v;
}

const KernelTable& active_isa() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (!t) {
    t = choose();
    g_active.store(t, std::memory_order_release);
  }
  return *t;
}

Status force_isa(std::string_view name) {
  std::string names;
  for (const KernelTable* t : available_isas()) {
    if (name == t->name) {
      g_active.store(t, std::memory_order_release);
      return Status::ok();
    }
    names += std::string(names.empty() ? "" : ", ") + t->name;
  }
  return Status::error("kernel ISA '" + std::string(name) + "' is not available (have: " + names + ")");
}

void matmul(const TensorView& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  active_isa().matmul(w, x, n_tok, y, pool);
}

float dot_f32(const float* a, const float* b, int64_t n) { return active_isa().dot_f32(a, b, n); }

}  // namespace edgeglm::kernels
