// A Q4_K_M-style file (Q4_K matrices, Q6_K output and down projection, as llama.cpp's mix) runs
// end to end: a random llama of width 256 (the k-quant block) is written once in F32 and once
// quantized, and the quantized model's next-token distributions stay close to the F32 ones.
#include <gtest/gtest.h>

#include <cstdio>
#include "kernels/isa.h"

#include <cmath>
#include <random>

#include "formats/gguf/gguf_writer.h"
#include "model/model.h"
#include "quant/quant.h"
#include "runtime/sampler.h"
#include "model_test_util.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

constexpr int64_t kEmbd = 256, kFf = 512, kVocab = 300, kLayers = 2, kHeads = 4, kHeadsKv = 2;

struct Built {
  std::vector<std::vector<uint8_t>> data;  // keeps tensor bytes alive while writing
  std::vector<formats::TensorInfo> tensors;
};

// How matrices are stored: F32; quantized (Q4_K / Q6_K); or F32 holding exactly the values the
// quantized file decodes to (the reference for the quantized model).
enum class Mode { kF32, kQuant, kDequantized };

void add(Built& b, const std::string& name, std::vector<int64_t> shape, DType t,
         std::vector<float> values, Mode mode = Mode::kQuant) {
  const int64_t cols0 = shape[0];
  if (mode == Mode::kDequantized && t != DType::F32) {
    std::vector<uint8_t> q(dtype_row_bytes(t, cols0));
    for (size_t r = 0; r < values.size() / size_t(cols0); ++r) {
      quant::quantize_row(t, values.data() + r * size_t(cols0), q.data(), cols0);
      quant::dequantize_row(t, q.data(), values.data() + r * size_t(cols0), cols0);
    }
    t = DType::F32;
  }
  formats::TensorInfo info;
  info.name = name;
  info.dtype = t;
  info.shape = shape;
  const int64_t cols = shape[0], rows = int64_t(values.size()) / cols;
  std::vector<uint8_t> bytes(dtype_row_bytes(t, cols) * size_t(rows));
  for (int64_t r = 0; r < rows; ++r)
    quant::quantize_row(t, values.data() + r * cols, bytes.data() + size_t(r) * dtype_row_bytes(t, cols), cols);
  info.nbytes = bytes.size();
  b.data.push_back(std::move(bytes));
  info.data = b.data.back().data();
  b.tensors.push_back(info);
}

std::string write_model(const std::string& file, Mode mode) {
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto randn = [&](size_t n, float scale) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng) * scale;
    return v;
  };
  auto ones = [](size_t n) { return std::vector<float>(n, 1.0f); };
  const int64_t kv = kEmbd / kHeads * kHeadsKv;
  const bool q = mode != Mode::kF32;
  const DType mat = q ? DType::Q4_K : DType::F32, hi = q ? DType::Q6_K : DType::F32;
  Built b;
  add(b, "token_embd.weight", {kEmbd, kVocab}, mat, randn(size_t(kEmbd * kVocab), 1.0f), mode);
  add(b, "output_norm.weight", {kEmbd}, DType::F32, ones(kEmbd));
  add(b, "output.weight", {kEmbd, kVocab}, hi, randn(size_t(kEmbd * kVocab), 0.1f), mode);
  const float s = 1.0f / std::sqrt(float(kEmbd));
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(b, p + "attn_norm.weight", {kEmbd}, DType::F32, ones(kEmbd));
    add(b, p + "attn_q.weight", {kEmbd, kEmbd}, mat, randn(size_t(kEmbd * kEmbd), s), mode);
    add(b, p + "attn_k.weight", {kEmbd, kv}, mat, randn(size_t(kEmbd * kv), s), mode);
    add(b, p + "attn_v.weight", {kEmbd, kv}, mat, randn(size_t(kEmbd * kv), s), mode);
    add(b, p + "attn_output.weight", {kEmbd, kEmbd}, mat, randn(size_t(kEmbd * kEmbd), s), mode);
    add(b, p + "ffn_norm.weight", {kEmbd}, DType::F32, ones(kEmbd));
    add(b, p + "ffn_gate.weight", {kEmbd, kFf}, mat, randn(size_t(kEmbd * kFf), s), mode);
    add(b, p + "ffn_up.weight", {kEmbd, kFf}, mat, randn(size_t(kEmbd * kFf), s), mode);
    add(b, p + "ffn_down.weight", {kFf, kEmbd}, hi, randn(size_t(kFf * kEmbd), 1.0f / std::sqrt(float(kFf))), mode);
  }
  const formats::Metadata meta = test::llama_metadata(kEmbd, kFf, kLayers, kHeads, kHeadsKv);
  const std::string path = test::temp_path(file);
  EXPECT_TRUE(formats::write_gguf(path, meta, b.tensors).is_ok());
  return path;
}

std::vector<std::vector<float>> run(const std::string& path, const std::vector<int32_t>& ids) {
  return test::prompt_logits(path, ids);
}

std::vector<double> softmax(const std::vector<float>& l) {
  double mx = *std::max_element(l.begin(), l.end()), sum = 0;
  std::vector<double> p(l.size());
  for (size_t i = 0; i < l.size(); ++i) sum += p[i] = std::exp(double(l[i]) - mx);
  for (auto& x : p) x /= sum;
  return p;
}

double kl(const std::vector<float>& a, const std::vector<float>& b) {
  auto p = softmax(a), q = softmax(b);
  double s = 0;
  for (size_t i = 0; i < p.size(); ++i) s += p[i] * std::log(p[i] / q[i]);
  return s;
}

}  // namespace

TEST(KQuantModel, Q4KMixRunsExactlyAndCloseToF32) {
  const std::vector<int32_t> ids = {1, 17, 250, 3, 99, 42, 7, 180, 64, 5, 123, 299};
  auto f32 = run(write_model("kq_f32.gguf", Mode::kF32), ids);
  const std::string kq_path = write_model("kq_q4k.gguf", Mode::kQuant);
  auto kq = run(kq_path, ids);  // default: int8 activations, integer dot products
  kernels::set_float_activations(true);
  auto kq_float = run(kq_path, ids);  // weights decoded, float activations
  kernels::set_float_activations(false);
  auto deq = run(write_model("kq_deq.gguf", Mode::kDequantized), ids);
  ASSERT_EQ(f32.size(), kq.size());
  ASSERT_EQ(f32.size(), kq_float.size());
  double kl_f32 = 0, kl_acts = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    // With float activations the k-quant path computes exactly what its weights decode to
    // (float accumulation order aside).
    for (int64_t v = 0; v < kVocab; ++v)
      ASSERT_NEAR(kq_float[t][size_t(v)], deq[t][size_t(v)], 2e-4) << t;
    EXPECT_NE(f32[t], kq[t]);  // the quantized file really is a different model
    EXPECT_NE(kq_float[t], kq[t]);  // and the int8 activations really are in use by default
    kl_f32 += kl(f32[t], kq[t]);
    kl_acts += kl(kq_float[t], kq[t]);
  }
  kl_f32 /= double(ids.size());
  kl_acts /= double(ids.size());
  // 4.5-bit weights on a random model: KL to the F32 model stays small (measured ~0.025 nats);
  // the int8 activations add far less than the weights' own rounding.
  EXPECT_LT(kl_f32, 0.05);
  EXPECT_LT(kl_acts, 0.2 * kl_f32) << "KL(float acts || int8 acts) " << kl_acts;
  std::printf("KL to F32 %.5f, KL of int8 activations %.6f nats/token\n", kl_f32, kl_acts);
}
