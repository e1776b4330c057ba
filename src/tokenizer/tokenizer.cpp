#include "tokenizer/tokenizer.h"

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/vocab.h"

namespace edgeglm::tokenizer {

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_metadata(const formats::Metadata& meta) {
  auto model = meta::get_string(meta, "tokenizer.ggml.model", "");
  if (!model.ok()) return model.status();
  const std::string& m = *model;
  if (m.empty()) return Status::error("tokenizer.ggml.model: missing (no vocabulary in the model)");
  if (m == "llama") return make_spm_tokenizer(meta);
  if (m == "gpt2") return make_bpe_tokenizer(meta);
  return Status::error("tokenizer.ggml.model: unsupported tokenizer model '" + m +
                       "' (supported: llama, gpt2)");
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  // SentencePiece's dummy prefix: the space it put before the text is not part of the text.
  bool strip_space = kind() == VocabKind::kSpm && add_space_prefix();
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (piece.empty()) continue;
    if (strip_space && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    out += piece;
  }
  return out;
}

}  // namespace edgeglm::tokenizer
