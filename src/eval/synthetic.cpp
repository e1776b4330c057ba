#include "eval/synthetic.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "formats/gguf/gguf_writer.h"
#include "model/config.h"
#include "model/weights.h"
#include "quant/quant.h"

namespace edgeglm::eval {
namespace {

// Bumped whenever the generator's output for a given (shape, type, seed) changes, so a cached
// file from an older generator is rewritten rather than reused.
constexpr uint32_t kGeneratorVersion = 2;

// Numbers from each model's Hugging Face config.json. GLM-Edge-1.5B: GlmForCausalLM, written as
// GGUF "chatglm" (llama.cpp's name for the family) with separate q/k/v (+ biases), fused gate|up,
// partial rotary factor 0.5 and an untied lm_head (the BF16 checkpoint holds 1.59 B parameters).
const std::vector<SyntheticShape> kShapes = {
    // name, source, arch, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_rot,
    // n_ctx_train, rope_base, norm_eps, tied, qkv_bias, fused_gate_up, llama3_rope, test_only
    {"smollm2-135m", "HuggingFaceTB/SmolLM2-135M", "llama", 576, 30, 9, 3, 64, 1536, 49152, 64,
     8192, 100000.0f, 1e-5f, true, false, false, false, false},
    {"qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B", "qwen2", 896, 24, 14, 2, 64, 4864, 151936, 64, 32768,
     1000000.0f, 1e-6f, true, true, false, false, false},
    {"tinyllama-1.1b", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "llama", 2048, 22, 32, 4, 64, 5632,
     32000, 64, 2048, 10000.0f, 1e-5f, false, false, false, false, false},
    {"llama-3.2-1b", "meta-llama/Llama-3.2-1B", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 64,
     131072, 500000.0f, 1e-5f, true, false, false, true, false},
    {"glm-edge-1.5b", "THUDM/glm-edge-1.5b-chat", "chatglm", 2048, 28, 16, 4, 128, 6144, 59264, 64,
     8192, 10000.0f, 1e-5f, false, true, true, false, false},
    // Test shapes: rows of 64 make K types fall back on most matrices (ffn_down's rows of 256 do
    // not), so one tiny file exercises the whole type-mix logic.
    {"tiny-test", "edgeglm test", "llama", 64, 2, 4, 2, 16, 256, 320, 16, 512, 10000.0f, 1e-5f,
     false, false, false, false, true},
    {"tiny-glm-test", "edgeglm test", "chatglm", 256, 2, 4, 2, 64, 256, 300, 32, 512, 10000.0f,
     1e-5f, true, true, true, false, true},
};

const std::vector<std::string> kTypeNames = {
    "f32",  "f16",  "bf16", "q8_0", "q4_0",   "q4_1",   "q5_0",    "q5_1",   "q4_k",
    "q5_k", "q6_k", "i8_row", "u8_row", "i4_g64", "i4_g128", "u4_g64", "u4_g128"};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// llama.cpp's per-tensor fallback when a row does not fit the type's blocks.
DType fallback_type(DType t) {
  switch (t) {
    case DType::Q4_K: return DType::Q5_0;
    case DType::Q5_K: return DType::Q5_1;
    case DType::Q6_K: return DType::Q8_0;
    case DType::I4_G64: case DType::I4_G128: return DType::Q4_0;  // edgeglm's groups: 32-groups
    case DType::U4_G64: case DType::U4_G128: return DType::Q4_1;
    default: return DType::F16;
  }
}

// Output projection of an untied model (llama.cpp: Q6_K unless the type is already 8-bit or float).
DType output_type(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::F16: case DType::BF16: case DType::F32:
    case DType::I8_ROW: case DType::U8_ROW: return t;
    default: return DType::Q6_K;
  }
}

// llama_ftype for general.file_type; the K types name their "_S" (uniform) variants.
uint32_t file_type_id(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q4_K: return 14;
    case DType::Q5_K: return 16;
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 1024;  // edgeglm's own formats: llama.cpp's "guessed" (read the tensors)
  }
}

enum class Fill : uint8_t { kNormal, kOnes, kBias, kRopeFreqs };

// splitmix64: one 64-bit state step per call; seeds each row's stream independently, so rows can be
// generated on any thread in any order and the file is the same.
inline uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Approximately normal (Irwin-Hall: the sum of four 16-bit uniforms from one 64-bit draw, scaled
// to unit variance); bounded at +-3.46 sigma, which is all a speed benchmark needs.
inline float approx_normal(uint64_t& s) {
  const uint64_t r = splitmix64(s);
  const uint32_t sum = uint32_t(r & 0xFFFF) + uint32_t((r >> 16) & 0xFFFF) +
                       uint32_t((r >> 32) & 0xFFFF) + uint32_t(r >> 48);
  constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(3) / 2^16: variance 4/12 -> 1
  return (float(sum) - 2.0f * 65535.5f) * kScale;
}

struct TensorSpec {
  Fill fill;
  DType requested;  // before fallback, for the fallback note
};

void add_tensor(SyntheticPlan& plan, std::vector<TensorSpec>& specs, const std::string& name,
                std::vector<int64_t> shape, DType requested, Fill fill) {
  DType t = requested;
  while (!dtype_row_ok(t, shape[0])) {
    const DType next = fallback_type(t);
    if (next == t) break;
    t = next;
  }
  if (t != requested)
    plan.fallbacks.push_back(name + ": " + dtype_name(requested) + " -> " + dtype_name(t) +
                             " (row of " + std::to_string(shape[0]) + " is not a multiple of " +
                             std::to_string(dtype_traits(requested)->block_size) + ")");
  formats::TensorInfo info;
  info.name = name;
  info.dtype = t;
  info.shape = std::move(shape);
  int64_t rows = 1;
  for (size_t d = 1; d < info.shape.size(); ++d) rows *= info.shape[d];
  info.nbytes = dtype_row_bytes(t, info.shape[0]) * uint64_t(rows);
  plan.tensor_bytes += info.nbytes;
  plan.tensors.push_back(std::move(info));
  specs.push_back({fill, requested});
}

void build_tensors(const SyntheticShape& s, DType type, SyntheticPlan& plan,
                   std::vector<TensorSpec>& specs) {
  const DType matrix = type;
  const DType embd = s.tied ? (type == DType::F32 || type == DType::BF16 ? type : DType::F16) : type;
  add_tensor(plan, specs, "token_embd.weight", {s.n_embd, s.n_vocab}, embd, Fill::kNormal);
  if (s.llama3_rope)
    add_tensor(plan, specs, "rope_freqs.weight", {s.n_rot / 2}, DType::F32, Fill::kRopeFreqs);
  add_tensor(plan, specs, "output_norm.weight", {s.n_embd}, DType::F32, Fill::kOnes);
  if (!s.tied)
    add_tensor(plan, specs, "output.weight", {s.n_embd, s.n_vocab}, output_type(type),
               Fill::kNormal);
  for (int64_t il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    add_tensor(plan, specs, p + "attn_norm.weight", {s.n_embd}, DType::F32, Fill::kOnes);
    add_tensor(plan, specs, p + "attn_q.weight", {s.n_embd, s.q_dim()}, matrix, Fill::kNormal);
    add_tensor(plan, specs, p + "attn_k.weight", {s.n_embd, s.kv_dim()}, matrix, Fill::kNormal);
    add_tensor(plan, specs, p + "attn_v.weight", {s.n_embd, s.kv_dim()}, matrix, Fill::kNormal);
    if (s.qkv_bias) {
      add_tensor(plan, specs, p + "attn_q.bias", {s.q_dim()}, DType::F32, Fill::kBias);
      add_tensor(plan, specs, p + "attn_k.bias", {s.kv_dim()}, DType::F32, Fill::kBias);
      add_tensor(plan, specs, p + "attn_v.bias", {s.kv_dim()}, DType::F32, Fill::kBias);
    }
    add_tensor(plan, specs, p + "attn_output.weight", {s.q_dim(), s.n_embd}, matrix, Fill::kNormal);
    add_tensor(plan, specs, p + "ffn_norm.weight", {s.n_embd}, DType::F32, Fill::kOnes);
    if (s.fused_gate_up) {
      add_tensor(plan, specs, p + "ffn_up.weight", {s.n_embd, 2 * s.n_ff}, matrix, Fill::kNormal);
    } else {
      add_tensor(plan, specs, p + "ffn_gate.weight", {s.n_embd, s.n_ff}, matrix, Fill::kNormal);
      add_tensor(plan, specs, p + "ffn_up.weight", {s.n_embd, s.n_ff}, matrix, Fill::kNormal);
    }
    add_tensor(plan, specs, p + "ffn_down.weight", {s.n_ff, s.n_embd}, matrix, Fill::kNormal);
  }
}

formats::Metadata build_metadata(const SyntheticShape& s, DType type, uint64_t seed) {
  using formats::MetaValue;
  formats::Metadata m;
  const std::string a = s.arch;
  auto u32 = [](int64_t v) { return MetaValue::from_u32(uint32_t(v)); };
  m["general.architecture"] = MetaValue::from_string(a);
  m["general.name"] = MetaValue::from_string(std::string("synthetic ") + s.name);
  m["general.file_type"] = MetaValue::from_u32(file_type_id(type));
  m["general.quantization_version"] = MetaValue::from_u32(2);
  m[a + ".context_length"] = u32(s.n_ctx_train);
  m[a + ".embedding_length"] = u32(s.n_embd);
  m[a + ".block_count"] = u32(s.n_layer);
  m[a + ".feed_forward_length"] = u32(s.n_ff);
  m[a + ".attention.head_count"] = u32(s.n_head);
  m[a + ".attention.head_count_kv"] = u32(s.n_head_kv);
  if (s.head_dim * s.n_head != s.n_embd) {
    m[a + ".attention.key_length"] = u32(s.head_dim);
    m[a + ".attention.value_length"] = u32(s.head_dim);
  }
  m[a + ".rope.dimension_count"] = u32(s.n_rot);
  m[a + ".rope.freq_base"] = MetaValue::from_f32(s.rope_base);
  m[a + ".attention.layer_norm_rms_epsilon"] = MetaValue::from_f32(s.norm_eps);
  m[a + ".vocab_size"] = u32(s.n_vocab);

  // Minimal SentencePiece vocabulary: specials, byte fallback tokens, then filler pieces.
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  tokens.reserve(size_t(s.n_vocab));
  const char* specials[] = {"<unk>", "<s>", "</s>"};
  const int32_t special_types[] = {2, 3, 3};  // unknown, control, control
  for (int i = 0; i < 3 && int64_t(tokens.size()) < s.n_vocab; ++i) {
    tokens.push_back(specials[i]);
    scores.push_back(0.0f);
    types.push_back(special_types[i]);
  }
  for (int b = 0; b < 256 && int64_t(tokens.size()) < s.n_vocab; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.push_back(buf);
    scores.push_back(0.0f);
    types.push_back(6);  // byte
  }
  // The word-start piece, so SentencePiece's dummy-prefix space encodes as a piece (and decodes
  // back to a space) rather than as the three bytes of U+2581.
  if (int64_t(tokens.size()) < s.n_vocab) {
    tokens.push_back("\xE2\x96\x81");
    scores.push_back(-1.0f);
    types.push_back(1);
  }
  for (int64_t i = int64_t(tokens.size()); i < s.n_vocab; ++i) {
    tokens.push_back("tok" + std::to_string(i));
    scores.push_back(-float(i));
    types.push_back(1);  // normal
  }
  m["tokenizer.ggml.model"] = MetaValue::from_string("llama");
  m["tokenizer.ggml.tokens"] = MetaValue::from_strings(std::move(tokens));
  m["tokenizer.ggml.scores"] = MetaValue::from_f32s(scores);
  m["tokenizer.ggml.token_type"] = MetaValue::from_i32s(types);
  m["tokenizer.ggml.unknown_token_id"] = MetaValue::from_u32(0);
  m["tokenizer.ggml.bos_token_id"] = MetaValue::from_u32(1);
  m["tokenizer.ggml.eos_token_id"] = MetaValue::from_u32(2);
  m["tokenizer.ggml.add_bos_token"] = MetaValue::from_bool(true);

  m["edgeglm.synthetic.shape"] = MetaValue::from_string(s.name);
  m["edgeglm.synthetic.seed"] = MetaValue::from_u64(seed);
  m["edgeglm.synthetic.version"] = MetaValue::from_u32(kGeneratorVersion);
  return m;
}

// llama3 scaling as per-pair divisors of the frequencies (what rope_freqs.weight holds).
std::vector<float> llama3_freq_factors(const SyntheticShape& s) {
  model::RopeConfig plain;
  plain.n_rot = s.n_rot;
  plain.base = s.rope_base;
  model::RopeConfig scaled = plain;
  scaled.scaling = model::RopeScaling::kLlama3;
  scaled.factor = 32.0f;
  scaled.low_freq_factor = 1.0f;
  scaled.high_freq_factor = 4.0f;
  scaled.original_ctx = 8192;
  const std::vector<float> base = model::rope_inv_freq(plain, nullptr);
  const std::vector<float> sc = model::rope_inv_freq(scaled, nullptr);
  std::vector<float> f(base.size());
  for (size_t i = 0; i < f.size(); ++i) f[i] = base[i] / sc[i];
  return f;
}

Result<SyntheticPlan> plan_with_specs(const SyntheticShape& s, DType type, uint64_t seed,
                                      std::vector<TensorSpec>& specs) {
  bool known = false;
  for (const auto& n : kTypeNames) known = known || dtype_from_name(n).value() == type;
  if (!known)
    return Status::error(std::string("synthetic model: type ") + dtype_name(type) +
                         " is not supported (choices: " + join(kTypeNames) + ")");
  SyntheticPlan plan;
  build_tensors(s, type, plan, specs);
  plan.meta = build_metadata(s, type, seed);
  return plan;
}

}  // namespace

const std::vector<SyntheticShape>& synthetic_shapes() { return kShapes; }

Result<const SyntheticShape*> find_synthetic_shape(std::string_view name) {
  std::vector<std::string> names;
  for (const SyntheticShape& s : kShapes) {
    if (name == s.name) return &s;
    names.push_back(s.name);
  }
  return Status::error("unknown synthetic shape '" + std::string(name) +
                       "' (choices: " + join(names) + ")");
}

int64_t synthetic_param_count(const SyntheticShape& s) {
  std::vector<TensorSpec> specs;
  SyntheticPlan plan;
  build_tensors(s, DType::F32, plan, specs);
  int64_t n = 0;
  for (const auto& t : plan.tensors) n += t.nelements();
  return n;
}

const std::vector<std::string>& synthetic_type_names() { return kTypeNames; }

Result<DType> synthetic_type_from_name(std::string_view name) {
  for (const auto& n : kTypeNames)
    if (name == n) return dtype_from_name(n).value();
  return Status::error("unknown type '" + std::string(name) + "' (choices: " + join(kTypeNames) +
                       ")");
}

Result<SyntheticPlan> plan_synthetic_model(const SyntheticShape& shape, DType type, uint64_t seed) {
  std::vector<TensorSpec> specs;
  return plan_with_specs(shape, type, seed, specs);
}

Status write_synthetic_model(const SyntheticShape& shape, DType type, const std::string& path,
                             ThreadPool& pool, const SyntheticProgress& progress, uint64_t seed) {
  std::vector<TensorSpec> specs;
  EG_ASSIGN_OR_RETURN(SyntheticPlan plan, plan_with_specs(shape, type, seed, specs));
  const std::vector<float> freq_factors =
      shape.llama3_rope ? llama3_freq_factors(shape) : std::vector<float>();
  std::vector<uint8_t> data;
  std::vector<std::vector<float>> rows(size_t(pool.size()));  // per-thread f32 row scratch

  auto produce = [&](size_t k, std::vector<uint8_t>&) -> Result<const uint8_t*> {
    const formats::TensorInfo& t = plan.tensors[k];
    const Fill fill = specs[k].fill;
    const int64_t cols = t.shape[0];
    const int64_t n_rows = t.nelements() / cols;
    const size_t row_bytes = dtype_row_bytes(t.dtype, cols);
    data.resize(size_t(t.nbytes));
    if (fill == Fill::kRopeFreqs) {
      std::memcpy(data.data(), freq_factors.data(), data.size());
    } else {
      const float std_dev = fill == Fill::kBias ? 0.01f : 0.02f;
      // One stream per (seed, tensor, row): the bytes do not depend on how rows are split.
      const uint64_t tensor_key = seed * 0x100000001B3ull ^ (uint64_t(k) + 1) * 0xD6E8FEB86659FD93ull;
      pool.parallel_for(
          n_rows,
          [&](int64_t r0, int64_t r1, int ith) {
            std::vector<float>& row = rows[size_t(ith)];
            row.resize(size_t(cols));
            for (int64_t r = r0; r < r1; ++r) {
              if (fill == Fill::kOnes) {
                std::fill(row.begin(), row.end(), 1.0f);
              } else {
                uint64_t state = tensor_key ^ (uint64_t(r) * 0x9E3779B97F4A7C15ull);
                splitmix64(state);
                for (float& x : row) x = approx_normal(state) * std_dev;
              }
              quant::quantize_row(t.dtype, row.data(), data.data() + size_t(r) * row_bytes, cols);
            }
          },
          /*grain=*/8);
    }
    if (progress) progress(k + 1, plan.tensors.size());
    return static_cast<const uint8_t*>(data.data());
  };
  return formats::write_gguf(path, plan.meta, plan.tensors, produce);
}

Result<std::string> synthetic_cache_dir(const std::string& override_dir) {
  if (!override_dir.empty()) return override_dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/edgeglm/synthetic";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/edgeglm/synthetic";
  return Status::error("no cache directory: neither XDG_CACHE_HOME nor HOME is set (use --cache-dir)");
}

std::string synthetic_file_name(const SyntheticShape& shape, DType type, uint64_t seed) {
  std::string n = std::string(shape.name) + "-" + dtype_name(type);
  if (seed != 1) n += "-s" + std::to_string(seed);
  return n + ".gguf";
}

Result<std::string> ensure_synthetic_model(const SyntheticShape& shape, DType type,
                                           const std::string& dir, ThreadPool& pool,
                                           const SyntheticProgress& progress, uint64_t seed,
                                           bool* created) {
  if (created) *created = false;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::error("cannot create cache directory " + dir + ": " + ec.message());
  if (!std::filesystem::is_directory(dir))
    return Status::error("cache directory " + dir + " is not a directory");
  if (::access(dir.c_str(), W_OK) != 0)
    return Status::error("cache directory " + dir + " is not writable: " + std::strerror(errno));
  const std::string path = dir + "/" + synthetic_file_name(shape, type, seed);

  if (std::filesystem::exists(path)) {
    std::vector<TensorSpec> specs;
    EG_ASSIGN_OR_RETURN(SyntheticPlan plan, plan_with_specs(shape, type, seed, specs));
    auto file = formats::open_model(path);
    bool same = file.ok() && (*file)->tensors.size() == plan.tensors.size();
    if (same) {
      auto version = (*file)->get_int("edgeglm.synthetic.version");
      same = version.ok() && version->value_or(0) == kGeneratorVersion;
    }
    for (size_t k = 0; same && k < plan.tensors.size(); ++k) {
      const formats::TensorInfo& a = (*file)->tensors[k];
      const formats::TensorInfo& b = plan.tensors[k];
      same = a.name == b.name && a.dtype == b.dtype && a.shape == b.shape;
    }
    if (same) return path;
  }
  EG_TRY(write_synthetic_model(shape, type, path, pool, progress, seed));
  if (created) *created = true;
  return path;
}

}  // namespace edgeglm::eval
