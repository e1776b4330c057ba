// Branch-free float functions that compilers vectorise (a libm call per element does not), used by
// the per-ISA element-wise kernels. Accuracy is stated per function and checked in
// tests/kernels/test_vec_math.cpp against std::exp.
#pragma once
#include <algorithm>
#include <bit>
#include <cstdint>

namespace edgeglm::kernels {

// e^x within 2 ulp over the float range (|relative error| < 2.5e-7): x = n*ln2 + r with
// |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its degree-6 Taylor polynomial (remainder
// < r^7/7! = 1.2e-7), scaled by 2^n through the exponent bits. Inputs are clamped to
// [-87.3, 88.3], so results stay finite and normal: e^-87.3 ~ 1.2e-38 stands in for underflow.
inline float fast_expf(float x) {
  x = std::max(-87.3f, std::min(x, 88.3f));  // min/max instructions, no branches
  const float n = __builtin_floorf(x * 1.44269504f + 0.5f);
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t scale = uint32_t(int32_t(n) + 127) << 23;
  return p * std::bit_cast<float>(scale);
}

}  // namespace edgeglm::kernels
