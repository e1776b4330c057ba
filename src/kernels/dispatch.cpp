// Kernel tables, their selection, and the matmul entry points that share work across the pool.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/sys_info.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"

namespace edgeglm::kernels {

// Each ISA build defines its table in its own directory (compiled with its own flags).
namespace generic {
void silu_mul(float* g, const float* u, int64_t n);
void attention_tokens(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                      int64_t nt, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                      float* scratch, float* row_stats);
FormatKernels format(DType t);
float dot_f32(const float* a, const float* b, int64_t n);
}  // namespace generic
#define EG_DECLARE_ISA(ns) \
  namespace ns {           \
  const KernelTable& table(); \
  }
#if defined(EDGEGLM_HAVE_X86_AVX2)
EG_DECLARE_ISA(avx2)
namespace avx2 {
void silu_mul(float* g, const float* u, int64_t n);
void attention_tokens(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                      int64_t nt, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                      float* scratch, float* row_stats);
}
#endif
#if defined(EDGEGLM_HAVE_X86_AVX512)
EG_DECLARE_ISA(avx512)
#endif
#if defined(EDGEGLM_HAVE_ARM_NEON)
EG_DECLARE_ISA(neon)
namespace neon {
void attention_tokens(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                      int64_t nt, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                      float* scratch, float* row_stats);
}
#endif
#if defined(EDGEGLM_HAVE_ARM_DOTPROD)
EG_DECLARE_ISA(dotprod)
#endif

namespace {

const KernelTable kGeneric = {"generic", generic::format, quantize_acts_ref, generic::dot_f32};

std::atomic<const KernelTable*> g_active{nullptr};
std::atomic<int> g_float_acts{-1};  // -1: not read from the environment yet

bool float_acts() {
  int v = g_float_acts.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* env = std::getenv("EDGEGLM_FLOAT_ACTS");
    v = env && env[0] == '1' ? 1 : 0;
    g_float_acts.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}


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
  [[maybe_unused]] const CpuFeatures& c = cpu_features();
#if defined(EDGEGLM_HAVE_X86_AVX2)
  if (c.avx2 && c.fma && c.f16c) v.push_back(&avx2::table());
#endif
#if defined(EDGEGLM_HAVE_X86_AVX512)
  if (c.avx2 && c.fma && c.f16c && c.avx512f && c.avx512bw && c.avx512vl && c.avx512vnni)
    v.push_back(&avx512::table());
#endif
#if defined(EDGEGLM_HAVE_ARM_NEON)
  v.push_back(&neon::table());  // Advanced SIMD is part of ARMv8-A
#endif
#if defined(EDGEGLM_HAVE_ARM_DOTPROD)
  if (c.dotprod) v.push_back(&dotprod::table());
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

void set_float_activations(bool on) { g_float_acts.store(on ? 1 : 0, std::memory_order_relaxed); }
bool float_activations() { return float_acts(); }

ResolvedFormat resolve_format(const KernelTable& table, DType t) {
  const auto all = available_isas();
  // From `table` down to generic: the first table that implements t.
  auto it = std::find(all.begin(), all.end(), &table);
  if (it == all.end()) return {};
  for (;; --it) {
    const FormatKernels k = (*it)->format(t);
    if (k.q || k.f) return {k, (*it)->name};
    if (it == all.begin()) return {};
  }
}

QuantizeActs resolve_quantize_acts(const KernelTable& table) {
  const auto all = available_isas();
  auto it = std::find(all.begin(), all.end(), &table);
  if (it == all.end()) return quantize_acts_ref;
  for (;; --it) {
    if ((*it)->quantize_acts) return (*it)->quantize_acts;
    if (it == all.begin()) return quantize_acts_ref;
  }
}

namespace {

// Below this many multiply-adds a thread's share is not worth waking it for.
constexpr int64_t kMinMacsPerThread = 128 * 1024;

// What one matmul of a group needs at run time, its rows numbered after the previous ones'.
struct Segment {
  FormatKernels k;
  DType dtype;
  const void* w;
  size_t row_bytes;
  float* y;
  int64_t n_out;
  int64_t first;  // index of its first row among all rows of the group
};

// Kernels per format for the active table and activation mode, cached per calling thread so a
// decode step does not walk the tables for every matmul (GGUF type ids below 32 and edgeglm's own
// ids 1024..1055 and the run-time layouts 4096..4103 are cached).
struct Resolver {
  static constexpr int kSlots = 72;
  const KernelTable* table = nullptr;
  bool float_mode = false;
  FormatKernels cache[kSlots];
  bool cached[kSlots] = {};
  QuantizeActs quantize = nullptr;
  static int slot(DType t) {
    const uint32_t id = uint32_t(t);
    if (id < 32) return int(id);
    if (id >= 1024 && id < 1024 + 32) return int(32 + id - 1024);
    if (id >= 4096 && id < 4096 + 8) return int(64 + id - 4096);
    return -1;
  }
  FormatKernels get(DType t) {
    const KernelTable& active = active_isa();
    const bool fm = float_acts();
    if (table != &active || fm != float_mode) {
      table = &active;
      float_mode = fm;
      std::fill(std::begin(cached), std::end(cached), false);
      quantize = resolve_quantize_acts(active);
    }
    const int k = slot(t);
    if (k < 0) return resolve(active, t);
    if (!cached[k]) {
      cache[k] = resolve(active, t);
      cached[k] = true;
    }
    return cache[k];
  }
  FormatKernels resolve(const KernelTable& active, DType t) const {
    FormatKernels k = resolve_format(active, t).k;
    // Float-activation mode: integer formats go through the float kernel (weights decoded).
    if (float_mode && k.q) k = {nullptr, resolve_format(active, DType::F16).k.f};
    return k;
  }
};

}  // namespace

void matmul_group(const TensorView* const* ws, float* const* ys, int n_w, const float* x,
                  int64_t n_tok, ThreadPool& pool) {
  thread_local Resolver resolver;
  thread_local std::vector<uint64_t> qbuf;  // quantized activations, grown on first use
  Segment seg[8];
  if (n_w < 1 || n_w > 8) {
    log_error("matmul_group: 1..8 matrices per group");
    std::abort();
  }
  const int64_t n_in = ws[0]->ne[0];
  int64_t rows = 0;
  bool any_q = false;
  for (int i = 0; i < n_w; ++i) {
    const TensorView& w = *ws[i];
    seg[i] = {resolver.get(w.dtype), w.dtype, w.data, w.nb[1], ys[i], w.ne[1], rows};
    if (!seg[i].k.q && !seg[i].k.f) {
      log_error(std::string("no kernel computes tensors of type ") + dtype_name(w.dtype));
      std::abort();
    }
    any_q = any_q || seg[i].k.q;
    rows += w.ne[1];
  }

  QActs acts;
  if (any_q) {
    const size_t bytes = qacts_bytes(n_in, n_tok);
    if (qbuf.size() * sizeof(uint64_t) < bytes) qbuf.resize((bytes + 7) / 8 + 8);
    // 64-byte alignment of the sections
    void* base = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(qbuf.data()) + 63) & ~uintptr_t(63));
    acts = qacts_view(base, n_in, n_tok);
    const QuantizeActs quantize = resolver.quantize;
    auto quantize_rows = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        quantize(x + t * n_in, n_in, acts.q + t * n_in, acts.d + t * acts.nb(), acts.s + t * acts.nb());
    };
    if (n_tok == 1) {
      quantize_rows(0, 1);
    } else {
      pool.parallel_for(n_tok, quantize_rows, /*grain=*/std::max<int64_t>(1, 8192 / n_in));
    }
  }

  auto run_rows = [&](int64_t g0, int64_t g1) {
    for (int i = 0; i < n_w; ++i) {
      const Segment& s = seg[i];
      const int64_t r0 = std::max(g0, s.first) - s.first;
      const int64_t r1 = std::min(g1, s.first + s.n_out) - s.first;
      if (r0 >= r1) continue;
      if (s.k.q) {
        s.k.q(s.w, s.row_bytes, acts, s.y, s.n_out, r0, r1);
      } else {
        s.k.f(s.dtype, s.w, s.row_bytes, x, n_in, n_tok, s.y, s.n_out, r0, r1);
      }
    }
  };

  const int64_t macs = rows * n_in * n_tok;
  const int nth = pool.size();
  if (nth == 1 || macs < 2 * kMinMacsPerThread) {
    run_rows(0, rows);
    return;
  }
  // Each thread streams a contiguous share of the rows and, when done, takes 16-row pieces from
  // the end of the others' (ThreadPool::parallel_for_stealing), so a thread that the OS or a noisy
  // neighbour delays does not hold the others up. Pieces are multiples of 16 rows (kernels tile
  // rows by up to 16) and never below the useful minimum of work. Against pieces of a quarter of
  // a thread's share from one counter, which start a new weight stream at every piece, decode was
  // within noise (docs/BENCHMARKS.md, "Decode prefetches restored, faster attention, one weight
  // stream per thread"); a delayed thread's tail is now 16 rows, not 1/8 of the matrix.
  const int64_t min_rows = std::max<int64_t>(1, kMinMacsPerThread / (n_in * n_tok));
  const int64_t grain = (min_rows + 15) / 16 * 16;
  pool.parallel_for_stealing(rows, /*step=*/std::max(grain, rows / (8 * nth)), grain, run_rows);
}

void matmul(const TensorView& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const TensorView* ws[1] = {&w};
  float* ys[1] = {y};
  matmul_group(ws, ys, 1, x, n_tok, pool);
}

float dot_f32(const float* a, const float* b, int64_t n) { return active_isa().dot_f32(a, b, n); }

void attention_tokens(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                      int64_t nt, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                      float* scratch, float* row_stats) {
#if defined(EDGEGLM_HAVE_X86_AVX2)
  // Every x86 table above generic implies AVX2 + FMA + F16C.
  if (&active_isa() != &kGeneric)
    return avx2::attention_tokens(q, ldq, k, v, n_kv, nt, kv_head, group, head_dim, scale, out, scratch, row_stats);
#endif
#if defined(EDGEGLM_HAVE_ARM_NEON)
  // Every aarch64 table above generic (neon, dotprod) has ARMv8.0 Advanced SIMD.
  if (&active_isa() != &kGeneric)
    return neon::attention_tokens(q, ldq, k, v, n_kv, nt, kv_head, group, head_dim, scale, out, scratch, row_stats);
#endif
  generic::attention_tokens(q, ldq, k, v, n_kv, nt, kv_head, group, head_dim, scale, out, scratch, row_stats);
}

void merge_attention_parts(const float* parts, int64_t part_stride, const float* stats, int64_t stats_stride,
                           int64_t n_parts, int64_t rows, int64_t head_dim, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    float mx = -INFINITY;
    for (int64_t p = 0; p < n_parts; ++p) mx = std::max(mx, stats[p * stats_stride + 2 * r]);
    float wsum = 0.0f;
    float* o = out + r * head_dim;
    for (int64_t d = 0; d < head_dim; ++d) o[d] = 0.0f;
    for (int64_t p = 0; p < n_parts; ++p) {
      const float w = stats[p * stats_stride + 2 * r + 1] * std::exp(stats[p * stats_stride + 2 * r] - mx);
      wsum += w;
      const float* src = parts + p * part_stride + r * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) o[d] += w * src[d];
    }
    const float inv = 1.0f / wsum;
    for (int64_t d = 0; d < head_dim; ++d) o[d] *= inv;
  }
}

void silu_mul(float* g, const float* u, int64_t n) {
#if defined(EDGEGLM_HAVE_X86_AVX2)
  if (&active_isa() != &kGeneric) return avx2::silu_mul(g, u, n);
#endif
  generic::silu_mul(g, u, n);
}

}  // namespace edgeglm::kernels
