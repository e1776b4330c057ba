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

std::string Tokenizer::piece_after(int32_t prev, int32_t id, bool render_special) const {
  std::string piece = token_to_piece(id, render_special);
  const bool text_start = prev < 0 || prev == bos_id();
  if (text_start && kind() == VocabKind::kSpm && add_space_prefix() && !piece.empty() &&
      piece[0] == ' ')
    piece.erase(0, 1);
  return piece;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  int32_t prev = -1;
  for (int32_t id : ids) {
    out += piece_after(prev, id, render_special);
    prev = id;
  }
  return out;
}

}  // namespace edgeglm::tokenizer
