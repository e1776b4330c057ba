#include "model/convert.h"

#include <cstring>
#include <vector>

#include "formats/gguf/gguf_writer.h"
#include "model/config.h"
#include "model/weights.h"
#include "quant/quant.h"

namespace edgeglm::model {
namespace {

// Hugging Face llama q/k rows are in rotate_half order (per head: all "first halves", then all
// "second halves"); GGUF llama expects interleaved pairs. Row 2i of a head takes old row i and
// row 2i+1 takes old row i + head_dim/2 (the permutation llama.cpp's converter applies).
void permute_rows_for_interleaved_rope(const uint8_t* src, uint8_t* dst, int64_t n_heads,
                                       int64_t head_dim, size_t row_bytes) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t from = h * head_dim + j * half + i;
        const int64_t to = h * head_dim + 2 * i + j;
        std::memcpy(dst + size_t(to) * row_bytes, src + size_t(from) * row_bytes, row_bytes);
      }
}

}  // namespace

void dequantize_rows(const formats::TensorInfo& t, int64_t r0, int64_t r1, float* out) {
  const int64_t cols = t.shape[0];
  const size_t row_bytes = dtype_row_bytes(t.dtype, cols);
  for (int64_t r = r0; r < r1; ++r)
    quant::dequantize_row(t.dtype, t.data + size_t(r) * row_bytes, out + (r - r0) * cols, cols);
}

Status convert_to_gguf(const formats::ModelFile& in, const std::string& out_path,
                       const ConvertOptions& opts,
                       const std::function<void(size_t, size_t)>& progress) {
  if (!opts.tensor_type && opts.matrix_type != DType::F32 && opts.matrix_type != DType::F16 &&
      opts.matrix_type != DType::BF16)
    return Status::error(std::string("convert: --dtype ") + dtype_name(opts.matrix_type) +
                         " is not a float type (use f32, f16 or bf16; `quantize` makes integer types)");
  EG_ASSIGN_OR_RETURN(ModelConfig cfg, read_config(in));
  formats::Metadata meta = in.meta;
  const bool permute_qk = cfg.arch == Arch::kLlama && cfg.rope.neox;
  meta.erase("edgeglm.rope.neox");
  // GGUF general.file_type (llama_ftype): 0 all F32, 1 mostly F16, 32 mostly BF16.
  const uint32_t ftype = opts.file_type >= 0 ? uint32_t(opts.file_type)
                         : opts.matrix_type == DType::F16  ? 1
                         : opts.matrix_type == DType::BF16 ? 32
                                                           : 0;
  meta["general.file_type"] = formats::MetaValue::from_u32(ftype);
  for (const auto& [key, value] : opts.extra_meta) meta[key] = value;
  if (!meta.count("general.name"))
    meta["general.name"] = formats::MetaValue::from_string(cfg.arch_name);

  // llama.cpp's name for the GLM family (GLM-Edge, GLM-4-9B-chat-hf, ChatGLM3) is "chatglm";
  // our Hugging Face loader calls it "glm". Write the name llama.cpp loads.
  if (cfg.arch_name == "glm") {
    formats::Metadata renamed;
    for (auto& [k, v] : meta)
      renamed[k.rfind("glm.", 0) == 0 ? "chatglm." + k.substr(4) : k] = std::move(v);
    meta = std::move(renamed);
    meta["general.architecture"] = formats::MetaValue::from_string("chatglm");
    cfg.arch_name = "chatglm";
  }

  // llama.cpp knows llama3 rope scaling only as a tensor of per-pair divisors of the frequencies
  // (rope_freqs.weight, n_rot/2 floats), not as a scaling type: write it that way.
  std::vector<float> freq_factors;
  if (cfg.rope.scaling == RopeScaling::kLlama3 && !in.find("rope_freqs.weight")) {
    RopeConfig plain = cfg.rope;
    plain.scaling = RopeScaling::kNone;
    const std::vector<float> base = rope_inv_freq(plain, nullptr);
    const std::vector<float> scaled = rope_inv_freq(cfg.rope, nullptr);
    for (size_t i = 0; i < base.size(); ++i) freq_factors.push_back(base[i] / scaled[i]);
    const std::string prefix = cfg.arch_name + ".rope.scaling.";
    std::erase_if(meta, [&](const auto& kv) { return kv.first.rfind(prefix, 0) == 0; });
  }

  // Plan the output tensors (types and sizes) first; their data is produced one tensor at a time
  // while the file is written, so converting needs memory for one tensor, not for the model.
  struct Plan {
    bool rewrite = false;         // bytes differ from the input (new type or permuted rows)
    int64_t permute_heads = 0;    // > 0: q/k rows to reorder for interleaved RoPE, per head
  };
  std::vector<formats::TensorInfo> out;
  std::vector<Plan> plan;
  out.reserve(in.tensors.size() + 1);
  for (const formats::TensorInfo& t : in.tensors) {
    formats::TensorInfo o = t;
    const bool is_float = t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16;
    const bool is_matrix = t.shape.size() == 2 && t.name.ends_with(".weight");
    if (opts.tensor_type) {
      o.dtype = opts.tensor_type(t);
      const quant::QuantOps* ops = quant::quant_ops(o.dtype);
      if (o.dtype != t.dtype && (!ops || !ops->quantize_row || !quant::quant_ops(t.dtype)))
        return Status::error("tensor '" + t.name + "': no conversion from " + dtype_name(t.dtype) +
                             " to " + dtype_name(o.dtype));
      if (!dtype_row_ok(o.dtype, t.shape[0]))
        return Status::error("tensor '" + t.name + "': rows of " + std::to_string(t.shape[0]) +
                             " elements cannot be stored as " + dtype_name(o.dtype));
    } else {
      o.dtype = !is_float ? t.dtype : is_matrix ? opts.matrix_type : DType::F32;
    }
    Plan p;
    if (permute_qk && (t.name.ends_with(".attn_q.weight") || t.name.ends_with(".attn_k.weight"))) {
      p.permute_heads = t.name.ends_with(".attn_q.weight") ? cfg.n_head : cfg.n_head_kv;
      const int64_t rows = t.nelements() / t.shape[0];
      if (rows != p.permute_heads * cfg.head_dim)
        return Status::error(in.path + ": tensor '" + t.name + "' has " + std::to_string(rows) +
                             " rows, expected " + std::to_string(p.permute_heads * cfg.head_dim));
    }
    o.nbytes = dtype_row_bytes(o.dtype, t.shape[0]) * uint64_t(t.nelements() / t.shape[0]);
    o.data = nullptr;
    p.rewrite = o.dtype != t.dtype || p.permute_heads > 0;
    plan.push_back(p);
    out.push_back(std::move(o));
  }
  if (!freq_factors.empty()) {
    formats::TensorInfo f;
    f.name = "rope_freqs.weight";
    f.dtype = DType::F32;
    f.shape = {int64_t(freq_factors.size())};
    f.nbytes = freq_factors.size() * sizeof(float);
    out.push_back(std::move(f));
  }

  std::vector<float> row;
  std::vector<uint8_t> converted;
  auto produce = [&](size_t k, std::vector<uint8_t>& scratch) -> Result<const uint8_t*> {
    if (progress) progress(k + 1, out.size());
    if (k == in.tensors.size()) return reinterpret_cast<const uint8_t*>(freq_factors.data());
    const formats::TensorInfo& t = in.tensors[k];
    if (!plan[k].rewrite) return t.data;
    const DType target = out[k].dtype;
    const int64_t cols = t.shape[0];
    const int64_t rows = t.nelements() / cols;
    const size_t src_row = dtype_row_bytes(t.dtype, cols), dst_row = dtype_row_bytes(target, cols);
    converted.resize(dst_row * size_t(rows));
    if (target != t.dtype && opts.quantize_matrix) {  // the whole matrix at once
      std::vector<float> w(size_t(cols) * size_t(rows));
      dequantize_rows(t, 0, rows, w.data());
      EG_TRY(opts.quantize_matrix(t.name, target, w.data(), rows, cols, converted.data()));
    } else {
      row.resize(size_t(cols));
      for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* s = t.data + size_t(r) * src_row;
        uint8_t* d = converted.data() + size_t(r) * dst_row;
        if (target == t.dtype) {
          std::memcpy(d, s, src_row);
        } else {
          quant::dequantize_row(t.dtype, s, row.data(), cols);
          quant::quantize_row(target, row.data(), d, cols);
        }
      }
    }
    if (plan[k].permute_heads > 0) {
      scratch.resize(converted.size());
      permute_rows_for_interleaved_rope(converted.data(), scratch.data(), plan[k].permute_heads,
                                        cfg.head_dim, dst_row);
      return scratch.data();
    }
    return converted.data();
  };
  return formats::write_gguf(out_path, meta, out, produce);
}

}  // namespace edgeglm::model
