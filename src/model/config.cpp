#include "model/config.h"

#include <cmath>

#include "model/arch/arch.h"

namespace edgeglm::model {
namespace {

// Reads `prefix + key` as an integer; `required` keys must be present and positive.
struct MetaReader {
  const formats::ModelFile& file;
  std::string prefix;

  Status err(const std::string& key, const std::string& what) const {
    return Status::error(file.path + ": metadata '" + prefix + key + "' " + what);
  }
  Result<int64_t> get_int(const std::string& key, int64_t fallback, bool required) const {
    auto r = file.get_int(prefix + key);
    if (!r.ok()) return r.status();
    if (!r->has_value()) {
      if (required) return err(key, "is missing");
      return fallback;
    }
    int64_t v = **r;
    if (v <= 0 || v > (int64_t(1) << 31)) return err(key, "= " + std::to_string(v) + " is out of range");
    return v;
  }
  Result<float> get_float(const std::string& key, float fallback) const {
    auto r = file.get_float(prefix + key);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return fallback;
    double v = **r;
    if (!std::isfinite(v)) return err(key, "is not finite");
    return float(v);
  }
};

}  // namespace

const char* arch_display_name(Arch a) {
  switch (a) {
    case Arch::kLlama: return "llama";
    case Arch::kQwen2: return "qwen2";
    case Arch::kGlm: return "glm";
    case Arch::kGlm4: return "glm4";
  }
  return "?";
}

Result<ModelConfig> read_config(const formats::ModelFile& file) {
  ModelConfig c;
  c.arch_name = file.architecture();
  if (c.arch_name.empty())
    return Status::error(file.path + ": metadata 'general.architecture' is missing");
  const ArchSpec* spec = find_arch(c.arch_name);
  if (!spec)
    return Status::error(file.path + ": unknown architecture '" + c.arch_name +
                         "' (supported: llama, mistral, qwen2, glm, chatglm, glm4)");
  c.arch = spec->arch;
  c.qkv_bias = spec->qkv_bias;
  c.post_norms = spec->post_norms;
  MetaReader m{file, c.arch_name + "."};

  EG_ASSIGN_OR_RETURN(c.n_embd, m.get_int("embedding_length", 0, true));
  EG_ASSIGN_OR_RETURN(c.n_layer, m.get_int("block_count", 0, true));
  EG_ASSIGN_OR_RETURN(c.n_head, m.get_int("attention.head_count", 0, true));
  EG_ASSIGN_OR_RETURN(c.n_head_kv, m.get_int("attention.head_count_kv", c.n_head, false));
  EG_ASSIGN_OR_RETURN(c.n_ff, m.get_int("feed_forward_length", 0, true));
  EG_ASSIGN_OR_RETURN(c.n_ctx_train, m.get_int("context_length", 2048, false));
  if (c.n_embd % c.n_head != 0 && !file.get(m.prefix + "attention.key_length"))
    return m.err("embedding_length", "is not a multiple of attention.head_count");
  EG_ASSIGN_OR_RETURN(c.head_dim, m.get_int("attention.key_length", c.n_embd / c.n_head, false));
  if (c.n_head % c.n_head_kv != 0)
    return m.err("attention.head_count_kv", "= " + std::to_string(c.n_head_kv) +
                                                " does not divide head_count " +
                                                std::to_string(c.n_head));
  EG_ASSIGN_OR_RETURN(c.norm_eps, m.get_float("attention.layer_norm_rms_epsilon", 1e-5f));

  // Vocabulary size: metadata if present, else the embedding's row count.
  const formats::TensorInfo* emb = file.find("token_embd.weight");
  int64_t vocab_fallback = emb && emb->shape.size() == 2 ? emb->shape[1] : 0;
  EG_ASSIGN_OR_RETURN(c.n_vocab, m.get_int("vocab_size", vocab_fallback, vocab_fallback == 0));

  RopeConfig& r = c.rope;
  const int64_t rot_default = spec->partial_rotary_half ? c.head_dim / 2 : c.head_dim;
  EG_ASSIGN_OR_RETURN(r.n_rot, m.get_int("rope.dimension_count", rot_default, false));
  if (r.n_rot > c.head_dim || r.n_rot % 2 != 0)
    return m.err("rope.dimension_count", "= " + std::to_string(r.n_rot) +
                                             " must be even and at most the head size " +
                                             std::to_string(c.head_dim));
  EG_ASSIGN_OR_RETURN(r.base, m.get_float("rope.freq_base", 10000.0f));
  r.neox = spec->rope_neox;
  if (const formats::MetaValue* v = file.get("edgeglm.rope.neox")) {
    if (v->type != formats::MetaType::Bool)
      return Status::error(file.path + ": metadata 'edgeglm.rope.neox' must be a bool");
    r.neox = v->u != 0;
  }
  std::string scaling = file.get_string(m.prefix + "rope.scaling.type").value_or("none");
  if (scaling == "linear" || scaling == "llama3") {
    EG_ASSIGN_OR_RETURN(r.factor, m.get_float("rope.scaling.factor", 1.0f));
    if (!(r.factor > 0)) return m.err("rope.scaling.factor", "must be positive");
    r.scaling = scaling == "linear" ? RopeScaling::kLinear : RopeScaling::kLlama3;
    if (r.scaling == RopeScaling::kLlama3) {
      EG_ASSIGN_OR_RETURN(r.low_freq_factor, m.get_float("rope.scaling.low_freq_factor", 1.0f));
      EG_ASSIGN_OR_RETURN(r.high_freq_factor, m.get_float("rope.scaling.high_freq_factor", 4.0f));
      EG_ASSIGN_OR_RETURN(r.original_ctx,
                          m.get_int("rope.scaling.original_context_length", 8192, false));
      if (!(r.high_freq_factor > r.low_freq_factor))
        return m.err("rope.scaling.high_freq_factor", "must exceed low_freq_factor");
    }
  } else if (scaling != "none" && scaling != "") {
    return m.err("rope.scaling.type", "= '" + scaling + "' is not supported (none, linear, llama3)");
  }
  return c;
}

}  // namespace edgeglm::model
