// The drivers of the x86 float kernels (avx2 and avx512 tables): token tiling, row loop, the
// F16_R4 layout's whole groups, and the dequantizing path of other formats, around each ISA's own
// register tile. No include guard and no namespace of its own: include it inside the anonymous
// namespace of an ISA translation unit (ISA files share no inline symbols, docs/ARCHITECTURE.md),
// after defining there
//   kRows    rows per tile (= kF16R4Rows),
//   kTokens  tokens per full tile,
//   template <DType T, int R, int TT, bool kRelaid> void tile_f(const uint8_t* w, size_t row_bytes,
//       const float* x, int64_t n, int64_t t0, float* y, int64_t ldy, int64_t r)
//            rows w, w + row_bytes, ... (R of them) x tokens [t0, t0 + TT); kRelaid: an F16_R4 group.
// Needs <vector>, kernels/layout.h and quant/quant.h.
static_assert(kRows == kF16R4Rows);

// The last n_tok % kTokens tokens: one tile of that many.
template <DType T, int R, bool kRelaid, int TT = kTokens - 1>
inline void tail_f(int64_t rest, const uint8_t* w, size_t row_bytes, const float* x, int64_t n, int64_t t0,
                   float* y, int64_t ldy, int64_t r) {
  if constexpr (TT >= 1) {
    if (rest == TT) return tile_f<T, R, TT, kRelaid>(w, row_bytes, x, n, t0, y, ldy, r);
    tail_f<T, R, kRelaid, TT - 1>(rest, w, row_bytes, x, n, t0, y, ldy, r);
  }
}

// `groups` consecutive tiles of R rows (rows w, w + row_bytes, ...; outputs r, r + 1, ...) times all
// tokens: each tile of tokens runs over all the groups, so its activations stay in L1 while the
// groups' weights (a block of about kBlockBytes) come from L2. Each group taking every tile of
// tokens in turn instead reads all the activations from L2 once per group (avx512, one thread,
// qgemm_bench: f32 1536x576 46.7 -> 58.2 GMAC/s, f16 5632x2048 46.5 -> 49.5; blocks of 256 KiB
// were no better).
template <DType T, int R, bool kRelaid = false>
void rows_f(const uint8_t* w, size_t row_bytes, const float* x, int64_t n, int64_t n_tok, float* y,
            int64_t ldy, int64_t r, int64_t groups = 1) {
  const size_t gb = size_t(R) * row_bytes;
  int64_t t0 = 0;
  for (; t0 + kTokens <= n_tok; t0 += kTokens)
    for (int64_t g = 0; g < groups; ++g)
      tile_f<T, R, kTokens, kRelaid>(w + size_t(g) * gb, row_bytes, x, n, t0, y, ldy, r + g * R);
  if (t0 < n_tok)
    for (int64_t g = 0; g < groups; ++g)
      tail_f<T, R, kRelaid>(n_tok - t0, w + size_t(g) * gb, row_bytes, x, n, t0, y, ldy, r + g * R);
}

constexpr size_t kBlockBytes = 64 * 1024;  // weights of the row groups one tile of tokens sweeps

// Whole groups of kRows from row r to r + groups * kRows (kRelaid: F16_R4 groups), in blocks.
template <DType T, bool kRelaid = false>
void blocks_f(const uint8_t* wb, size_t row_bytes, const float* x, int64_t n, int64_t n_tok, float* y,
              int64_t ldy, int64_t r, int64_t groups) {
  const int64_t per_block = std::max<int64_t>(1, int64_t(kBlockBytes / (kRows * row_bytes)));
  for (int64_t g = 0; g < groups; g += per_block)
    rows_f<T, kRows, kRelaid>(wb + size_t(r + g * kRows) * row_bytes, row_bytes, x, n, n_tok, y, ldy,
                              r + g * kRows, std::min(per_block, groups - g));
}

template <DType T>
void gemm_float(const void* w, size_t row_bytes, const float* x, int64_t n, int64_t n_tok, float* y,
                int64_t ldy, int64_t r0, int64_t r1) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const int64_t groups = (r1 - r0) / kRows;
  blocks_f<T>(wb, row_bytes, x, n, n_tok, y, ldy, r0, groups);
  for (int64_t r = r0 + groups * kRows; r < r1; ++r)
    rows_f<T, 1>(wb + size_t(r) * row_bytes, row_bytes, x, n, n_tok, y, ldy, r);
}

// F16_R4 (kernels/layout.h): whole groups of kRows in the layout; rows outside them (a range that
// cuts a group) one by one from their file form.
void gemm_f16_r4(const void* w, size_t row_bytes, const float* x, int64_t n, int64_t n_tok, float* y,
                 int64_t ldy, int64_t r0, int64_t r1) {
  thread_local std::vector<uint8_t> file_row;
  auto singles = [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r)
      rows_f<DType::F16, 1>(file_form_row(DType::F16_R4, w, row_bytes, r, file_row), row_bytes, x, n, n_tok, y, ldy, r);
  };
  const GroupSpan g = whole_groups(r0, r1, kRows);
  singles(r0, g.begin);
  blocks_f<DType::F16, true>(static_cast<const uint8_t*>(w), row_bytes, x, n, n_tok, y, ldy, g.begin,
                             (g.end - g.begin) / kRows);
  singles(g.end, r1);
}

// Any other format (float-activation mode, or one without an integer kernel): rows decoded with
// the quant reference, kRows at a time, then the F32 tile.
void gemm_dequant(DType t, const void* w, size_t row_bytes, const float* x, int64_t n, int64_t n_tok,
                  float* y, int64_t ldy, int64_t r0, int64_t r1) {
  thread_local std::vector<float> buf;  // (kRows, n), grown on first use
  if (int64_t(buf.size()) < kRows * n) buf.resize(size_t(kRows * n));
  thread_local std::vector<uint8_t> file_row;  // a run-time layout's row in its file form
  const size_t fb = size_t(n) * sizeof(float);
  for (int64_t r = r0; r < r1; r += kRows) {
    const int64_t m = std::min<int64_t>(kRows, r1 - r);
    for (int64_t i = 0; i < m; ++i)
      quant::dequantize_row(file_dtype(t), file_form_row(t, w, row_bytes, r + i, file_row), buf.data() + i * n, n);
    const uint8_t* b = reinterpret_cast<const uint8_t*>(buf.data());
    if (m == kRows) {
      rows_f<DType::F32, kRows>(b, fb, x, n, n_tok, y, ldy, r);
    } else {
      for (int64_t i = 0; i < m; ++i) rows_f<DType::F32, 1>(b + size_t(i) * fb, fb, x, n, n_tok, y, ldy, r + i);
    }
  }
}

void gemm_float_any(DType t, const void* w, size_t row_bytes, const float* x, int64_t n_in, int64_t n_tok,
            float* y, int64_t ldy, int64_t r0, int64_t r1) {
  switch (t) {
    case DType::F32: return gemm_float<DType::F32>(w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1);
    case DType::F16: return gemm_float<DType::F16>(w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1);
    case DType::BF16: return gemm_float<DType::BF16>(w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1);
    case DType::F16_R4: return gemm_f16_r4(w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1);
    default: return gemm_dequant(t, w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1);
  }
}
