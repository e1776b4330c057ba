// Importers that turn a tokenizer stored beside a model (llama2.c tokenizer.bin, Hugging Face
// tokenizer.json + tokenizer_config.json) into GGUF tokenizer metadata ("tokenizer.ggml.*",
// "tokenizer.chat_template"), so the tokenizer layer and the GGUF writer see one representation.
#pragma once
#include <string>

#include "core/status.h"
#include "formats/model_file.h"

namespace edgeglm::formats {

// llama2.c tokenizer.bin: int32 max_token_length, then per token: f32 score, int32 len, bytes.
// Writes tokenizer.ggml.model = "llama", tokens, scores, token_type, bos/eos ids (1/2).
Status import_llama2c_tokenizer(const std::string& path, int64_t n_vocab, Metadata& meta);

// Hugging Face tokenizer.json (+ tokenizer_config.json, special_tokens_map.json when present)
// in directory `dir`. Fills tokenizer.ggml.* (model "gpt2" for byte-level BPE, "llama" for
// SentencePiece-style BPE with byte fallback), merges, token types, special-token ids, add_bos,
// the pre-tokenizer name (tokenizer.ggml.pre) and tokenizer.chat_template.
Status import_hf_tokenizer(const std::string& dir, Metadata& meta);

}  // namespace edgeglm::formats
