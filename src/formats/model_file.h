// The neutral model file: metadata + tensor index, whatever the file format on disk.
//
// Conventions (so every layer above sees one thing):
//  * Metadata keys and value types follow GGUF ("general.architecture", "llama.block_count",
//    "tokenizer.ggml.tokens", ...). Loaders of other formats translate into these keys, so a
//    converted file and the original look the same to the model and tokenizer layers.
//  * Tensor names follow GGUF ("token_embd.weight", "blk.3.attn_q.weight", "output_norm.weight").
//  * Tensor shapes are in ggml order: shape[0] is the innermost (contiguous) dimension.
//  * Tensor data points into a read-only mmap (or into buffers owned by the ModelFile for the
//    rare case a loader must materialise data); it stays valid while the ModelFile lives.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "core/tensor.h"

namespace edgeglm::formats {

// GGUF metadata value type ids (gguf_type).
enum class MetaType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* meta_type_name(MetaType t);

struct MetaValue {
  MetaType type = MetaType::U32;
  uint64_t u = 0;     // unsigned ints and bool
  int64_t i = 0;      // signed ints
  double f = 0;       // floats
  std::string s;      // String
  MetaType elem_type = MetaType::U8;  // Array: element type
  std::vector<MetaValue> arr;         // Array: elements (may themselves be arrays)

  static MetaValue from_u32(uint32_t v);
  static MetaValue from_i32(int32_t v);
  static MetaValue from_u64(uint64_t v);
  static MetaValue from_f32(float v);
  static MetaValue from_bool(bool v);
  static MetaValue from_string(std::string v);
  static MetaValue from_array(MetaType elem, std::vector<MetaValue> values);

  bool is_integer() const;
  bool is_float() const { return type == MetaType::F32 || type == MetaType::F64; }
  // Numeric value as int64 / double whatever the stored integer/float type.
  std::optional<int64_t> as_int() const;
  std::optional<double> as_double() const;
  std::string to_string(size_t max_array_items = 8) const;  // for `edgeglm info`
};

using Metadata = std::map<std::string, MetaValue>;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // ggml order, innermost first; 1..4 dims
  uint64_t offset = 0;         // byte offset within the file's data section (informational)
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;

  int64_t nelements() const;
  TensorView view() const;  // contiguous view; const data is exposed as void* for kernels
};

enum class FileKind { kGguf, kLlama2c, kSafetensors };

class ModelFile {
 public:
  std::string path;  // file or directory as given by the user
  FileKind kind = FileKind::kGguf;
  uint32_t gguf_version = 0;
  uint64_t alignment = 32;
  uint64_t file_bytes = 0;  // total bytes of the file(s) on disk
  Metadata meta;
  std::vector<TensorInfo> tensors;

  const TensorInfo* find(const std::string& name) const;
  void rebuild_index();  // after editing `tensors`

  // Typed metadata lookups. Missing keys give nullopt; a present key of the wrong type is an error.
  const MetaValue* get(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  Result<std::optional<int64_t>> get_int(const std::string& key) const;
  Result<std::optional<double>> get_float(const std::string& key) const;
  std::string architecture() const;  // general.architecture or ""

  // Keeps mapped files / owned buffers alive as long as the ModelFile.
  std::vector<std::shared_ptr<MappedFile>> maps;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> owned;

 private:
  std::unordered_map<std::string, size_t> index_;
};

// Opens any supported model: a .gguf file, a llama2.c checkpoint (.bin; `tokenizer_path` is its
// tokenizer.bin, optional), or a Hugging Face directory (config.json + safetensors + tokenizer.json).
// Every error names the file and what is wrong.
Result<std::unique_ptr<ModelFile>> open_model(const std::string& path,
                                              const std::string& tokenizer_path = "");

}  // namespace edgeglm::formats
