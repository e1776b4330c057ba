// libFuzzer target: llama2.c checkpoint parsing from memory.
#include <cstddef>
#include <cstdint>

#include "formats/llama2c/llama2c_reader.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeglm::formats;
  auto r = parse_llama2c(data, size, "fuzz.bin");
  if (!r.ok()) {
    if (r.status().message().rfind("fuzz.bin: ", 0) != 0) __builtin_trap();
    return 0;
  }
  edgeglm::fuzz::touch_tensors((*r)->tensors);
  return 0;
}
