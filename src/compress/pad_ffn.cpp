#include "compress/pad_ffn.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "model/convert.h"
#include "quant/quant.h"
#include "quant/scheme.h"

namespace edgeglm::compress {
namespace {

// The tensor as floats, rows of shape[0].
Result<std::vector<float>> decode(const formats::TensorInfo& t) {
  if (!quant::quant_ops(t.dtype))
    return Status::error("pad_ffn: cannot decode '" + t.name + "' (" + dtype_name(t.dtype) + ")");
  std::vector<float> v(size_t(t.nelements()));
  model::dequantize_rows(t, 0, t.nelements() / t.shape[0], v.data());
  return v;
}

}  // namespace

Result<PadFfnResult> pad_ffn(const formats::ModelFile& file, const model::ModelConfig& cfg, int64_t multiple) {
  PadFfnResult res;
  res.from = res.to = cfg.n_ff;
  if (multiple <= 0 || cfg.n_ff <= 0 || cfg.n_ff % multiple == 0) return res;
  const int64_t to = (cfg.n_ff + multiple - 1) / multiple * multiple, from = cfg.n_ff, d = cfg.n_embd;
  const std::string key = file.architecture() + ".feed_forward_length";
  const formats::MetaValue* ff = file.get(key);
  if (!ff || !ff->is_integer()) return Status::error("pad_ffn: '" + key + "' is not one integer");
  if (to > int64_t(UINT32_MAX)) return Status::error("pad_ffn: " + std::to_string(to) + " FFN channels");
  auto copy = std::make_unique<formats::ModelFile>(file);
  for (int64_t il = 0; il < cfg.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    for (const char* name : {"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"}) {
      const formats::TensorInfo* t = file.find(p + name);
      if (!t) return Status::error("pad_ffn: no '" + p + name + "' (only separate gate and up projections are padded)");
      const bool down = std::strcmp(name, "ffn_down.weight") == 0;
      const std::vector<int64_t> want = down ? std::vector<int64_t>{from, d} : std::vector<int64_t>{d, from};
      if (t->shape != want)
        return Status::error("pad_ffn: '" + t->name + "' has shape " + t->shape_string() + ", expected [" +
                             std::to_string(want[0]) + ", " + std::to_string(want[1]) + "]");
    }
  }
  for (formats::TensorInfo& t : copy->tensors) {
    if (quant::layer_of(t.name) < 0) continue;
    const std::string suffix = t.name.substr(t.name.find('.', 4) + 1);
    if (suffix == "ffn_gate.weight" || suffix == "ffn_up.weight") {  // zero rows
      EG_ASSIGN_OR_RETURN(std::vector<float> v, decode(t));
      v.resize(size_t(to * d), 0.0f);
      copy->replace_with_f32(t, v, {d, to});
    } else if (suffix == "ffn_down.weight") {  // zero columns
      EG_ASSIGN_OR_RETURN(std::vector<float> v, decode(t));
      std::vector<float> w(size_t(d * to), 0.0f);
      for (int64_t r = 0; r < d; ++r) std::memcpy(&w[size_t(r * to)], &v[size_t(r * from)], size_t(from) * sizeof(float));
      copy->replace_with_f32(t, w, {to, d});
    } else if (suffix == "ffn_gate.bias" || suffix == "ffn_up.bias") {
      if (t.shape != std::vector<int64_t>{from})
        return Status::error("pad_ffn: '" + t.name + "' has shape " + t.shape_string());
      EG_ASSIGN_OR_RETURN(std::vector<float> v, decode(t));
      v.resize(size_t(to), 0.0f);
      copy->replace_with_f32(t, v, {to});
    }
  }
  copy->meta[key] = formats::MetaValue::from_u32(uint32_t(to));  // GGUF's type for it
  copy->meta["edgeglm.ffn_padded_from"] = formats::MetaValue::from_u32(uint32_t(from));
  copy->rebuild_index();
  res.file = std::move(copy);
  res.to = to;
  return res;
}

}  // namespace edgeglm::compress
