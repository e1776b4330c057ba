#include "kernels/layout.h"

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "kernels/isa.h"

namespace edgeglm::kernels {

bool is_runtime_layout(DType t) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr && tr->runtime_layout;
}

DType file_dtype(DType t) { return t == DType::Q8_0_R8 ? DType::Q8_0 : t; }

namespace {

// A table "prefers" a layout when it has a kernel of its own for it (not the generic row copy).
bool table_computes(DType layout) {
  const ResolvedFormat r = resolve_format(active_isa(), layout);
  return r.k.q && r.isa && std::string_view(r.isa) != "generic";
}

bool layouts_enabled() {
  const char* v = std::getenv("EDGEGLM_WEIGHT_LAYOUT");
  return !(v && std::string_view(v) == "file");
}

}  // namespace

DType preferred_layout(DType t, int64_t rows, int64_t cols) {
  if (t != DType::Q8_0 || float_activations() || !layouts_enabled()) return t;
  if (rows <= 0 || rows % kQ8R8Rows != 0 || cols <= 0 || cols % 64 != 0) return t;
  return table_computes(DType::Q8_0_R8) ? DType::Q8_0_R8 : t;
}

void to_runtime_layout(DType layout, const void* src, void* dst, int64_t rows, size_t row_bytes) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  uint8_t* d = static_cast<uint8_t*>(dst);
  if (layout != DType::Q8_0_R8) {
    std::memcpy(d, s, size_t(rows) * row_bytes);
    return;
  }
  const int64_t nb = int64_t(row_bytes / 34);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; b += 2)
      std::memcpy(d + q8r8_block_offset(row_bytes, r, b), s + size_t(r) * row_bytes + size_t(b) * 34, kQ8R8Unit);
}

void runtime_row(DType layout, const void* w, size_t row_bytes, int64_t r, void* out) {
  const uint8_t* s = static_cast<const uint8_t*>(w);
  uint8_t* o = static_cast<uint8_t*>(out);
  if (layout != DType::Q8_0_R8) {
    std::memcpy(o, s + size_t(r) * row_bytes, row_bytes);
    return;
  }
  const int64_t nb = int64_t(row_bytes / 34);
  for (int64_t b = 0; b < nb; b += 2)
    std::memcpy(o + size_t(b) * 34, s + q8r8_block_offset(row_bytes, r, b), kQ8R8Unit);
}

}  // namespace edgeglm::kernels
