// Hugging Face model directories: config.json + model.safetensors (or sharded
// model.safetensors.index.json). The config is translated into GGUF metadata keys and tensor
// names into GGUF names, so the model layer reads HF and GGUF models through the same keys.
//
// Architectures: LlamaForCausalLM / MistralForCausalLM -> "llama", Qwen2ForCausalLM -> "qwen2",
// GlmForCausalLM -> "glm", Glm4ForCausalLM -> "glm4", ChatGLMModel /
// ChatGLMForConditionalGeneration (model_type chatglm) -> "chatglm".
//
// Metadata written ({arch} = the name above; counts u32, reals f32):
//   general.architecture, general.name (directory name)
//   {arch}.embedding_length, .block_count, .feed_forward_length, .attention.head_count,
//   .attention.head_count_kv, .context_length, .vocab_size, .attention.layer_norm_rms_epsilon,
//   .rope.freq_base (rope_theta; chatglm: 10000 * rope_ratio),
//   .rope.dimension_count (head_dim; glm/glm4: head_dim * partial_rotary_factor (default 0.5);
//                          chatglm: kv_channels / 2),
//   .attention.key_length / .attention.value_length (only when config.json has head_dim, or
//                          kv_channels for chatglm; always for glm/glm4, whose head_dim
//                          defaults to 128 and num_key_value_heads to 2 as in transformers)
//   RoPE scaling (from "rope_scaling", or "rope_parameters" as transformers 5 writes it; the
//   type is read from "rope_type" or the older "type"; absent or "default" -> no keys):
//     {arch}.rope.scaling.type    string: "linear", "llama3", "yarn", ... as in the config
//     {arch}.rope.scaling.factor  f32 ("factor")
//     {arch}.rope.scaling.original_context_length  u32 (original_max_position_embeddings)
//     {arch}.rope.scaling.low_freq_factor  f32   (llama3)
//     {arch}.rope.scaling.high_freq_factor f32   (llama3)
//     {arch}.rope.scaling.attn_factor      f32   (yarn "attention_factor", when present)
//     {arch}.rope.scaling.beta_fast / beta_slow f32 (yarn, when present)
//   The model layer must reject scaling types it does not implement.
//   edgeglm.rope.neox  bool: true for llama (HF rotate_half layout: q/k are NOT permuted into
//     GGUF llama's interleaved-pair order) and qwen2 (neox in both HF and GGUF); false for glm,
//     glm4 and chatglm, whose rotary embedding rotates interleaved pairs.
//
// Tensors: model.embed_tokens -> token_embd, model.norm -> output_norm, lm_head -> output
// (dropped when tie_word_embeddings is true), model.layers.N.X -> blk.N.Y with
//   input_layernorm -> attn_norm, self_attn.{q,k,v}_proj -> attn_{q,k,v}, self_attn.o_proj ->
//   attn_output, post_attention_layernorm -> ffn_norm, mlp.{gate,up,down}_proj ->
//   ffn_{gate,up,down}; glm/glm4: mlp.gate_up_proj -> ffn_up (fused: rows [0, ff) are the gate,
//   [ff, 2ff) the up projection; shape [n_embd, 2*ff]); glm4 also post_self_attn_layernorm ->
//   post_attention_norm and post_mlp_layernorm -> post_ffw_norm.
//   chatglm: transformer.embedding.word_embeddings -> token_embd, transformer.output_layer ->
//   output, transformer.encoder.final_layernorm -> output_norm, transformer.encoder.layers.N.
//   {input_layernorm -> attn_norm, self_attention.query_key_value -> attn_qkv (fused q|k|v rows,
//   with bias), self_attention.dense -> attn_output, post_attention_layernorm -> ffn_norm,
//   mlp.dense_h_to_4h -> ffn_up (fused gate|up like glm), mlp.dense_4h_to_h -> ffn_down}.
//   Rotary inv_freq buffers are dropped; any other tensor name is an error.
#pragma once
#include <memory>
#include <string>

#include "formats/model_file.h"

namespace edgeglm::formats {

struct HfConfig {
  std::string hf_architecture;  // e.g. "LlamaForCausalLM"
  std::string arch;             // GGUF architecture name, e.g. "llama"
  bool tie_word_embeddings = false;
  Metadata meta;
};

// Parses config.json text; `name` (the file path) prefixes every error.
Result<HfConfig> parse_hf_config(const std::string& json_text, const std::string& name);

// GGUF name of an HF tensor for `arch`, "" for tensors that are dropped, or an error for names
// the loader does not know.
Result<std::string> map_hf_tensor_name(const std::string& hf_name, const std::string& arch);

// Loads a directory (mmaps every shard). Does not import the tokenizer (open_model does).
Result<std::unique_ptr<ModelFile>> read_hf_dir(const std::string& dir);

}  // namespace edgeglm::formats
