#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format_test_util.h"
#include "formats/safetensors/hf_loader.h"
#include "formats/safetensors/safetensors_reader.h"

namespace edgeglm::formats {
namespace {

using nlohmann::json;
using test::Bytes;

struct StTensor {
  std::string name;
  std::string dtype;  // F32 / F16 / BF16 / anything for error tests
  std::vector<int64_t> shape;  // safetensors order (outermost first)
};

size_t elem_bytes(const std::string& dt) { return dt == "F32" ? 4 : 2; }

// A safetensors image; tensor k's bytes are all (k + 1). `pad` extra header bytes shift the data.
std::string make_safetensors(const std::vector<StTensor>& ts, size_t pad = 0,
                             const json& metadata = json()) {
  json h = json::object();
  std::string data;
  for (size_t k = 0; k < ts.size(); ++k) {
    size_t n = elem_bytes(ts[k].dtype);
    for (int64_t d : ts[k].shape) n *= size_t(d);
    h[ts[k].name] = {{"dtype", ts[k].dtype},
                     {"shape", ts[k].shape},
                     {"data_offsets", {data.size(), data.size() + n}}};
    data.append(n, char(k + 1));
  }
  if (!metadata.is_null()) h["__metadata__"] = metadata;
  std::string hs = h.dump();
  while ((hs.size() + 8) % 8 != pad % 8) hs += ' ';
  Bytes b;
  b.u64(hs.size()).raw(hs).raw(data);
  return b.b;
}

Result<SafetensorsFile> parse(const std::string& s, const std::string& name = "m.safetensors") {
  return parse_safetensors(reinterpret_cast<const uint8_t*>(s.data()), s.size(), name);
}

std::string error_of(const std::string& s) {
  auto r = parse(s);
  if (r.ok()) return "OK";
  EXPECT_EQ(r.status().message().rfind("m.safetensors: ", 0), 0u) << r.status().message();
  return r.status().message();
}

std::string with_header(const std::string& header_json, size_t data_bytes = 64) {
  Bytes b;
  b.u64(header_json.size()).raw(header_json).raw(std::string(data_bytes, '\0'));
  return b.b;
}

TEST(Safetensors, ParsesShapesDtypesAndMetadata) {
  std::string s = make_safetensors({{"a", "F32", {2, 3}}, {"b", "BF16", {4}}, {"c", "F16", {}}},
                                   0, {{"format", "pt"}});
  auto r = parse(s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->tensors.size(), 3u);
  const TensorInfo* a = nullptr;
  const TensorInfo* b = nullptr;
  const TensorInfo* c = nullptr;
  for (const auto& t : r->tensors) (t.name == "a" ? a : t.name == "b" ? b : c) = &t;
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 2}));  // ggml order
  EXPECT_EQ(a->dtype, DType::F32);
  EXPECT_EQ(a->nbytes, 24u);
  EXPECT_EQ(a->data[0], 1);
  EXPECT_EQ(b->dtype, DType::BF16);
  EXPECT_EQ(b->data[7], 2);
  EXPECT_EQ(c->shape, (std::vector<int64_t>{1}));  // scalar
  EXPECT_EQ(r->metadata.at("format"), "pt");
  EXPECT_TRUE(r->owned.empty());
}

TEST(Safetensors, CopiesMisalignedTensors) {
  std::string s = make_safetensors({{"a", "F32", {2}}, {"b", "F32", {3}}}, 1);
  auto r = parse(s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  for (const auto& t : r->tensors) {
    EXPECT_EQ(uintptr_t(t.data) % 4, 0u) << t.name;
    EXPECT_EQ(t.data[0], t.name == "a" ? 1 : 2);
  }
  EXPECT_EQ(r->owned.size(), 2u);
}

TEST(Safetensors, RejectsHostileHeaders) {
  EXPECT_NE(error_of("abc").find("too small"), std::string::npos);
  Bytes huge;
  huge.u64(uint64_t(1) << 63).raw("{}");
  EXPECT_NE(error_of(huge.b).find("exceeds the file size"), std::string::npos);
  EXPECT_NE(error_of(with_header("{\"a\": ")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(with_header("[1, 2]")).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})"))
                .find("'I64', which is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})"))
                .find("need 12 bytes"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [64, 72]}})"))
                .find("extends past the end"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})"))
                .find("invalid data_offsets"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})"))
                .find("not a positive integer"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})"))
                .find("not a positive integer"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [1,1,1,1,2], "data_offsets": [0, 8]}})"))
                .find("5 dimensions"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}})"))
                .find("overflow"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})"))
                .find("overlaps"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                     "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})"))
                .find("duplicate tensor name 'a'"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a": 5})")).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"__metadata__": {"x": 1}})")).find("not a string"),
            std::string::npos);
  EXPECT_EQ(error_of(with_header("{}")), "OK");
}

// --- Hugging Face directories --------------------------------------------------------------

std::string make_dir(const std::string& name, const json& config,
                     const std::vector<StTensor>& tensors) {
  const std::string dir = test::temp_path(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  test::write_file(dir + "/config.json", config.dump(2));
  if (!tensors.empty()) test::write_file(dir + "/model.safetensors", make_safetensors(tensors));
  return dir;
}

std::vector<StTensor> llama_tensors(int layers, bool with_lm_head, bool bias) {
  // hidden 8, 2 heads (head_dim 4), 1 kv head, ff 12, vocab 10
  std::vector<StTensor> t = {{"model.embed_tokens.weight", "F32", {10, 8}},
                             {"model.norm.weight", "F32", {8}}};
  if (with_lm_head) t.push_back({"lm_head.weight", "F32", {10, 8}});
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", "F32", {8}});
    t.push_back({p + "self_attn.q_proj.weight", "BF16", {8, 8}});
    t.push_back({p + "self_attn.k_proj.weight", "BF16", {4, 8}});
    t.push_back({p + "self_attn.v_proj.weight", "BF16", {4, 8}});
    if (bias) {
      t.push_back({p + "self_attn.q_proj.bias", "F32", {8}});
      t.push_back({p + "self_attn.k_proj.bias", "F32", {4}});
      t.push_back({p + "self_attn.v_proj.bias", "F32", {4}});
    }
    t.push_back({p + "self_attn.o_proj.weight", "BF16", {8, 8}});
    t.push_back({p + "post_attention_layernorm.weight", "F32", {8}});
    t.push_back({p + "mlp.gate_proj.weight", "F16", {12, 8}});
    t.push_back({p + "mlp.up_proj.weight", "F16", {12, 8}});
    t.push_back({p + "mlp.down_proj.weight", "F16", {8, 12}});
    t.push_back({p + "self_attn.rotary_emb.inv_freq", "F32", {2}});
  }
  return t;
}

json llama_config() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", 8},
          {"num_hidden_layers", 2},
          {"intermediate_size", 12},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 1},
          {"max_position_embeddings", 128},
          {"vocab_size", 10},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"tie_word_embeddings", false},
          {"rope_scaling",
           {{"rope_type", "llama3"},
            {"factor", 8.0},
            {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0},
            {"original_max_position_embeddings", 8192}}}};
}

TEST(HfDir, LlamaNamesAndMetadata) {
  const std::string dir = make_dir("hf_llama", llama_config(), llama_tensors(2, true, false));
  auto r = read_hf_dir(dir);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelFile& mf = **r;
  EXPECT_EQ(mf.kind, FileKind::kSafetensors);
  EXPECT_EQ(mf.architecture(), "llama");
  EXPECT_EQ(mf.get_string("general.name"), "hf_llama");
  EXPECT_EQ(*mf.get_int("llama.embedding_length").value(), 8);
  EXPECT_EQ(*mf.get_int("llama.block_count").value(), 2);
  EXPECT_EQ(*mf.get_int("llama.feed_forward_length").value(), 12);
  EXPECT_EQ(*mf.get_int("llama.attention.head_count").value(), 2);
  EXPECT_EQ(*mf.get_int("llama.attention.head_count_kv").value(), 1);
  EXPECT_EQ(*mf.get_int("llama.context_length").value(), 128);
  EXPECT_EQ(*mf.get_int("llama.vocab_size").value(), 10);
  EXPECT_EQ(*mf.get_int("llama.rope.dimension_count").value(), 4);
  EXPECT_EQ(mf.get("llama.attention.key_length"), nullptr);  // no head_dim in config
  EXPECT_FLOAT_EQ(float(*mf.get_float("llama.rope.freq_base").value()), 500000.0f);
  EXPECT_FLOAT_EQ(float(*mf.get_float("llama.attention.layer_norm_rms_epsilon").value()), 1e-5f);
  EXPECT_EQ(mf.get_string("llama.rope.scaling.type"), "llama3");
  EXPECT_FLOAT_EQ(float(*mf.get_float("llama.rope.scaling.factor").value()), 8.0f);
  EXPECT_FLOAT_EQ(float(*mf.get_float("llama.rope.scaling.low_freq_factor").value()), 1.0f);
  EXPECT_FLOAT_EQ(float(*mf.get_float("llama.rope.scaling.high_freq_factor").value()), 4.0f);
  EXPECT_EQ(*mf.get_int("llama.rope.scaling.original_context_length").value(), 8192);
  ASSERT_NE(mf.get("edgeglm.rope.neox"), nullptr);
  EXPECT_EQ(mf.get("edgeglm.rope.neox")->type, MetaType::Bool);
  EXPECT_EQ(mf.get("edgeglm.rope.neox")->u, 1u);

  EXPECT_EQ(mf.tensors.size(), 3u + 2 * 9);  // inv_freq dropped
  const TensorInfo* q = mf.find("blk.1.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::BF16);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{8, 8}));
  const TensorInfo* down = mf.find("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{12, 8}));
  EXPECT_EQ(down->dtype, DType::F16);
  EXPECT_NE(mf.find("output.weight"), nullptr);
  EXPECT_NE(mf.find("output_norm.weight"), nullptr);
  EXPECT_EQ(mf.find("token_embd.weight")->shape, (std::vector<int64_t>{8, 10}));
  EXPECT_EQ(mf.find("token_embd.weight")->data[0], 1);  // first tensor in the file
  EXPECT_NE(mf.find("blk.0.ffn_gate.weight"), nullptr);
  EXPECT_NE(mf.find("blk.0.ffn_up.weight"), nullptr);
  EXPECT_NE(mf.find("blk.0.ffn_norm.weight"), nullptr);
  EXPECT_NE(mf.find("blk.0.attn_output.weight"), nullptr);
}

TEST(HfDir, Qwen2TiedWithBiases) {
  json c = llama_config();
  c["architectures"] = {"Qwen2ForCausalLM"};
  c["model_type"] = "qwen2";
  c["tie_word_embeddings"] = true;
  c.erase("rope_scaling");
  c["rope_theta"] = 1000000.0;
  const std::string dir = make_dir("hf_qwen2", c, llama_tensors(2, true, true));
  auto r = read_hf_dir(dir);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelFile& mf = **r;
  EXPECT_EQ(mf.architecture(), "qwen2");
  EXPECT_EQ(mf.find("output.weight"), nullptr);  // tied: lm_head dropped
  EXPECT_NE(mf.find("blk.1.attn_k.bias"), nullptr);
  EXPECT_EQ(mf.find("blk.1.attn_k.bias")->shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(*mf.get_int("qwen2.block_count").value(), 2);
  EXPECT_FLOAT_EQ(float(*mf.get_float("qwen2.rope.freq_base").value()), 1e6f);
  EXPECT_EQ(mf.get("qwen2.rope.scaling.type"), nullptr);
  EXPECT_EQ(mf.get("edgeglm.rope.neox")->u, 1u);
}

TEST(HfDir, Glm4FusedMlpExtraNormsPartialRope) {
  json c = {{"architectures", {"Glm4ForCausalLM"}}, {"model_type", "glm4"},
            {"hidden_size", 8},  {"num_hidden_layers", 1},
            {"intermediate_size", 12}, {"num_attention_heads", 2},
            {"num_key_value_heads", 2}, {"head_dim", 8},
            {"max_position_embeddings", 64}, {"vocab_size", 10},
            {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 10000.0},
                                 {"partial_rotary_factor", 0.5}}}};
  std::vector<StTensor> t = {{"model.embed_tokens.weight", "BF16", {10, 8}},
                             {"model.norm.weight", "BF16", {8}},
                             {"lm_head.weight", "BF16", {10, 8}}};
  const std::string p = "model.layers.0.";
  for (const char* n : {"input_layernorm", "post_self_attn_layernorm", "post_attention_layernorm",
                        "post_mlp_layernorm"})
    t.push_back({p + n + ".weight", "BF16", {8}});
  t.push_back({p + "self_attn.q_proj.weight", "BF16", {16, 8}});
  t.push_back({p + "self_attn.q_proj.bias", "BF16", {16}});
  t.push_back({p + "mlp.gate_up_proj.weight", "BF16", {24, 8}});
  t.push_back({p + "mlp.down_proj.weight", "BF16", {8, 12}});
  auto r = read_hf_dir(make_dir("hf_glm4", c, t));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelFile& mf = **r;
  EXPECT_EQ(mf.architecture(), "glm4");
  EXPECT_EQ(*mf.get_int("glm4.rope.dimension_count").value(), 4);  // 8 * 0.5
  EXPECT_EQ(*mf.get_int("glm4.attention.key_length").value(), 8);
  EXPECT_EQ(*mf.get_int("glm4.attention.value_length").value(), 8);
  EXPECT_EQ(mf.get("edgeglm.rope.neox")->u, 0u);
  EXPECT_EQ(mf.get("glm4.rope.scaling.type"), nullptr);  // "default" adds nothing
  EXPECT_NE(mf.find("blk.0.post_attention_norm.weight"), nullptr);
  EXPECT_NE(mf.find("blk.0.ffn_norm.weight"), nullptr);
  EXPECT_NE(mf.find("blk.0.post_ffw_norm.weight"), nullptr);
  EXPECT_NE(mf.find("blk.0.attn_q.bias"), nullptr);
  const TensorInfo* up = mf.find("blk.0.ffn_up.weight");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->shape, (std::vector<int64_t>{8, 24}));  // [n_embd, 2*ff]
  EXPECT_EQ(mf.find("blk.0.ffn_gate.weight"), nullptr);
  EXPECT_NE(mf.find("output.weight"), nullptr);

  // GlmForCausalLM: post_attention_layernorm is the ffn norm; gate_up_proj fused too.
  EXPECT_EQ(map_hf_tensor_name("model.layers.3.mlp.gate_up_proj.weight", "glm").value(),
            "blk.3.ffn_up.weight");
  EXPECT_EQ(map_hf_tensor_name("model.layers.3.post_attention_layernorm.weight", "glm").value(),
            "blk.3.ffn_norm.weight");
  EXPECT_FALSE(map_hf_tensor_name("model.layers.3.post_mlp_layernorm.weight", "glm").ok());
  EXPECT_FALSE(map_hf_tensor_name("model.layers.3.mlp.gate_up_proj.weight", "llama").ok());
}

TEST(HfDir, ChatGlmConfigAndNames) {
  json c = {{"architectures", {"ChatGLMModel"}}, {"model_type", "chatglm"},
            {"hidden_size", 64}, {"num_layers", 2}, {"ffn_hidden_size", 96},
            {"num_attention_heads", 4}, {"multi_query_attention", true},
            {"multi_query_group_num", 2}, {"kv_channels", 16}, {"layernorm_epsilon", 1.5625e-07},
            {"padded_vocab_size", 100}, {"seq_length", 8192}, {"rope_ratio", 500},
            {"rmsnorm", true}};
  auto cfg = parse_hf_config(c.dump(), "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const Metadata& m = cfg->meta;
  EXPECT_EQ(cfg->arch, "chatglm");
  EXPECT_EQ(m.at("chatglm.block_count").u, 2u);
  EXPECT_EQ(m.at("chatglm.attention.head_count_kv").u, 2u);
  EXPECT_EQ(m.at("chatglm.attention.key_length").u, 16u);
  EXPECT_EQ(m.at("chatglm.rope.dimension_count").u, 8u);
  EXPECT_EQ(m.at("chatglm.vocab_size").u, 100u);
  EXPECT_EQ(m.at("chatglm.context_length").u, 8192u);
  EXPECT_FLOAT_EQ(float(m.at("chatglm.rope.freq_base").f), 5e6f);
  EXPECT_FLOAT_EQ(float(m.at("chatglm.attention.layer_norm_rms_epsilon").f), 1.5625e-07f);
  EXPECT_EQ(m.at("edgeglm.rope.neox").u, 0u);

  auto map = [](const std::string& n) { return map_hf_tensor_name(n, "chatglm").value(); };
  EXPECT_EQ(map("transformer.embedding.word_embeddings.weight"), "token_embd.weight");
  EXPECT_EQ(map("transformer.output_layer.weight"), "output.weight");
  EXPECT_EQ(map("transformer.encoder.final_layernorm.weight"), "output_norm.weight");
  EXPECT_EQ(map("transformer.encoder.layers.1.self_attention.query_key_value.weight"),
            "blk.1.attn_qkv.weight");
  EXPECT_EQ(map("transformer.encoder.layers.1.self_attention.query_key_value.bias"),
            "blk.1.attn_qkv.bias");
  EXPECT_EQ(map("transformer.encoder.layers.0.self_attention.dense.weight"),
            "blk.0.attn_output.weight");
  EXPECT_EQ(map("transformer.encoder.layers.0.mlp.dense_h_to_4h.weight"), "blk.0.ffn_up.weight");
  EXPECT_EQ(map("transformer.encoder.layers.0.mlp.dense_4h_to_h.weight"),
            "blk.0.ffn_down.weight");
  EXPECT_EQ(map("transformer.encoder.layers.0.post_attention_layernorm.weight"),
            "blk.0.ffn_norm.weight");
  EXPECT_EQ(map("transformer.rotary_pos_emb.inv_freq"), "");
  c["rmsnorm"] = false;
  EXPECT_FALSE(parse_hf_config(c.dump(), "config.json").ok());
}

TEST(HfDir, ConfigErrorsNameTheFileAndKey) {
  auto err = [](const json& c) {
    auto r = parse_hf_config(c.dump(), "/m/config.json");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().message().rfind("/m/config.json: ", 0), 0u) << r.status().message();
    return r.ok() ? std::string() : r.status().message();
  };
  json c = llama_config();
  c["hidden_size"] = "eight";
  EXPECT_NE(err(c).find("'hidden_size' must be an integer"), std::string::npos);
  c = llama_config();
  c.erase("num_hidden_layers");
  EXPECT_NE(err(c).find("missing 'num_hidden_layers'"), std::string::npos);
  c = llama_config();
  c["architectures"] = {"GPT2LMHeadModel"};
  c["model_type"] = "gpt2";
  EXPECT_NE(err(c).find("unsupported architecture [GPT2LMHeadModel]"), std::string::npos);
  c = llama_config();
  c["num_key_value_heads"] = 3;
  EXPECT_NE(err(c).find("num_key_value_heads"), std::string::npos);
  c = llama_config();
  c["rope_scaling"] = {{"type", "linear"}};
  EXPECT_NE(err(c).find("without a 'factor'"), std::string::npos);
  EXPECT_FALSE(parse_hf_config("{not json", "c.json").ok());
  EXPECT_FALSE(parse_hf_config("[]", "c.json").ok());

  // Old-style "type" key and rope_theta inside rope_parameters (transformers 5) both work.
  c = llama_config();
  c.erase("rope_theta");
  c.erase("rope_scaling");
  c["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1234.0}};
  auto r = parse_hf_config(c.dump(), "c.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->meta.at("llama.rope.scaling.type").s, "linear");
  EXPECT_FLOAT_EQ(float(r->meta.at("llama.rope.scaling.factor").f), 2.0f);
  EXPECT_FLOAT_EQ(float(r->meta.at("llama.rope.freq_base").f), 1234.0f);
  c = llama_config();
  c["architectures"] = {"MistralForCausalLM"};
  c["head_dim"] = 16;
  c["rope_scaling"] = {{"type", "linear"}, {"factor", 4}};
  r = parse_hf_config(c.dump(), "c.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->arch, "llama");
  EXPECT_EQ(r->meta.at("llama.rope.scaling.type").s, "linear");
  EXPECT_EQ(r->meta.at("llama.attention.key_length").u, 16u);
  EXPECT_EQ(r->meta.at("llama.rope.dimension_count").u, 16u);
}

TEST(HfDir, DirectoryErrors) {
  const std::string empty = make_dir("hf_empty", llama_config(), {});
  auto r = read_hf_dir(empty);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no model.safetensors"), std::string::npos);

  auto t = llama_tensors(2, true, false);
  t.push_back({"model.layers.0.mlp.mystery.weight", "F32", {2}});
  r = read_hf_dir(make_dir("hf_unknown", llama_config(), t));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.layers.0.mlp.mystery.weight"), std::string::npos);
  EXPECT_NE(r.status().message().find("model.safetensors"), std::string::npos);

  r = read_hf_dir(make_dir("hf_layers", llama_config(), llama_tensors(3, true, false)));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("layer 2"), std::string::npos);
}

TEST(HfDir, ShardedIndex) {
  const std::string dir = make_dir("hf_sharded", llama_config(), {});
  auto all = llama_tensors(2, true, false);
  std::vector<StTensor> s1(all.begin(), all.begin() + 10), s2(all.begin() + 10, all.end());
  test::write_file(dir + "/model-00001-of-00002.safetensors", make_safetensors(s1));
  test::write_file(dir + "/model-00002-of-00002.safetensors", make_safetensors(s2));
  json wm = json::object();
  for (const auto& t : s1) wm[t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : s2) wm[t.name] = "model-00002-of-00002.safetensors";
  test::write_file(dir + "/model.safetensors.index.json",
                   json{{"metadata", {{"total_size", 1}}}, {"weight_map", wm}}.dump());
  auto r = read_hf_dir(dir);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->tensors.size(), 21u);
  EXPECT_EQ((*r)->maps.size(), 2u);
  EXPECT_NE((*r)->find("blk.1.ffn_down.weight"), nullptr);

  wm["model.layers.9.mlp.up_proj.weight"] = "model-00002-of-00002.safetensors";
  test::write_file(dir + "/model.safetensors.index.json", json{{"weight_map", wm}}.dump());
  r = read_hf_dir(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.layers.9.mlp.up_proj.weight"), std::string::npos);

  wm.erase("model.layers.9.mlp.up_proj.weight");
  wm[s1[0].name] = "../evil.safetensors";
  test::write_file(dir + "/model.safetensors.index.json", json{{"weight_map", wm}}.dump());
  r = read_hf_dir(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("plain file name"), std::string::npos);
}

}  // namespace
}  // namespace edgeglm::formats
