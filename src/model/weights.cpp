#include "model/weights.h"

#include <algorithm>
#include <cmath>

#include "core/log.h"
#include "kernels/layout.h"
#include "quant/quant.h"

namespace edgeglm::model {
namespace {

class Binder {
 public:
  Binder(const formats::ModelFile& f, Weights& w) : file_(f), w_(w) {}

  Status err(const std::string& name, const std::string& what) const {
    return Status::error(file_.path + ": tensor '" + name + "' " + what);
  }

  // A 2-D matrix with (rows, cols) = (n_out, n_in).
  Result<TensorView> matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const formats::TensorInfo* t = file_.find(name);
    if (!t) return err(name, "is missing");
    EG_TRY(check_type(*t));
    if (t->shape.size() != 2 || t->shape[0] != cols || t->shape[1] != rows)
      return err(name, "has shape " + t->shape_string() + ", expected [" +
                           std::to_string(cols) + ", " + std::to_string(rows) + "]");
    return t->view();
  }

  // A 1-D vector of n floats; null (not an error) when absent and optional.
  Result<const float*> vec(const std::string& name, int64_t n, bool required) {
    const formats::TensorInfo* t = file_.find(name);
    if (!t) {
      if (required) return err(name, "is missing");
      return static_cast<const float*>(nullptr);
    }
    EG_TRY(check_type(*t));
    if (t->nelements() != n)
      return err(name, "has " + std::to_string(t->nelements()) + " elements, expected " +
                           std::to_string(n));
    if (t->dtype == DType::F32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0)
      return reinterpret_cast<const float*>(t->data);
    auto buf = std::make_unique<std::vector<float>>(size_t(n));
    quant::dequantize_row(t->dtype, t->data, buf->data(), n);
    const float* p = buf->data();
    w_.decoded.push_back(std::move(buf));
    return p;
  }

  bool has(const std::string& name) const { return file_.find(name) != nullptr; }

 private:
  Status check_type(const formats::TensorInfo& t) const {
    if (t.dtype != DType::F32 && !quant::quant_ops(t.dtype))
      return err(t.name, std::string("has type ") + dtype_name(t.dtype) +
                             ", which edgeglm cannot compute with");
    return Status::ok();
  }
  const formats::ModelFile& file_;
  Weights& w_;
};

}  // namespace

std::vector<float> rope_inv_freq(const RopeConfig& r, const float* freq_factors) {
  const int64_t half = r.n_rot / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // Computed in float as the reference implementations do: base^(-2i/n_rot).
    float f = 1.0f / std::pow(r.base, float(2 * i) / float(r.n_rot));
    if (freq_factors) {
      f /= freq_factors[i];
    } else if (r.scaling == RopeScaling::kLinear) {
      f /= r.factor;
    } else if (r.scaling == RopeScaling::kLlama3) {
      // Llama 3.1 scaling: long wavelengths are divided by `factor`, short ones kept, and the
      // band between is interpolated (the published rope_scaling "llama3" definition).
      const float low_wavelen = float(r.original_ctx) / r.low_freq_factor;
      const float high_wavelen = float(r.original_ctx) / r.high_freq_factor;
      const float wavelen = 2.0f * float(M_PI) / f;
      if (wavelen > low_wavelen) {
        f = f / r.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = (float(r.original_ctx) / wavelen - r.low_freq_factor) /
                             (r.high_freq_factor - r.low_freq_factor);
        f = (1.0f - smooth) * f / r.factor + smooth * f;
      }
    }
    inv[size_t(i)] = f;
  }
  return inv;
}

Status apply_runtime_layouts(Weights& w, const formats::ModelFile& file) {
  struct Job {
    TensorView* v;
    DType layout;
  };
  std::vector<Job> jobs;
  auto consider = [&](TensorView& v) {
    const DType layout = kernels::preferred_layout(v.dtype, v.rows(), v.cols());
    if (layout != v.dtype && v.contiguous()) jobs.push_back({&v, layout});
  };
  for (LayerWeights& l : w.layers)
    for (TensorView* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) consider(*v);
  consider(w.output);  // tied: the embedding too (get_row reads every layout)
  if (jobs.empty()) return Status::ok();
  constexpr size_t kAlign = 64;
  size_t total = 0;
  for (const Job& j : jobs) total += (j.v->nbytes() + kAlign - 1) / kAlign * kAlign;
  auto buffer = allocate_large(total);
  if (!buffer.ok()) {  // not an error: the file's layout computes the same, a little slower
    log_warn("weights stay in the file's layout: " + buffer.status().message());
    return Status::ok();
  }
  w.relaid = std::move(buffer).value();
  // Converted in slabs, the file pages read so far dropped after each, so the peak stays near
  // the model's size (a 272 MB tied output matrix would otherwise be resident twice). The page
  // cache may hold the file in 2 MiB folios, and reading the next slab maps its whole folio again,
  // including the end of the slab before: so each release starts at the tensor's first byte, and
  // every tensor is released once more at the end (its first folio may hold the previous one's tail).
  auto release = [&](const void* p, size_t n) {
    for (const auto& m : file.maps)
      if (m->release(p, n)) return;
  };
  constexpr size_t kSlabBytes = size_t(4) << 20;
  std::vector<std::pair<const void*, size_t>> sources;
  uint8_t* dst = w.relaid.get();
  for (const Job& j : jobs) {
    const TensorView& v = *j.v;
    const uint8_t* src = static_cast<const uint8_t*>(v.data);
    const size_t rb = v.row_bytes();
    const int64_t rows = v.rows();
    constexpr int64_t G = kernels::kLayoutRowsLcm;  // slabs of whole groups
    const int64_t slab = std::max<int64_t>(G, int64_t(kSlabBytes / rb) / G * G);
    for (int64_t r = 0; r < rows; r += slab) {
      const int64_t n = std::min(slab, rows - r);
      kernels::to_runtime_layout(j.layout, src + size_t(r) * rb, dst + size_t(r) * rb, n, rb);
      release(src, size_t(r + n) * rb);
    }
    sources.emplace_back(src, v.nbytes());
    j.v->data = dst;
    j.v->dtype = j.layout;
    dst += (v.nbytes() + kAlign - 1) / kAlign * kAlign;
  }
  // The small vectors (norms, biases) between the matrices would map their whole folio back at
  // every forward pass, matrix bytes around them included: they are copied too, and the 2 MiB
  // around each, which reading it mapped again, dropped at once (else the folios of some hundred
  // vectors add up: 37 MB of qwen2.5-0.5b's peak RSS). Anything there still read from the file
  // comes back from the page cache when touched.
  auto own = [&](const float*& v, int64_t n) {
    if (!v) return;
    auto buf = std::make_unique<std::vector<float>>(v, v + n);
    const float* src = v;
    v = buf->data();
    w.decoded.push_back(std::move(buf));
    constexpr uintptr_t kFolio = uintptr_t(2) << 20;
    for (const auto& m : file.maps) {
      const uintptr_t base = reinterpret_cast<uintptr_t>(m->data()), end = base + m->size();
      const uintptr_t a = reinterpret_cast<uintptr_t>(src);
      if (a < base || a >= end) continue;
      const uintptr_t lo = std::max(base, a / kFolio * kFolio);
      const uintptr_t hi = std::min(end, (a + size_t(n) * sizeof(float) + kFolio - 1) / kFolio * kFolio);
      m->release(reinterpret_cast<const void*>(lo), hi - lo);
    }
  };
  const int64_t E = w.output.cols();
  own(w.output_norm, E);
  for (LayerWeights& l : w.layers) {
    own(l.attn_norm, E);
    own(l.ffn_norm, E);
    own(l.post_attn_norm, E);
    own(l.post_ffn_norm, E);
    own(l.bq, l.wq.rows());
    own(l.bk, l.wk.rows());
    own(l.bv, l.wv.rows());
  }
  for (const auto& [p, n] : sources) release(p, n);
  if (w.tied_output) w.token_embd = w.output;
  return Status::ok();
}

Result<Weights> bind_weights(const formats::ModelFile& file, const ModelConfig& c) {
  Weights w;
  Binder b(file, w);
  EG_ASSIGN_OR_RETURN(w.token_embd, b.matrix("token_embd.weight", c.n_vocab, c.n_embd));
  EG_ASSIGN_OR_RETURN(w.output_norm, b.vec("output_norm.weight", c.n_embd, true));
  if (b.has("output.weight")) {
    EG_ASSIGN_OR_RETURN(w.output, b.matrix("output.weight", c.n_vocab, c.n_embd));
  } else {
    w.output = w.token_embd;
    w.tied_output = true;
  }
  w.layers.resize(size_t(c.n_layer));
  for (int64_t il = 0; il < c.n_layer; ++il) {
    LayerWeights& l = w.layers[size_t(il)];
    const std::string p = "blk." + std::to_string(il) + ".";
    EG_ASSIGN_OR_RETURN(l.attn_norm, b.vec(p + "attn_norm.weight", c.n_embd, true));
    if (b.has(p + "attn_qkv.weight")) {
      // Fused projection: rows are q (q_dim), then k (kv_dim), then v (kv_dim).
      EG_ASSIGN_OR_RETURN(TensorView qkv,
                          b.matrix(p + "attn_qkv.weight", c.q_dim() + 2 * c.kv_dim(), c.n_embd));
      l.wq = qkv.row_slice(0, c.q_dim());
      l.wk = qkv.row_slice(c.q_dim(), c.kv_dim());
      l.wv = qkv.row_slice(c.q_dim() + c.kv_dim(), c.kv_dim());
      EG_ASSIGN_OR_RETURN(const float* bqkv,
                          b.vec(p + "attn_qkv.bias", c.q_dim() + 2 * c.kv_dim(), c.qkv_bias));
      if (bqkv) {
        l.bq = bqkv;
        l.bk = bqkv + c.q_dim();
        l.bv = bqkv + c.q_dim() + c.kv_dim();
      }
    } else {
      EG_ASSIGN_OR_RETURN(l.wq, b.matrix(p + "attn_q.weight", c.q_dim(), c.n_embd));
      EG_ASSIGN_OR_RETURN(l.wk, b.matrix(p + "attn_k.weight", c.kv_dim(), c.n_embd));
      EG_ASSIGN_OR_RETURN(l.wv, b.matrix(p + "attn_v.weight", c.kv_dim(), c.n_embd));
      EG_ASSIGN_OR_RETURN(l.bq, b.vec(p + "attn_q.bias", c.q_dim(), c.qkv_bias));
      EG_ASSIGN_OR_RETURN(l.bk, b.vec(p + "attn_k.bias", c.kv_dim(), c.qkv_bias));
      EG_ASSIGN_OR_RETURN(l.bv, b.vec(p + "attn_v.bias", c.kv_dim(), c.qkv_bias));
    }
    EG_ASSIGN_OR_RETURN(l.wo, b.matrix(p + "attn_output.weight", c.n_embd, c.q_dim()));
    EG_ASSIGN_OR_RETURN(l.ffn_norm, b.vec(p + "ffn_norm.weight", c.n_embd, true));
    if (b.has(p + "ffn_gate.weight")) {
      EG_ASSIGN_OR_RETURN(l.w_gate, b.matrix(p + "ffn_gate.weight", c.n_ff, c.n_embd));
      EG_ASSIGN_OR_RETURN(l.w_up, b.matrix(p + "ffn_up.weight", c.n_ff, c.n_embd));
    } else {
      // Fused gate|up: the first n_ff rows are the gate, the next n_ff the up projection.
      EG_ASSIGN_OR_RETURN(TensorView gu, b.matrix(p + "ffn_up.weight", 2 * c.n_ff, c.n_embd));
      l.w_gate = gu.row_slice(0, c.n_ff);
      l.w_up = gu.row_slice(c.n_ff, c.n_ff);
    }
    EG_ASSIGN_OR_RETURN(l.w_down, b.matrix(p + "ffn_down.weight", c.n_embd, c.n_ff));
    if (c.post_norms) {
      EG_ASSIGN_OR_RETURN(l.post_attn_norm, b.vec(p + "post_attention_norm.weight", c.n_embd, true));
      EG_ASSIGN_OR_RETURN(l.post_ffn_norm, b.vec(p + "post_ffw_norm.weight", c.n_embd, true));
    }
  }
  EG_ASSIGN_OR_RETURN(const float* freq_factors,
                      b.vec("rope_freqs.weight", c.rope.n_rot / 2, false));
  w.inv_freq = rope_inv_freq(c.rope, freq_factors);
  return w;
}

}  // namespace edgeglm::model
