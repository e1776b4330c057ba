// SentencePiece-style BPE ("llama" vocab): merges driven by token scores, with byte fallback.
#pragma once
#include <memory>

#include "tokenizer/vocab.h"

namespace edgeglm::tokenizer {

Result<std::unique_ptr<Tokenizer>> make_spm_tokenizer(const formats::Metadata& meta);

}  // namespace edgeglm::tokenizer
