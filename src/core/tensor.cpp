#include "core/tensor.h"

#include <cassert>

namespace edgeglm {

bool TensorView::contiguous() const {
  if (nb[1] != row_bytes()) return ne[1] == 1;
  return nb[2] == nb[1] * size_t(ne[1]) && nb[3] == nb[2] * size_t(ne[2]);
}

TensorView TensorView::make(DType dtype, void* data, int64_t ne0, int64_t ne1, int64_t ne2,
                            int64_t ne3) {
  TensorView t;
  t.dtype = dtype;
  t.data = data;
  t.ne[0] = ne0;
  t.ne[1] = ne1;
  t.ne[2] = ne2;
  t.ne[3] = ne3;
  const DTypeTraits* tr = dtype_traits(dtype);
  assert(tr && ne0 % tr->block_size == 0);
  t.nb[0] = size_t(tr->block_bytes);
  t.nb[1] = dtype_row_bytes(dtype, ne0);
  t.nb[2] = t.nb[1] * size_t(ne1);
  t.nb[3] = t.nb[2] * size_t(ne2);
  return t;
}

TensorView TensorView::row_slice(int64_t first, int64_t count) const {
  assert(first >= 0 && count >= 0 && first + count <= ne[1] && ne[2] == 1 && ne[3] == 1);
  TensorView t = *this;
  t.data = static_cast<char*>(data) + size_t(first) * nb[1];
  t.ne[1] = count;
  t.nb[2] = nb[1] * size_t(count);
  t.nb[3] = t.nb[2];
  return t;
}

std::string TensorView::shape_string() const {
  int n = kMaxDims;
  while (n > 1 && ne[n - 1] == 1) --n;
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

}  // namespace edgeglm
