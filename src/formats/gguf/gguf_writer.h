// GGUF v3 writer. Takes metadata and tensors (name, dtype, shape in ggml order, data pointer) and
// writes `path.tmp`, fsyncs it, then renames it over `path`, so a failed or interrupted write
// never leaves a half-written model under the final name. Tensor data is aligned to
// general.alignment (default 32); the key is written only when present in the metadata.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "formats/model_file.h"

namespace edgeglm::formats {

Status write_gguf(const std::string& path, const Metadata& meta,
                  const std::vector<TensorInfo>& tensors);

// Streaming form: tensor data is produced when the writer reaches tensor k (in order), so a
// converter needs memory for one tensor, not the model. The producer returns a pointer to exactly
// the tensor's byte size (it may fill and point into `scratch`); `tensors[k].data` is not used.
using TensorProducer =
    std::function<Result<const uint8_t*>(size_t k, std::vector<uint8_t>& scratch)>;
Status write_gguf(const std::string& path, const Metadata& meta,
                  const std::vector<TensorInfo>& tensors, const TensorProducer& produce);
inline Status write_gguf(const std::string& path, const ModelFile& mf) {
  return write_gguf(path, mf.meta, mf.tensors);
}

// Serialises just the header, metadata and tensor infos (no padding, no data) into `out`;
// useful for tests and fuzz seeds. Tensor offsets are assigned with `alignment`.
Status serialize_gguf_header(const Metadata& meta, const std::vector<TensorInfo>& tensors,
                             uint64_t alignment, std::string& out);

}  // namespace edgeglm::formats
