#include "formats/safetensors/hf_loader.h"

#include <cmath>
#include <exception>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "formats/safetensors/safetensors_reader.h"

namespace edgeglm::formats {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr size_t kMaxConfigBytes = size_t(16) << 20;
constexpr size_t kMaxIndexBytes = size_t(64) << 20;

// Typed, error-reporting access to one JSON object of config.json.
class Cfg {
 public:
  Cfg(const json& j, const std::string& name) : j_(j), name_(name) {}

  const json* find(const char* key) const {
    if (!j_.is_object()) return nullptr;
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  Result<std::optional<int64_t>> opt_int(const char* key) const {
    const json* v = find(key);
    if (!v) return std::optional<int64_t>();
    if (v->is_number_unsigned() &&
        v->get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()))
      return std::optional<int64_t>(int64_t(v->get<uint64_t>()));
    if (v->is_number_integer()) return std::optional<int64_t>(v->get<int64_t>());
    if (v->is_number_float()) {
      const double d = v->get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
        return std::optional<int64_t>(int64_t(d));
    }
    return error(std::string("'") + key + "' must be an integer");
  }
  // A positive integer that fits the u32 GGUF keys.
  Result<std::optional<int64_t>> opt_count(const char* key) const {
    EG_ASSIGN_OR_RETURN(auto v, opt_int(key));
    if (v && (*v <= 0 || *v > int64_t(std::numeric_limits<uint32_t>::max())))
      return error(std::string("'") + key + "' must be a positive integer, got " +
                   std::to_string(*v));
    return v;
  }
  Result<int64_t> req_count(const char* key) const {
    EG_ASSIGN_OR_RETURN(auto v, opt_count(key));
    if (!v) return error(std::string("missing '") + key + "'");
    return *v;
  }
  Result<std::optional<double>> opt_num(const char* key) const {
    const json* v = find(key);
    if (!v) return std::optional<double>();
    if (!v->is_number() || !std::isfinite(v->get<double>()))
      return error(std::string("'") + key + "' must be a finite number");
    return std::optional<double>(v->get<double>());
  }
  Result<std::optional<bool>> opt_bool(const char* key) const {
    const json* v = find(key);
    if (!v) return std::optional<bool>();
    if (!v->is_boolean()) return error(std::string("'") + key + "' must be true or false");
    return std::optional<bool>(v->get<bool>());
  }
  Result<std::optional<std::string>> opt_str(const char* key) const {
    const json* v = find(key);
    if (!v) return std::optional<std::string>();
    if (!v->is_string()) return error(std::string("'") + key + "' must be a string");
    return std::optional<std::string>(v->get<std::string>());
  }
  Status error(const std::string& what) const { return Status::error(name_ + ": " + what); }
  Cfg child(const json& j) const { return Cfg(j, name_); }

 private:
  const json& j_;
  const std::string& name_;
};

struct ArchName {
  const char* hf;
  const char* arch;
};
constexpr ArchName kArchitectures[] = {
    {"LlamaForCausalLM", "llama"},   {"MistralForCausalLM", "llama"},
    {"Qwen2ForCausalLM", "qwen2"},   {"GlmForCausalLM", "glm"},
    {"Glm4ForCausalLM", "glm4"},     {"ChatGLMModel", "chatglm"},
    {"ChatGLMForConditionalGeneration", "chatglm"},
};
constexpr ArchName kModelTypes[] = {
    {"llama", "llama"}, {"mistral", "llama"}, {"qwen2", "qwen2"},
    {"glm", "glm"},     {"glm4", "glm4"},     {"chatglm", "chatglm"},
};

Status pick_architecture(const json& j, const Cfg& cfg, HfConfig& out) {
  std::string listed;
  if (const json* a = cfg.find("architectures")) {
    if (!a->is_array()) return cfg.error("'architectures' must be an array of strings");
    for (const json& e : *a) {
      if (!e.is_string()) return cfg.error("'architectures' must be an array of strings");
      const std::string s = e.get<std::string>();
      listed += (listed.empty() ? "" : ", ") + s;
      for (const auto& m : kArchitectures)
        if (s == m.hf && out.arch.empty()) {
          out.hf_architecture = s;
          out.arch = m.arch;
        }
    }
  }
  EG_ASSIGN_OR_RETURN(auto model_type, cfg.opt_str("model_type"));
  if (out.arch.empty() && model_type) {
    for (const auto& m : kModelTypes)
      if (*model_type == m.hf) {
        out.hf_architecture = *model_type;
        out.arch = m.arch;
      }
  }
  if (out.arch.empty())
    return cfg.error("unsupported architecture [" + listed + "] (model_type '" +
                     model_type.value_or("") +
                     "'); supported: Llama, Mistral, Qwen2, Glm, Glm4, ChatGLM");
  return Status::ok();
}

MetaValue u32v(int64_t v) { return MetaValue::from_u32(uint32_t(v)); }
MetaValue f32v(double v) { return MetaValue::from_f32(float(v)); }

// The object holding RoPE parameters: "rope_scaling" (transformers 4) or "rope_parameters"
// (transformers 5, which also moves rope_theta and partial_rotary_factor into it).
Result<const json*> rope_object(const Cfg& cfg) {
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (const json* v = cfg.find(key)) {
      if (!v->is_object()) return cfg.error(std::string("'") + key + "' must be an object");
      return v;
    }
  }
  return static_cast<const json*>(nullptr);
}

Status add_rope_scaling(const Cfg& cfg, const std::string& arch, Metadata& meta) {
  EG_ASSIGN_OR_RETURN(const json* src, rope_object(cfg));
  if (!src) return Status::ok();
  const Cfg rs = cfg.child(*src);
  EG_ASSIGN_OR_RETURN(auto type, rs.opt_str("rope_type"));
  if (!type) {
    EG_ASSIGN_OR_RETURN(type, rs.opt_str("type"));
  }
  if (!type || *type == "default") return Status::ok();
  const std::string p = arch + ".rope.scaling.";
  meta[p + "type"] = MetaValue::from_string(*type);
  EG_ASSIGN_OR_RETURN(auto factor, rs.opt_num("factor"));
  if (!factor && (*type == "linear" || *type == "llama3" || *type == "yarn"))
    return cfg.error("rope scaling type '" + *type + "' without a 'factor'");
  if (factor) {
    if (*factor <= 0) return cfg.error("rope scaling 'factor' must be positive");
    meta[p + "factor"] = f32v(*factor);
  }
  EG_ASSIGN_OR_RETURN(auto orig, rs.opt_count("original_max_position_embeddings"));
  if (!orig) {
    EG_ASSIGN_OR_RETURN(orig, cfg.opt_count("original_max_position_embeddings"));
  }
  if (orig) meta[p + "original_context_length"] = u32v(*orig);
  const std::pair<const char*, const char*> reals[] = {
      {"low_freq_factor", "low_freq_factor"}, {"high_freq_factor", "high_freq_factor"},
      {"attention_factor", "attn_factor"},    {"beta_fast", "beta_fast"},
      {"beta_slow", "beta_slow"}};
  for (const auto& [from, to] : reals) {
    EG_ASSIGN_OR_RETURN(auto v, rs.opt_num(from));
    if (v) meta[p + to] = f32v(*v);
  }
  if (*type == "llama3") {
    for (const char* k : {"low_freq_factor", "high_freq_factor", "original_context_length"})
      if (!meta.count(p + k)) return cfg.error("llama3 rope scaling without '" + std::string(k) +
                                               "'");
  }
  return Status::ok();
}

// A rope parameter that transformers 5 keeps in rope_parameters and 4 at the top level.
Result<std::optional<double>> rope_param(const Cfg& cfg, const char* key) {
  if (const json* p = cfg.find("rope_parameters"); p && p->is_object()) {
    EG_ASSIGN_OR_RETURN(auto v, cfg.child(*p).opt_num(key));
    if (v) return v;
  }
  return cfg.opt_num(key);
}

Status llama_like_config(const Cfg& cfg, HfConfig& out) {
  const std::string& a = out.arch;
  Metadata& m = out.meta;
  const bool glm = a == "glm" || a == "glm4";
  EG_ASSIGN_OR_RETURN(int64_t n_embd, cfg.req_count("hidden_size"));
  EG_ASSIGN_OR_RETURN(int64_t n_layer, cfg.req_count("num_hidden_layers"));
  EG_ASSIGN_OR_RETURN(int64_t n_ff, cfg.req_count("intermediate_size"));
  EG_ASSIGN_OR_RETURN(int64_t n_head, cfg.req_count("num_attention_heads"));
  EG_ASSIGN_OR_RETURN(auto n_head_kv, cfg.opt_count("num_key_value_heads"));
  EG_ASSIGN_OR_RETURN(auto head_dim, cfg.opt_count("head_dim"));
  EG_ASSIGN_OR_RETURN(auto n_ctx, cfg.opt_count("max_position_embeddings"));
  EG_ASSIGN_OR_RETURN(int64_t n_vocab, cfg.req_count("vocab_size"));
  EG_ASSIGN_OR_RETURN(auto eps, cfg.opt_num("rms_norm_eps"));
  EG_ASSIGN_OR_RETURN(auto theta, rope_param(cfg, "rope_theta"));
  EG_ASSIGN_OR_RETURN(auto partial, rope_param(cfg, "partial_rotary_factor"));
  EG_ASSIGN_OR_RETURN(auto tie, cfg.opt_bool("tie_word_embeddings"));
  if (glm) {
    // transformers' GlmConfig / Glm4Config defaults (not hidden_size / num_attention_heads).
    if (!head_dim) head_dim = 128;
    if (!n_head_kv) n_head_kv = 2;
  }
  if (n_head_kv && n_head % *n_head_kv != 0)
    return cfg.error("num_attention_heads " + std::to_string(n_head) +
                     " is not a multiple of num_key_value_heads " + std::to_string(*n_head_kv));
  if (!head_dim && n_embd % n_head != 0)
    return cfg.error("hidden_size is not a multiple of num_attention_heads and no head_dim");
  const int64_t hd = head_dim ? *head_dim : n_embd / n_head;
  const double factor = glm ? partial.value_or(0.5) : 1.0;
  if (!(factor > 0 && factor <= 1))
    return cfg.error("'partial_rotary_factor' must be in (0, 1]");

  m[a + ".embedding_length"] = u32v(n_embd);
  m[a + ".block_count"] = u32v(n_layer);
  m[a + ".feed_forward_length"] = u32v(n_ff);
  m[a + ".attention.head_count"] = u32v(n_head);
  m[a + ".attention.head_count_kv"] = u32v(n_head_kv.value_or(n_head));
  if (head_dim) {
    m[a + ".attention.key_length"] = u32v(*head_dim);
    m[a + ".attention.value_length"] = u32v(*head_dim);
  }
  if (n_ctx) m[a + ".context_length"] = u32v(*n_ctx);
  m[a + ".vocab_size"] = u32v(n_vocab);
  m[a + ".attention.layer_norm_rms_epsilon"] = f32v(eps.value_or(glm ? 1.5625e-07 : 1e-6));
  m[a + ".rope.freq_base"] = f32v(theta.value_or(10000.0));
  m[a + ".rope.dimension_count"] = u32v(int64_t(double(hd) * factor));
  m["edgeglm.rope.neox"] = MetaValue::from_bool(a == "llama" || a == "qwen2");
  out.tie_word_embeddings = tie.value_or(false);
  return add_rope_scaling(cfg, a, m);
}

Status chatglm_config(const Cfg& cfg, HfConfig& out) {
  const std::string a = "chatglm";
  Metadata& m = out.meta;
  EG_ASSIGN_OR_RETURN(int64_t n_embd, cfg.req_count("hidden_size"));
  EG_ASSIGN_OR_RETURN(int64_t n_layer, cfg.req_count("num_layers"));
  EG_ASSIGN_OR_RETURN(int64_t n_ff, cfg.req_count("ffn_hidden_size"));
  EG_ASSIGN_OR_RETURN(int64_t n_head, cfg.req_count("num_attention_heads"));
  EG_ASSIGN_OR_RETURN(auto mqa, cfg.opt_bool("multi_query_attention"));
  EG_ASSIGN_OR_RETURN(auto groups, cfg.opt_count("multi_query_group_num"));
  EG_ASSIGN_OR_RETURN(auto kv_channels, cfg.opt_count("kv_channels"));
  EG_ASSIGN_OR_RETURN(auto eps, cfg.opt_num("layernorm_epsilon"));
  EG_ASSIGN_OR_RETURN(auto n_vocab, cfg.opt_count("padded_vocab_size"));
  if (!n_vocab) {
    EG_ASSIGN_OR_RETURN(n_vocab, cfg.opt_count("vocab_size"));
  }
  EG_ASSIGN_OR_RETURN(auto n_ctx, cfg.opt_count("seq_length"));
  EG_ASSIGN_OR_RETURN(auto rope_ratio, cfg.opt_num("rope_ratio"));
  EG_ASSIGN_OR_RETURN(auto rmsnorm, cfg.opt_bool("rmsnorm"));
  EG_ASSIGN_OR_RETURN(auto tie, cfg.opt_bool("tie_word_embeddings"));
  if (!n_vocab) return cfg.error("missing 'padded_vocab_size'");
  if (rmsnorm && !*rmsnorm) return cfg.error("ChatGLM with LayerNorm (rmsnorm: false) is not "
                                             "supported");
  const int64_t n_head_kv = mqa.value_or(false) ? groups.value_or(0) : n_head;
  if (n_head_kv <= 0) return cfg.error("multi_query_attention without 'multi_query_group_num'");
  if (n_head % n_head_kv != 0)
    return cfg.error("num_attention_heads is not a multiple of multi_query_group_num");
  if (!kv_channels && n_embd % n_head != 0)
    return cfg.error("hidden_size is not a multiple of num_attention_heads");
  const int64_t hd = kv_channels ? *kv_channels : n_embd / n_head;
  if (rope_ratio && *rope_ratio <= 0) return cfg.error("'rope_ratio' must be positive");

  m[a + ".embedding_length"] = u32v(n_embd);
  m[a + ".block_count"] = u32v(n_layer);
  m[a + ".feed_forward_length"] = u32v(n_ff);
  m[a + ".attention.head_count"] = u32v(n_head);
  m[a + ".attention.head_count_kv"] = u32v(n_head_kv);
  m[a + ".attention.key_length"] = u32v(hd);
  m[a + ".attention.value_length"] = u32v(hd);
  if (n_ctx) m[a + ".context_length"] = u32v(*n_ctx);
  m[a + ".vocab_size"] = u32v(*n_vocab);
  m[a + ".attention.layer_norm_rms_epsilon"] = f32v(eps.value_or(1e-5));
  m[a + ".rope.freq_base"] = f32v(10000.0 * rope_ratio.value_or(1.0));
  m[a + ".rope.dimension_count"] = u32v(hd / 2);  // ChatGLM rotates half of each head
  m["edgeglm.rope.neox"] = MetaValue::from_bool(false);
  out.tie_word_embeddings = tie.value_or(false);
  return Status::ok();
}

Result<HfConfig> parse_config_impl(const std::string& text, const std::string& name) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::error(name + ": not valid JSON");
  if (!j.is_object()) return Status::error(name + ": not a JSON object");
  const Cfg cfg(j, name);
  HfConfig out;
  EG_TRY(pick_architecture(j, cfg, out));
  out.meta["general.architecture"] = MetaValue::from_string(out.arch);
  if (out.arch == "chatglm") {
    EG_TRY(chatglm_config(cfg, out));
  } else {
    EG_TRY(llama_like_config(cfg, out));
  }
  return out;
}

// "prefix<N>.rest" -> N and rest; false when `s` does not have that form.
bool split_layer(const std::string& s, const std::string& prefix, int64_t& layer,
                 std::string& rest) {
  if (s.compare(0, prefix.size(), prefix) != 0) return false;
  size_t k = prefix.size();
  int64_t n = 0;
  const size_t start = k;
  while (k < s.size() && s[k] >= '0' && s[k] <= '9' && k - start < 7) n = n * 10 + (s[k++] - '0');
  if (k == start || k >= s.size() || s[k] != '.') return false;
  layer = n;
  rest = s.substr(k + 1);
  return true;
}

struct NamePair {
  const char* from;
  const char* to;
};

const char* lookup(const NamePair* table, size_t n, const std::string& key) {
  for (size_t k = 0; k < n; ++k)
    if (key == table[k].from) return table[k].to;
  return nullptr;
}

}  // namespace

Result<HfConfig> parse_hf_config(const std::string& json_text, const std::string& name) {
  try {
    return parse_config_impl(json_text, name);
  } catch (const std::exception& e) {
    return Status::error(name + ": cannot read config: " + e.what());
  }
}

Result<std::string> map_hf_tensor_name(const std::string& hf_name, const std::string& arch) {
  static constexpr NamePair kLlamaGlobal[] = {{"model.embed_tokens.weight", "token_embd.weight"},
                                              {"model.norm.weight", "output_norm.weight"},
                                              {"lm_head.weight", "output.weight"}};
  static constexpr NamePair kLlamaLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.o_proj.bias", "attn_output.bias"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
  };
  static constexpr NamePair kSplitMlp[] = {{"mlp.gate_proj.weight", "ffn_gate.weight"},
                                           {"mlp.up_proj.weight", "ffn_up.weight"},
                                           {"mlp.down_proj.weight", "ffn_down.weight"}};
  static constexpr NamePair kFusedMlp[] = {{"mlp.gate_up_proj.weight", "ffn_up.weight"},
                                           {"mlp.down_proj.weight", "ffn_down.weight"}};
  static constexpr NamePair kGlm4Extra[] = {
      {"post_self_attn_layernorm.weight", "post_attention_norm.weight"},
      {"post_mlp_layernorm.weight", "post_ffw_norm.weight"}};
  static constexpr NamePair kChatGlmGlobal[] = {
      {"transformer.embedding.word_embeddings.weight", "token_embd.weight"},
      {"transformer.encoder.final_layernorm.weight", "output_norm.weight"},
      {"transformer.output_layer.weight", "output.weight"}};
  static constexpr NamePair kChatGlmLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attention.query_key_value.weight", "attn_qkv.weight"},
      {"self_attention.query_key_value.bias", "attn_qkv.bias"},
      {"self_attention.dense.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.dense_h_to_4h.weight", "ffn_up.weight"},
      {"mlp.dense_4h_to_h.weight", "ffn_down.weight"}};
#define EG_TABLE(t) t, sizeof(t) / sizeof((t)[0])

  if (hf_name.size() >= 9 && hf_name.compare(hf_name.size() - 9, 9, ".inv_freq") == 0)
    return std::string();  // rotary buffers are recomputed by the model
  const bool chatglm = arch == "chatglm";
  int64_t layer = 0;
  std::string rest;
  const char* to = nullptr;
  if (chatglm) {
    to = lookup(EG_TABLE(kChatGlmGlobal), hf_name);
    if (!to && split_layer(hf_name, "transformer.encoder.layers.", layer, rest))
      to = lookup(EG_TABLE(kChatGlmLayer), rest);
  } else {
    to = lookup(EG_TABLE(kLlamaGlobal), hf_name);
    if (!to && split_layer(hf_name, "model.layers.", layer, rest)) {
      const bool glm = arch == "glm" || arch == "glm4";
      if (arch == "glm4" && rest == "post_attention_layernorm.weight") to = "ffn_norm.weight";
      if (!to) to = lookup(EG_TABLE(kLlamaLayer), rest);
      if (!to) to = glm ? lookup(EG_TABLE(kFusedMlp), rest) : lookup(EG_TABLE(kSplitMlp), rest);
      if (!to && arch == "glm4") to = lookup(EG_TABLE(kGlm4Extra), rest);
    }
  }
#undef EG_TABLE
  if (!to)
    return Status::error("tensor '" + hf_name + "' is not known for architecture " + arch);
  if (!rest.empty()) return "blk." + std::to_string(layer) + "." + to;
  return std::string(to);
}

namespace {

// Shard file names from model.safetensors.index.json ("weight_map": {tensor: file}), in order
// of first appearance, plus the tensor -> file map to check against.
Status read_index(const std::string& path, std::vector<std::string>& shards,
                  std::map<std::string, std::string>& weight_map) {
  EG_ASSIGN_OR_RETURN(std::string text, read_text_file(path, kMaxIndexBytes));
  try {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Status::error(path + ": not a JSON object");
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object() || wm->empty())
      return Status::error(path + ": missing or empty 'weight_map'");
    std::set<std::string> seen;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string())
        return Status::error(path + ": weight_map entry '" + it.key() + "' is not a string");
      const std::string file = it->get<std::string>();
      if (file.empty() || file.find('/') != std::string::npos || file[0] == '.')
        return Status::error(path + ": shard name '" + file + "' must be a plain file name");
      weight_map[it.key()] = file;
      if (seen.insert(file).second) shards.push_back(file);
    }
  } catch (const std::exception& e) {
    return Status::error(path + ": " + e.what());
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<ModelFile>> read_hf_dir(const std::string& dir) {
  const fs::path root(dir);
  const std::string config_path = (root / "config.json").string();
  std::error_code ec;
  if (!fs::exists(config_path, ec))
    return Status::error(dir + ": not a Hugging Face model directory (no config.json)");
  EG_ASSIGN_OR_RETURN(std::string config_text, read_text_file(config_path, kMaxConfigBytes));
  EG_ASSIGN_OR_RETURN(HfConfig cfg, parse_hf_config(config_text, config_path));

  std::vector<std::string> shards;
  std::map<std::string, std::string> weight_map;
  const std::string index_path = (root / "model.safetensors.index.json").string();
  if (fs::exists(root / "model.safetensors", ec)) {
    shards.push_back("model.safetensors");
  } else if (fs::exists(index_path, ec)) {
    EG_TRY(read_index(index_path, shards, weight_map));
  } else {
    return Status::error(dir + ": no model.safetensors or model.safetensors.index.json");
  }

  auto mf = std::make_unique<ModelFile>();
  mf->path = dir;
  mf->kind = FileKind::kSafetensors;
  mf->alignment = 1;
  mf->meta = std::move(cfg.meta);
  mf->meta["general.name"] = MetaValue::from_string(root.filename().empty()
                                                        ? root.parent_path().filename().string()
                                                        : root.filename().string());
  EG_ASSIGN_OR_RETURN(const int64_t n_layer, [&]() -> Result<int64_t> {
    EG_ASSIGN_OR_RETURN(auto v, mf->get_int(cfg.arch + ".block_count"));
    return v.value_or(0);
  }());

  std::unordered_set<std::string> hf_seen;
  std::unordered_set<std::string> gguf_seen;
  for (const std::string& shard : shards) {
    const std::string shard_path = (root / shard).string();
    EG_ASSIGN_OR_RETURN(auto map, MappedFile::open(shard_path));
    EG_ASSIGN_OR_RETURN(SafetensorsFile sf,
                        parse_safetensors(map->data(), map->size(), shard_path));
    mf->file_bytes += map->size();
    for (TensorInfo& t : sf.tensors) {
      if (!hf_seen.insert(t.name).second)
        return Status::error(shard_path + ": tensor '" + t.name + "' appears in two shards");
      if (!weight_map.empty()) {
        auto it = weight_map.find(t.name);
        if (it != weight_map.end() && it->second != shard)
          return Status::error(shard_path + ": tensor '" + t.name + "' is listed in " +
                               index_path + " under " + it->second);
      }
      auto mapped = map_hf_tensor_name(t.name, cfg.arch);
      if (!mapped.ok()) return mapped.status().with_context(shard_path);
      if (mapped->empty()) continue;
      if (cfg.tie_word_embeddings && *mapped == "output.weight") continue;
      if (mapped->compare(0, 4, "blk.") == 0) {
        const int64_t layer = std::stoll(mapped->substr(4));  // digits checked by the mapper
        if (layer >= n_layer)
          return Status::error(shard_path + ": tensor '" + t.name + "' is for layer " +
                               std::to_string(layer) + " but config.json has " +
                               std::to_string(n_layer) + " layers");
      }
      if (!gguf_seen.insert(*mapped).second)
        return Status::error(shard_path + ": two tensors map to '" + *mapped + "'");
      t.name = std::move(*mapped);
      mf->tensors.push_back(std::move(t));
    }
    for (auto& o : sf.owned) mf->owned.push_back(std::move(o));
    mf->maps.push_back(std::move(map));
  }
  for (const auto& [name, file] : weight_map)
    if (!hf_seen.count(name))
      return Status::error(index_path + ": tensor '" + name + "' is not in shard " + file);
  if (!gguf_seen.count("token_embd.weight"))
    return Status::error(dir + ": no token embedding tensor");
  mf->rebuild_index();
  return mf;
}

}  // namespace edgeglm::formats
