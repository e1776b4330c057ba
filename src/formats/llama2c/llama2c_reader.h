// llama2.c checkpoints (karpathy/llama2.c run.c / export.py), mapped into GGUF llama naming so
// the model layer sees the same thing as for stories260K.gguf. Weights stay in the mmap.
//
// Legacy ("version 0") layout: 7 x int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len} (vocab_size < 0: untied classifier stored last), then fp32 tensors
//   token_embedding (vocab, dim) | rms_att (L, dim) | wq (L, dim, dim) | wk (L, kv_dim, dim) |
//   wv (L, kv_dim, dim) | wo (L, dim, dim) | rms_ffn (L, dim) | w1 (L, hidden, dim) |
//   w2 (L, dim, hidden) | w3 (L, hidden, dim) | rms_final (dim) |
//   freq_cis_real, freq_cis_imag (seq_len * head_size / 2 each, ignored) | [wcls (vocab, dim)]
// Version 1 ("ak42"): u32 magic 0x616b3432, i32 version 1, the same 7 int32, u8
// shared_classifier, zero padding to 256 bytes, then fp32
//   rms_att (L, dim) | rms_ffn (L, dim) | rms_final (dim) | token_embedding (vocab, dim) |
//   wq | wk | wv | wo | w1 | w2 | w3 (each for all layers) | [wcls (vocab, dim)]
// Version 2 (int8 groups) is rejected. (rows, cols) above are row-major: a (rows, cols) weight
// becomes a GGUF tensor of shape [cols, rows]. llama2.c's q/k rows are already in the
// interleaved-pair RoPE order GGUF llama uses, so no permutation is needed.
//
// Metadata written: general.architecture = "llama", general.name (file stem),
// llama.{embedding_length, feed_forward_length, block_count, attention.head_count,
// attention.head_count_kv, context_length, rope.dimension_count (= dim / n_heads), vocab_size}
// as u32, llama.attention.layer_norm_rms_epsilon = 1e-5 and llama.rope.freq_base = 10000 as f32.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "formats/model_file.h"

namespace edgeglm::formats {

constexpr uint32_t kLlama2cMagic = 0x616b3432;  // "ak42"

struct Llama2cHeader {
  int version = 0;  // 0 = legacy, 1 = ak42 fp32
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0;
  int32_t vocab_size = 0, seq_len = 0;  // vocab_size is made positive
  bool shared_classifier = true;
  uint64_t header_bytes = 0;
  uint64_t expected_bytes = 0;  // exact file size the header implies
};

// Reads and validates the header; the file size must be exactly what the header implies.
Result<Llama2cHeader> parse_llama2c_header(const uint8_t* data, size_t size,
                                           const std::string& name);

Result<std::unique_ptr<ModelFile>> parse_llama2c(const uint8_t* data, size_t size,
                                                 const std::string& name);
// mmaps `path`. The tokenizer is not read here (open_model imports it when given).
Result<std::unique_ptr<ModelFile>> read_llama2c(const std::string& path);

}  // namespace edgeglm::formats
