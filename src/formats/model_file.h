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
// Bytes of one value of a fixed-size type (numbers, Bool); 0 for String and Array.
size_t meta_type_size(MetaType t);

// Arrays are stored by element kind, so a vocabulary costs about what its bytes on disk do
// (a MetaValue per element was ~100 bytes: 16 MiB for a 49K-token BPE vocab):
//  * elem_type String           -> strs
//  * elem_type numeric or Bool  -> raw: the elements' little-endian bytes exactly as in GGUF
//                                  (meta_type_size(elem_type) bytes each)
//  * elem_type Array (nested)   -> arr
// from_array() with an element whose type is not elem_type keeps all elements in `arr` so the
// writer can reject the value; readers see only well-formed arrays.
struct MetaValue {
  MetaType type = MetaType::U32;
  uint64_t u = 0;     // unsigned ints and bool
  int64_t i = 0;      // signed ints
  double f = 0;       // floats
  std::string s;      // String
  MetaType elem_type = MetaType::U8;  // Array: element type
  std::vector<MetaValue> arr;         // Array of arrays: elements (see above)
  std::vector<std::string> strs;      // Array of strings: elements
  std::vector<uint8_t> raw;           // Array of numbers/bools: (array_size() * elem size) bytes

  static MetaValue from_u32(uint32_t v);
  static MetaValue from_i32(int32_t v);
  static MetaValue from_u64(uint64_t v);
  static MetaValue from_f32(float v);
  static MetaValue from_bool(bool v);
  static MetaValue from_string(std::string v);
  // Any element type; elements are moved into the compact store that fits elem.
  static MetaValue from_array(MetaType elem, std::vector<MetaValue> values);
  static MetaValue from_strings(std::vector<std::string> values);
  static MetaValue from_i32s(const std::vector<int32_t>& values);
  static MetaValue from_f32s(const std::vector<float>& values);

  // Array accessors (k < array_size()). element() builds element k as a standalone MetaValue;
  // str_at / int_at / float_at avoid that for the common flat cases. int_at and float_at mirror
  // as_int / as_double of the element (nullopt for strings, arrays, bools, u64 > INT64_MAX).
  size_t array_size() const;
  MetaValue element(size_t k) const;
  const std::string& str_at(size_t k) const { return strs[k]; }  // elem_type String only
  std::optional<int64_t> int_at(size_t k) const;
  std::optional<double> float_at(size_t k) const;

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
  std::string shape_string() const;  // "[ne0, ne1, ...]" as stored
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
  // Replaces the data of t (one of `tensors`) with `values` as F32 of the given shape (values.size()
  // elements), in a buffer the file owns (quantize's in-memory model edits).
  void replace_with_f32(TensorInfo& t, const std::vector<float>& values, std::vector<int64_t> shape);

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
