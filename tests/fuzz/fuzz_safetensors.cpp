// libFuzzer target: the safetensors header parser on the input as a file, the config.json
// translator on the input as text, and the HF tensor-name mapper on every accepted name.
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/safetensors/hf_loader.h"
#include "formats/safetensors/safetensors_reader.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeglm::formats;
  auto st = parse_safetensors(data, size, "fuzz.safetensors");
  if (st.ok()) {
    edgeglm::fuzz::touch_tensors(st->tensors);
    for (const auto& t : st->tensors)
      for (const char* arch : {"llama", "qwen2", "glm", "glm4", "chatglm"})
        (void)map_hf_tensor_name(t.name, arch);
  } else if (st.status().message().rfind("fuzz.safetensors: ", 0) != 0) {
    __builtin_trap();
  }
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = parse_hf_config(text, "config.json");
  if (cfg.ok()) {
    for (const auto& [k, v] : cfg->meta) (void)v.to_string();
  } else if (cfg.status().message().rfind("config.json: ", 0) != 0) {
    __builtin_trap();
  }
  (void)map_hf_tensor_name(text, "llama");
  (void)map_hf_tensor_name(text, "chatglm");
  return 0;
}
