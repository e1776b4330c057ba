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

  // Quantization (edgeglm quantize) replaces the rule above:
  //  tensor_type: the type of each output tensor (any type with a reference quantizer); tensors
  //    whose type changes are decoded to float and re-encoded.
  //  quantize_matrix: encodes a whole (rows, cols) float matrix into `type` (calibrated rounding,
  //    threads); null: quant::quantize_row row by row. Rows are in the input file's order (q/k
  //    rows of Hugging Face llama files are permuted afterwards, which per-row formats allow).
  std::function<DType(const formats::TensorInfo&)> tensor_type;
  std::function<Status(const std::string& name, DType type, const float* w, int64_t rows,
                       int64_t cols, uint8_t* out)>
      quantize_matrix;
  formats::Metadata extra_meta;    // keys set (or replaced) in the output after conversion
  int64_t file_type = -1;          // general.file_type to write; < 0: from matrix_type
};

// Rows [r0, r1) of t (rows of shape[0] elements, a type quant:: decodes) as floats, row r0 at out.
void dequantize_rows(const formats::TensorInfo& t, int64_t r0, int64_t r1, float* out);

// progress(tensor_index, n_tensors); may be null. The output is written to a temporary file and
// renamed into place, so a failure never leaves a partial file under `out_path`.
Status convert_to_gguf(const formats::ModelFile& in, const std::string& out_path,
                       const ConvertOptions& opts,
                       const std::function<void(size_t, size_t)>& progress = nullptr);

}  // namespace edgeglm::model
