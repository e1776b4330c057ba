#include "quant/scheme.h"

#include <cctype>
#include <cstdlib>

namespace edgeglm::quant {
namespace {

// llama_ftype values (llama.cpp include/llama.h) for general.file_type; 1024 is its "guessed":
// readers look at the tensor types, which is all a file in edgeglm's own formats can offer.
constexpr uint32_t kFtypeF32 = 0, kFtypeF16 = 1, kFtypeQ4_0 = 2, kFtypeQ4_1 = 3, kFtypeQ8_0 = 7,
                   kFtypeQ5_0 = 8, kFtypeQ5_1 = 9, kFtypeQ4_K_S = 14, kFtypeQ4_K_M = 15,
                   kFtypeQ5_K_S = 16, kFtypeQ5_K_M = 17, kFtypeQ6_K = 18, kFtypeBF16 = 32,
                   kFtypeOwn = 1024;

const std::vector<Scheme> kSchemes = {
    {"f32", SchemeKind::kFloat, DType::F32, "float32 (dequantizes a quantized input)", kFtypeF32, false},
    {"f16", SchemeKind::kFloat, DType::F16, "float16", kFtypeF16, false},
    {"bf16", SchemeKind::kFloat, DType::BF16, "bfloat16", kFtypeBF16, false},
    {"int8", SchemeKind::kOwn, DType::I8_ROW,
     "dynamic W8A8: int8 weights, one scale per output channel; int8 activations per token block",
     kFtypeOwn, true},
    {"uint8-asym", SchemeKind::kOwn, DType::U8_ROW,
     "uint8 weights with a scale and zero point per output channel", kFtypeOwn, true},
    {"int4-g32", SchemeKind::kOwn, DType::Q4_0,
     "symmetric int4, one fp16 scale per 32 weights (Q4_0 layout, llama.cpp-loadable)", kFtypeQ4_0, true},
    {"int4-g64", SchemeKind::kOwn, DType::I4_G64, "symmetric int4, one fp16 scale per 64 weights",
     kFtypeOwn, true},
    {"int4-g128", SchemeKind::kOwn, DType::I4_G128, "symmetric int4, one fp16 scale per 128 weights",
     kFtypeOwn, true},
    {"uint4-g32-asym", SchemeKind::kOwn, DType::Q4_1,
     "uint4 with fp16 scale and min per 32 weights (Q4_1 layout, llama.cpp-loadable)", kFtypeQ4_1, true},
    {"uint4-g64-asym", SchemeKind::kOwn, DType::U4_G64, "uint4 with fp16 scale and min per 64 weights",
     kFtypeOwn, true},
    {"uint4-g128-asym", SchemeKind::kOwn, DType::U4_G128,
     "uint4 with fp16 scale and min per 128 weights", kFtypeOwn, true},
    {"q8_0", SchemeKind::kGguf, DType::Q8_0, "GGUF Q8_0", kFtypeQ8_0, true},
    {"q6_k", SchemeKind::kGguf, DType::Q6_K, "GGUF Q6_K", kFtypeQ6_K, true},
    {"q5_1", SchemeKind::kGguf, DType::Q5_1, "GGUF Q5_1", kFtypeQ5_1, true},
    {"q5_0", SchemeKind::kGguf, DType::Q5_0, "GGUF Q5_0", kFtypeQ5_0, true},
    {"q5_k", SchemeKind::kGguf, DType::Q5_K, "GGUF Q5_K on every matrix", kFtypeQ5_K_S, true},
    {"q5_k_m", SchemeKind::kGguf, DType::Q5_K,
     "llama.cpp's Q5_K_M mix: Q5_K, Q6_K on half of attn_v / ffn_down", kFtypeQ5_K_M, true},
    {"q4_1", SchemeKind::kGguf, DType::Q4_1, "GGUF Q4_1", kFtypeQ4_1, true},
    {"q4_0", SchemeKind::kGguf, DType::Q4_0, "GGUF Q4_0", kFtypeQ4_0, true},
    {"q4_k", SchemeKind::kGguf, DType::Q4_K, "GGUF Q4_K on every matrix", kFtypeQ4_K_S, true},
    {"q4_k_m", SchemeKind::kGguf, DType::Q4_K,
     "llama.cpp's Q4_K_M mix: Q4_K, Q6_K on half of attn_v / ffn_down", kFtypeQ4_K_M, true},
    {"mixed", SchemeKind::kMixed, DType::F32,
     "per-tensor formats chosen by measured sensitivity to meet --target-bpw / --target-size",
     kFtypeOwn, true},
};

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between.
bool use_more_bits(int64_t i, int64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

}  // namespace

const std::vector<Scheme>& schemes() { return kSchemes; }

Result<const Scheme*> find_scheme(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const Scheme& s : kSchemes)
    if (lower == s.name) return &s;
  std::string all;
  for (const Scheme& s : kSchemes) all += std::string(all.empty() ? "" : ", ") + s.name;
  return Status::error("unknown scheme '" + std::string(name) + "' (choose one of: " + all + ")");
}

bool is_quantizable(const TensorDesc& t) {
  return t.n_dims == 2 && ends_with(t.name, ".weight") && !contains(t.name, "_norm");
}

bool is_output_matrix(const TensorDesc& t, const ModelDesc& m) {
  return t.name == "output.weight" || (m.tied_output && t.name == "token_embd.weight");
}

int64_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  char* end = nullptr;
  const long v = std::strtol(name.c_str() + 4, &end, 10);
  return end && *end == '.' ? v : -1;
}

DType fallback_type(DType want, int64_t cols) {
  if (dtype_row_ok(want, cols)) return want;
  switch (want) {
    case DType::Q4_K: return fallback_type(DType::Q5_0, cols);
    case DType::Q5_K: return fallback_type(DType::Q5_1, cols);
    case DType::Q6_K: return fallback_type(DType::Q8_0, cols);
    case DType::I4_G64:
    case DType::I4_G128: return fallback_type(DType::Q4_0, cols);
    case DType::U4_G64:
    case DType::U4_G128: return fallback_type(DType::Q4_1, cols);
    default: return DType::F16;
  }
}

DType scheme_tensor_type(const Scheme& s, const TensorDesc& t, const ModelDesc& m, DType current) {
  if (!is_quantizable(t)) return current;
  return fallback_type(scheme_preferred_type(s, t, m, current), t.cols);
}

DType scheme_preferred_type(const Scheme& s, const TensorDesc& t, const ModelDesc& m, DType current) {
  if (!is_quantizable(t)) return current;
  if (s.kind == SchemeKind::kFloat) return s.type;
  DType want = s.type;
  const bool four_bit = s.kind == SchemeKind::kOwn && s.type != DType::I8_ROW && s.type != DType::U8_ROW;
  if (is_output_matrix(t, m) && (s.kind == SchemeKind::kGguf || four_bit)) {
    if (want != DType::Q8_0) want = DType::Q6_K;
  } else if (s.kind == SchemeKind::kGguf && (std::string_view(s.name) == "q4_k_m" ||
                                             std::string_view(s.name) == "q5_k_m")) {
    const int64_t il = layer_of(t.name);
    if ((contains(t.name, ".attn_v.") || contains(t.name, ".ffn_down.")) && il >= 0 &&
        use_more_bits(il, m.n_layer))
      want = DType::Q6_K;
  }
  return want;
}

double type_bits_per_weight(DType t, int64_t cols) {
  if (cols <= 0 || !dtype_row_ok(t, cols)) return 0;
  return 8.0 * double(dtype_row_bytes(t, cols)) / double(cols);
}

}  // namespace edgeglm::quant
