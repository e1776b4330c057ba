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

namespace {

struct Spec {
  DType layout, file;
  int rows;              // G
  int blocks_per_unit;   // a unit is this many blocks of the file format (F16: values)
  int x8_fields = 0;     // > 0: an X8 layout (layout.h) of blocks with this many 2-byte fields; unit = 1 block
  bool x8_fields_last = false;  // X8: the fields end the file block (Q6_K), else they start it
  size_t unit() const { return size_t(blocks_per_unit) * size_t(dtype_traits(file)->block_bytes); }
  int64_t unit_cols() const { return blocks_per_unit * dtype_traits(file)->block_size; }
};
// In order of preference among the layouts a table computes.
constexpr Spec kSpecs[] = {
    {DType::Q4_0_X8, DType::Q4_0, kX8Rows, 1, 1},
    {DType::Q4_1_X8, DType::Q4_1, kX8Rows, 1, 2},
    {DType::Q8_0_X8, DType::Q8_0, kX8Rows, 1, 1},
    {DType::Q5_0_X8, DType::Q5_0, kX8Rows, 1, 1},  // d; then qh and qs as chunks
    {DType::Q5_1_X8, DType::Q5_1, kX8Rows, 1, 2},  // d, m; then qh and qs
    {DType::Q6_K_X8, DType::Q6_K, kX8Rows, 1, 9, true},  // 16 int8 scales as 8 pairs, then d
    {DType::Q4_K_X8, DType::Q4_K, kX8Rows, 1, 2},  // d, dmin; then 12 scale bytes and qs as chunks
    {DType::Q5_K_X8, DType::Q5_K, kX8Rows, 1, 2},  // d, dmin; then scales, qh and qs as chunks
    {DType::Q8_0_R8, DType::Q8_0, kQ8R8Rows, 2},
    {DType::F16_R4, DType::F16, kF16R4Rows, 32},
    {DType::Q4_0_R8, DType::Q4_0, kQ4R8Rows, 4},
    {DType::Q4_1_R8, DType::Q4_1, kQ4R8Rows, 4},
};

const Spec* spec_of(DType layout) {
  for (const Spec& s : kSpecs)
    if (s.layout == layout) return &s;
  return nullptr;
}

// Who computes a layout for the active table: 2 the table itself, 1 a lower table other than
// generic, 0 nobody but generic's row copy.
int table_computes(DType layout) {
  const ResolvedFormat r = resolve_format(active_isa(), layout);
  if (!(r.k.q || r.k.f) || !r.isa || std::string_view(r.isa) == "generic") return 0;
  return std::string_view(r.isa) == active_isa().name ? 2 : 1;
}

// EDGEGLM_WEIGHT_LAYOUT: unset or empty, every layout; "file", none; else a comma-separated list of
// layout names (q8_0_r8,q4_0_x8,...), only those (to measure one layout against another).
bool layout_allowed(DType layout) {
  const char* v = std::getenv("EDGEGLM_WEIGHT_LAYOUT");
  if (!v || !*v) return true;
  const std::string_view name = dtype_name(layout);
  for (std::string_view list(v); !list.empty();) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

size_t unit_offset(const Spec& s, size_t row_bytes, int64_t r, int64_t p) {
  return size_t(r / s.rows) * size_t(s.rows) * row_bytes + size_t(p * s.rows + r % s.rows) * s.unit();
}

// X8: block b of row r (file form: F 2-byte fields and the quants, fields first or last) and its
// places in block column b of r's group (layout.h): copy(offset in the layout, offset in the block,
// bytes) per piece.
template <class Copy>
void x8_block(const Spec& s, size_t row_bytes, int64_t r, int64_t b, Copy copy) {
  const size_t bb = s.unit(), fields = size_t(s.x8_fields), chunks = (bb - 2 * fields) / 4, k = size_t(r % s.rows);
  const size_t col = size_t(r / s.rows) * size_t(s.rows) * row_bytes + size_t(b) * size_t(s.rows) * bb;
  const size_t field0 = s.x8_fields_last ? bb - 2 * fields : 0, quant0 = s.x8_fields_last ? 0 : 2 * fields;
  for (size_t f = 0; f < fields; ++f) copy(col + 16 * f + 2 * k, field0 + 2 * f, 2);
  for (size_t c = 0; c < chunks; ++c) copy(col + 16 * fields + 32 * c + 4 * k, quant0 + 4 * c, 4);
}

}  // namespace

DType file_dtype(DType t) {
  const Spec* s = spec_of(t);
  return s ? s->file : t;
}

DType preferred_layout(DType t, int64_t rows, int64_t cols) {
  if (float_activations()) return t;
  for (int who : {2, 1}) {
    for (const Spec& s : kSpecs) {
      if (s.file != t || !layout_allowed(s.layout)) continue;
      if (rows <= 0 || rows % s.rows != 0 || cols <= 0 || cols % s.unit_cols() != 0) continue;
      if (table_computes(s.layout) == who) return s.layout;
    }
  }
  return t;
}

void to_runtime_layout(DType layout, const void* src, void* dst, int64_t rows, size_t row_bytes) {
  const uint8_t* in = static_cast<const uint8_t*>(src);
  uint8_t* out = static_cast<uint8_t*>(dst);
  const Spec* s = spec_of(layout);
  if (!s) {
    std::memcpy(out, in, size_t(rows) * row_bytes);
    return;
  }
  const size_t u = s->unit();
  const int64_t units = int64_t(row_bytes / u);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < units; ++p) {
      const uint8_t* unit = in + size_t(r) * row_bytes + size_t(p) * u;
      if (s->x8_fields > 0) {
        x8_block(*s, row_bytes, r, p, [&](size_t lo, size_t bo, size_t n) { std::memcpy(out + lo, unit + bo, n); });
      } else {
        std::memcpy(out + unit_offset(*s, row_bytes, r, p), unit, u);
      }
    }
}

void runtime_row(DType layout, const void* w, size_t row_bytes, int64_t r, void* out) {
  const uint8_t* in = static_cast<const uint8_t*>(w);
  uint8_t* o = static_cast<uint8_t*>(out);
  const Spec* s = spec_of(layout);
  if (!s) {
    std::memcpy(o, in + size_t(r) * row_bytes, row_bytes);
    return;
  }
  const size_t u = s->unit();
  const int64_t units = int64_t(row_bytes / u);
  for (int64_t p = 0; p < units; ++p) {
    if (s->x8_fields > 0) {
      uint8_t* block = o + size_t(p) * u;
      x8_block(*s, row_bytes, r, p, [&](size_t lo, size_t bo, size_t n) { std::memcpy(block + bo, in + lo, n); });
    } else {
      std::memcpy(o + size_t(p) * u, in + unit_offset(*s, row_bytes, r, p), u);
    }
  }
}

const uint8_t* file_form_row(DType t, const void* w, size_t row_bytes, int64_t r, std::vector<uint8_t>& buf) {
  if (!is_runtime_layout(t)) return static_cast<const uint8_t*>(w) + size_t(r) * row_bytes;
  if (buf.size() < row_bytes) buf.resize(row_bytes);
  runtime_row(t, w, row_bytes, r, buf.data());
  return buf.data();
}

}  // namespace edgeglm::kernels
