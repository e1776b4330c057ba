// libFuzzer target: GGUF parsing from memory, then writing the accepted model back out.
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/gguf_writer.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeglm::formats;
  auto r = parse_gguf(data, size, "fuzz.gguf");
  if (!r.ok()) {
    if (r.status().message().rfind("fuzz.gguf: ", 0) != 0) __builtin_trap();
    return 0;
  }
  const ModelFile& mf = **r;
  edgeglm::fuzz::touch_tensors(mf.tensors);
  for (const auto& [key, value] : mf.meta) (void)value.to_string();
  (void)mf.get_int("general.alignment");
  // What we accept we must be able to serialise again, and re-parse to the same header.
  std::string header;
  if (!serialize_gguf_header(mf.meta, mf.tensors, mf.alignment, header).is_ok()) __builtin_trap();
  auto again = parse_gguf(reinterpret_cast<const uint8_t*>(header.data()), header.size(), "h");
  (void)again;
  return 0;
}
