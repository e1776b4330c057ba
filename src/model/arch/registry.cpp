#include "model/arch/arch.h"

namespace edgeglm::model {

const ArchSpec* find_arch(std::string_view gguf_name) {
  for (const ArchSpec* s : {&llama_spec(), &qwen2_spec(), &glm_spec(), &glm4_spec()})
    for (const char* const* n = s->gguf_names; *n; ++n)
      if (gguf_name == *n) return s;
  return nullptr;
}

}  // namespace edgeglm::model
