// TensorView: a non-owning view {dtype, shape, byte strides, data}. Shapes use ggml's order:
// ne[0] is the innermost (contiguous) dimension, so a weight written in comments as
// (rows, cols) = (n_out, n_in) has ne[0] = n_in, ne[1] = n_out, and row r starts at data + r*nb[1].
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace edgeglm {

constexpr int kMaxDims = 4;

struct TensorView {
  DType dtype = DType::F32;
  int64_t ne[kMaxDims] = {1, 1, 1, 1};  // elements per dimension, innermost first
  size_t nb[kMaxDims] = {0, 0, 0, 0};   // bytes between consecutive indices of each dimension
  void* data = nullptr;

  bool empty() const { return data == nullptr; }
  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  int64_t cols() const { return ne[0]; }
  size_t row_bytes() const { return dtype_row_bytes(dtype, ne[0]); }
  size_t nbytes() const { return row_bytes() * size_t(rows()); }  // contiguous size
  bool contiguous() const;

  template <class T = void>
  T* row(int64_t r) const {
    return reinterpret_cast<T*>(static_cast<char*>(data) + size_t(r) * nb[1]);
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }

  // Contiguous view of shape (ne0, ne1, ne2, ne3) over `data`.
  static TensorView make(DType dtype, void* data, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1,
                         int64_t ne3 = 1);
  // Rows [first, first + count) of a 2-D view (zero copy).
  TensorView row_slice(int64_t first, int64_t count) const;

  std::string shape_string() const;  // "[ne0, ne1, ...]"
};

}  // namespace edgeglm
