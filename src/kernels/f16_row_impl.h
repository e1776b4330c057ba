// f16 -> f32 of a row with the ISA's conversion instruction (F16C on x86, NEON on aarch64) and the
// portable decoder for the tail. No include guard and no namespace of its own: include it inside
// the anonymous namespace of an ISA translation unit (after <immintrin.h> / <arm_neon.h> and
// core/fp16.h), so each ISA's copy stays private to its object file.
inline void f16_to_f32_row(const uint16_t* h, float* out, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
#pragma GCC unroll 8
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
#elif defined(__aarch64__)
#pragma GCC unroll 8
  for (; i + 4 <= n; i += 4)
    vst1q_f32(out + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + i))));
#endif
  for (; i < n; ++i) out[i] = fp16_to_f32(h[i]);
}
