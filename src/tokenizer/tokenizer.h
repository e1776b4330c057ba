// Text <-> token ids, built from GGUF-style tokenizer metadata (tokenizer.ggml.*), which every
// model loader produces (see formats/vocab_import.h). Two algorithms:
//  * "llama": SentencePiece-style BPE over scores with byte fallback (<0xXX> tokens);
//  * "gpt2":  byte-level BPE over merges, after a family-specific pre-tokenizer split
//             (tokenizer.ggml.pre: gpt2, llama-bpe/llama3, qwen2, smollm, glm4/chatglm-bpe, ...).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/model_file.h"

namespace edgeglm::tokenizer {

enum class VocabKind { kSpm, kBpe };

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Errors name the metadata key that is missing or malformed.
  static Result<std::unique_ptr<Tokenizer>> from_metadata(const formats::Metadata& meta);

  virtual VocabKind kind() const = 0;
  virtual int32_t n_vocab() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the vocab has none
  virtual int32_t eos_id() const = 0;
  virtual bool add_bos() const = 0;  // as the metadata says (tokenizer.ggml.add_bos_token), else per kind
  virtual bool add_eos() const = 0;
  // SentencePiece "add dummy prefix": a space is prepended to the text before encoding.
  virtual bool add_space_prefix() const = 0;
  // End of generation: EOS, EOT and the chat end markers of the vocab (<|im_end|>, <|eot_id|>, ...).
  virtual bool is_eog(int32_t id) const = 0;
  virtual bool is_special(int32_t id) const = 0;  // control / user-defined special tokens

  // add_special: BOS (and EOS) around the text as add_bos()/add_eos() say.
  // parse_special: special-token text inside `text` (e.g. "<|im_start|>") becomes its id.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;

  // The bytes token `id` stands for in output text (may be a partial UTF-8 sequence, e.g. a
  // byte-fallback token). SentencePiece's U+2581 becomes a space; special tokens give their text
  // only when render_special is set, else "".
  virtual std::string token_to_piece(int32_t id, bool render_special = false) const = 0;
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;
  // The text `id` adds after `prev` (-1: the start of a text), for streaming: as token_to_piece,
  // but SentencePiece's dummy-prefix space, which the encoder put before the text, is dropped
  // from the piece that follows the start or BOS.
  std::string piece_after(int32_t prev, int32_t id, bool render_special = false) const;

  virtual const std::string& token_text(int32_t id) const = 0;  // raw vocab entry
  virtual std::optional<int32_t> find_token(std::string_view text) const = 0;
};

}  // namespace edgeglm::tokenizer
