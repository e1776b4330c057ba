// Model conversion to GGUF: any file edgeglm opens (llama2.c, Hugging Face, GGUF) becomes a GGUF
// with full metadata and vocabulary, loadable with no side files (and by llama.cpp for its
// architectures and types).
#pragma once
#include <functional>
#include <string>

#include "core/dtype.h"
#include "core/status.h"
#include "formats/model_file.h"

namespace edgeglm::model {

struct ConvertOptions {
  // Type for 2-D float weight matrices (F32, F16 or BF16). Vectors (norms, biases) stay F32;
  // tensors already quantized are copied unchanged.
  DType matrix_type = DType::F32;
};

// progress(tensor_index, n_tensors); may be null. The output is written to a temporary file and
// renamed into place, so a failure never leaves a partial file under `out_path`.
Status convert_to_gguf(const formats::ModelFile& in, const std::string& out_path,
                       const ConvertOptions& opts,
                       const std::function<void(size_t, size_t)>& progress = nullptr);

}  // namespace edgeglm::model
