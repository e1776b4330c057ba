// GGUF v3 writer. Takes metadata and tensors (name, dtype, shape in ggml order, data pointer) and
// writes `path.tmp`, fsyncs it, then renames it over `path`, so a failed or interrupted write
// never leaves a half-written model under the final name. Tensor data is aligned to
// general.alignment (default 32); the key is written only when present in the metadata.
#pragma once
#include <string>
#include <vector>

#include "formats/model_file.h"

namespace edgeglm::formats {

Status write_gguf(const std::string& path, const Metadata& meta,
                  const std::vector<TensorInfo>& tensors);
inline Status write_gguf(const std::string& path, const ModelFile& mf) {
  return write_gguf(path, mf.meta, mf.tensors);
}

// Serialises just the header, metadata and tensor infos (no padding, no data) into `out`;
// useful for tests and fuzz seeds. Tensor offsets are assigned with `alignment`.
Status serialize_gguf_header(const Metadata& meta, const std::vector<TensorInfo>& tensors,
                             uint64_t alignment, std::string& out);

}  // namespace edgeglm::formats
