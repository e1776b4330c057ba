// Byte-level BPE ("gpt2" vocab): a family pre-tokenizer splits the text, each piece's bytes are
// mapped to GPT-2's printable code points and merged by merge rank.
#pragma once
#include <memory>

#include "tokenizer/vocab.h"

namespace edgeglm::tokenizer {

Result<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(const formats::Metadata& meta);

}  // namespace edgeglm::tokenizer
