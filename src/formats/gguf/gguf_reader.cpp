#include "formats/gguf/gguf_reader.h"

#include <algorithm>
#include <limits>
#include <unordered_set>

#include "formats/gguf/byte_reader.h"

namespace edgeglm::formats {
namespace {

// Smallest encoding of one value of each type, used to reject counts the remaining bytes cannot
// possibly hold before reserving memory for them.
uint64_t min_value_bytes(MetaType t) {
  switch (t) {
    case MetaType::U8: case MetaType::I8: case MetaType::Bool: return 1;
    case MetaType::U16: case MetaType::I16: return 2;
    case MetaType::U32: case MetaType::I32: case MetaType::F32: return 4;
    case MetaType::U64: case MetaType::I64: case MetaType::F64: return 8;
    case MetaType::String: return 8;   // u64 length
    case MetaType::Array: return 12;   // u32 type + u64 count
  }
  return 1;
}

bool valid_meta_type(uint32_t id) { return id <= uint32_t(MetaType::F64); }

class GgufParser {
 public:
  GgufParser(const uint8_t* data, size_t size, const std::string& name)
      : r_(data, size), data_(data), name_(name) {}

  Result<std::unique_ptr<ModelFile>> parse();

 private:
  Status error(const std::string& what) const { return Status::error(name_ + ": " + what); }
  Status truncated(const std::string& what) const {
    return error("truncated at byte " + std::to_string(r_.pos()) + " while reading " + what +
                 " (file has " + std::to_string(r_.size()) + " bytes)");
  }
  Status read_string(std::string& out, const std::string& what);
  Status read_value(MetaType type, MetaValue& out, int depth, const std::string& what);
  Status read_header();
  Status read_metadata(ModelFile& mf);
  Status read_tensor_infos(ModelFile& mf);
  Status place_tensors(ModelFile& mf);

  ByteReader r_;
  const uint8_t* data_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t n_values_ = 0;
};

Status GgufParser::read_string(std::string& out, const std::string& what) {
  uint64_t len = 0;
  if (!r_.read(len)) return truncated(what + " length");
  if (len > r_.remaining())
    return error(what + ": string length " + std::to_string(len) + " at byte " +
                 std::to_string(r_.pos() - 8) + " exceeds the " + std::to_string(r_.remaining()) +
                 " bytes left in the file");
  r_.read_bytes(out, size_t(len));
  return Status::ok();
}

Status GgufParser::read_value(MetaType type, MetaValue& out, int depth, const std::string& what) {
  if (++n_values_ > kGgufMaxMetaValues)
    return error(what + ": more than " + std::to_string(kGgufMaxMetaValues) +
                 " metadata values in total");
  out.type = type;
  bool ok = true;
  switch (type) {
    case MetaType::U8: { uint8_t v = 0; ok = r_.read(v); out.u = v; break; }
    case MetaType::I8: { int8_t v = 0; ok = r_.read(v); out.i = v; break; }
    case MetaType::U16: { uint16_t v = 0; ok = r_.read(v); out.u = v; break; }
    case MetaType::I16: { int16_t v = 0; ok = r_.read(v); out.i = v; break; }
    case MetaType::U32: { uint32_t v = 0; ok = r_.read(v); out.u = v; break; }
    case MetaType::I32: { int32_t v = 0; ok = r_.read(v); out.i = v; break; }
    case MetaType::U64: { uint64_t v = 0; ok = r_.read(v); out.u = v; break; }
    case MetaType::I64: { int64_t v = 0; ok = r_.read(v); out.i = v; break; }
    case MetaType::F32: { float v = 0; ok = r_.read(v); out.f = v; break; }
    case MetaType::F64: { double v = 0; ok = r_.read(v); out.f = v; break; }
    case MetaType::Bool: {
      uint8_t v = 0;
      ok = r_.read(v);
      if (ok && v > 1)
        return error(what + ": bool value " + std::to_string(v) + " at byte " +
                     std::to_string(r_.pos() - 1) + " is neither 0 nor 1");
      out.u = v;
      break;
    }
    case MetaType::String:
      return read_string(out.s, what);
    case MetaType::Array: {
      uint32_t elem = 0;
      uint64_t count = 0;
      if (!r_.read(elem) || !r_.read(count)) return truncated(what + " array header");
      if (!valid_meta_type(elem))
        return error(what + ": unknown array element type " + std::to_string(elem));
      out.elem_type = MetaType(elem);
      if (out.elem_type == MetaType::Array && depth + 1 >= kGgufMaxArrayDepth)
        return error(what + ": arrays nested deeper than " + std::to_string(kGgufMaxArrayDepth) +
                     " levels");
      const uint64_t min_bytes = min_value_bytes(out.elem_type);
      if (count > r_.remaining() / min_bytes)
        return error(what + ": array of " + std::to_string(count) + " " +
                     meta_type_name(out.elem_type) + " values cannot fit in the " +
                     std::to_string(r_.remaining()) + " bytes left in the file");
      if (count > kGgufMaxMetaValues - n_values_)
        return error(what + ": array of " + std::to_string(count) + " values exceeds the limit of " +
                     std::to_string(kGgufMaxMetaValues) + " metadata values in total");
      if (out.elem_type == MetaType::Array) {
        out.arr.resize(size_t(count));
        for (uint64_t k = 0; k < count; ++k)
          EG_TRY(read_value(out.elem_type, out.arr[k], depth + 1, what));
        return Status::ok();
      }
      // Flat arrays go to the compact stores (see MetaValue); the checks above already cap count.
      n_values_ += count;
      if (out.elem_type == MetaType::String) {
        out.strs.resize(size_t(count));
        for (uint64_t k = 0; k < count; ++k) EG_TRY(read_string(out.strs[k], what));
        return Status::ok();
      }
      // Fixed-size elements: min_bytes is their size, so count * min_bytes bytes remain.
      const size_t nbytes = size_t(count * min_bytes);
      out.raw.assign(r_.here(), r_.here() + nbytes);
      if (out.elem_type == MetaType::Bool) {
        for (size_t k = 0; k < nbytes; ++k)
          if (out.raw[k] > 1)
            return error(what + ": bool value " + std::to_string(out.raw[k]) + " at byte " +
                         std::to_string(r_.pos() + k) + " is neither 0 nor 1");
      }
      r_.skip(nbytes);
      return Status::ok();
    }
  }
  if (!ok) return truncated(what + " (" + meta_type_name(type) + ")");
  return Status::ok();
}

Status GgufParser::read_header() {
  uint32_t magic = 0;
  if (!r_.read(magic)) return error("too small to be a GGUF file (" + std::to_string(r_.size()) +
                                    " bytes)");
  if (magic != kGgufMagic) return error("not a GGUF file (bad magic)");
  if (!r_.read(version_)) return truncated("the version");
  if (version_ == 1) return error("GGUF version 1 is not supported (only versions 2 and 3)");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffff) == 0 && (version_ >> 16) != 0)
      return error("big-endian GGUF files are not supported");
    return error("unsupported GGUF version " + std::to_string(version_) +
                 " (only versions 2 and 3)");
  }
  if (!r_.read(n_tensors_)) return truncated("the tensor count");
  if (!r_.read(n_kv_)) return truncated("the metadata count");
  // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
  // 8 (name length) + 4 (n_dims) + 8 (ne[0]) + 4 (type) + 8 (offset).
  if (n_kv_ > r_.remaining() / 13)
    return error("metadata count " + std::to_string(n_kv_) + " is impossible for a file of " +
                 std::to_string(r_.size()) + " bytes");
  if (n_tensors_ > r_.remaining() / 32)
    return error("tensor count " + std::to_string(n_tensors_) + " is impossible for a file of " +
                 std::to_string(r_.size()) + " bytes");
  return Status::ok();
}

Status GgufParser::read_metadata(ModelFile& mf) {
  for (uint64_t k = 0; k < n_kv_; ++k) {
    std::string key;
    EG_TRY(read_string(key, "metadata key " + std::to_string(k)));
    if (key.empty()) return error("metadata key " + std::to_string(k) + " is empty");
    if (key.size() > kGgufMaxKeyBytes)
      return error("metadata key " + std::to_string(k) + " is " + std::to_string(key.size()) +
                   " bytes long (at most " + std::to_string(kGgufMaxKeyBytes) + ")");
    if (!utf8_valid(key))
      return error("metadata key " + std::to_string(k) + " is not valid UTF-8");
    if (mf.meta.count(key)) return error("duplicate metadata key '" + key + "'");
    uint32_t type = 0;
    if (!r_.read(type)) return truncated("the type of metadata '" + key + "'");
    if (!valid_meta_type(type))
      return error("metadata '" + key + "' has unknown value type " + std::to_string(type));
    MetaValue v;
    EG_TRY(read_value(MetaType(type), v, 0, "metadata '" + key + "'"));
    mf.meta.emplace(std::move(key), std::move(v));
  }
  if (const MetaValue* a = mf.get("general.alignment")) {
    auto x = a->as_int();
    if (!a->is_integer() || !x)
      return error("general.alignment has type " + std::string(meta_type_name(a->type)) +
                   ", expected an unsigned integer");
    if (*x <= 0 || (*x & (*x - 1)) != 0 || uint64_t(*x) > kGgufMaxAlignment)
      return error("general.alignment " + std::to_string(*x) +
                   " is not a nonzero power of two (at most 2^30)");
    mf.alignment = uint64_t(*x);
  } else {
    mf.alignment = kGgufDefaultAlignment;
  }
  return Status::ok();
}

Status GgufParser::read_tensor_infos(ModelFile& mf) {
  std::unordered_set<std::string> names;
  mf.tensors.resize(size_t(n_tensors_));
  for (uint64_t k = 0; k < n_tensors_; ++k) {
    TensorInfo& t = mf.tensors[k];
    const std::string idx = "tensor " + std::to_string(k);
    EG_TRY(read_string(t.name, idx + " name"));
    if (t.name.empty()) return error(idx + " has an empty name");
    if (t.name.size() > kGgufMaxNameBytes)
      return error(idx + " name is " + std::to_string(t.name.size()) + " bytes long (at most " +
                   std::to_string(kGgufMaxNameBytes) + ")");
    if (!utf8_valid(t.name)) return error(idx + " name is not valid UTF-8");
    if (!names.insert(t.name).second) return error("duplicate tensor name '" + t.name + "'");
    const std::string what = "tensor '" + t.name + "'";
    uint32_t n_dims = 0;
    if (!r_.read(n_dims)) return truncated(what + " dimension count");
    if (n_dims < 1 || n_dims > uint32_t(kMaxDims))
      return error(what + " has " + std::to_string(n_dims) + " dimensions (expected 1 to " +
                   std::to_string(kMaxDims) + ")");
    uint64_t n_elements = 1;
    t.shape.resize(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      if (!r_.read(ne)) return truncated(what + " shape");
      if (ne == 0 || ne > uint64_t(std::numeric_limits<int64_t>::max()))
        return error(what + " dimension " + std::to_string(d) + " is " + std::to_string(ne) +
                     " (must be positive)");
      if (!checked_mul(n_elements, ne, n_elements) ||
          n_elements > uint64_t(std::numeric_limits<int64_t>::max()))
        return error(what + " has too many elements (shape product overflows)");
      t.shape[d] = int64_t(ne);
    }
    uint32_t type_id = 0;
    if (!r_.read(type_id)) return truncated(what + " type");
    auto dt = dtype_from_id(type_id);
    if (!dt.ok()) return error(what + ": " + dt.status().message());
    t.dtype = *dt;
    const DTypeTraits* tr = dtype_traits(t.dtype);
    if (!dtype_row_ok(t.dtype, t.shape[0]))
      return error(what + " of type " + tr->name + ": ne[0] = " + std::to_string(t.shape[0]) +
                   " is not a multiple of the block size " + std::to_string(tr->block_size));
    const uint64_t rows = n_elements / uint64_t(t.shape[0]);
    if (!checked_mul(uint64_t(dtype_row_bytes(t.dtype, t.shape[0])), rows, t.nbytes))
      return error(what + " byte size overflows");
    if (!r_.read(t.offset)) return truncated(what + " offset");
    if (t.offset % mf.alignment != 0)
      return error(what + " offset " + std::to_string(t.offset) + " is not a multiple of the " +
                   "alignment " + std::to_string(mf.alignment));
  }
  return Status::ok();
}

Status GgufParser::place_tensors(ModelFile& mf) {
  const uint64_t size = r_.size();
  uint64_t data_start = 0;
  // alignment <= 2^30 and pos <= size, so this cannot overflow.
  data_start = (uint64_t(r_.pos()) + mf.alignment - 1) / mf.alignment * mf.alignment;
  if (mf.tensors.empty()) return Status::ok();
  if (data_start > size)
    return error("data section would start at byte " + std::to_string(data_start) +
                 ", past the end of the file (" + std::to_string(size) + " bytes)");
  const uint64_t avail = size - data_start;
  for (TensorInfo& t : mf.tensors) {
    if (t.offset > avail || t.nbytes > avail - t.offset)
      return error("tensor '" + t.name + "' data [offset " + std::to_string(t.offset) + ", " +
                   std::to_string(t.nbytes) + " bytes] extends past end of file (" +
                   std::to_string(size) + " bytes, data section starts at " +
                   std::to_string(data_start) + ")");
    t.data = data_ + data_start + t.offset;
  }
  return check_tensor_overlaps(mf.tensors, name_);
}

Result<std::unique_ptr<ModelFile>> GgufParser::parse() {
  auto mf = std::make_unique<ModelFile>();
  mf->path = name_;
  mf->kind = FileKind::kGguf;
  mf->file_bytes = r_.size();
  EG_TRY(read_header());
  mf->gguf_version = version_;
  EG_TRY(read_metadata(*mf));
  EG_TRY(read_tensor_infos(*mf));
  EG_TRY(place_tensors(*mf));
  mf->rebuild_index();
  return mf;
}

}  // namespace

Status check_tensor_overlaps(const std::vector<TensorInfo>& tensors, const std::string& path) {
  std::vector<const TensorInfo*> order;
  order.reserve(tensors.size());
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) {
              return uintptr_t(a->data) < uintptr_t(b->data);
            });
  for (size_t k = 1; k < order.size(); ++k) {
    const TensorInfo* a = order[k - 1];
    const TensorInfo* b = order[k];
    if (uintptr_t(b->data) - uintptr_t(a->data) < a->nbytes)
      return Status::error(path + ": tensor '" + a->name + "' [offset " +
                           std::to_string(a->offset) + ", " + std::to_string(a->nbytes) +
                           " bytes] overlaps tensor '" + b->name + "' [offset " +
                           std::to_string(b->offset) + "]");
  }
  return Status::ok();
}

Result<std::unique_ptr<ModelFile>> parse_gguf(const uint8_t* data, size_t size,
                                              const std::string& name) {
  return GgufParser(data, size, name).parse();
}

Result<std::unique_ptr<ModelFile>> read_gguf(const std::string& path) {
  EG_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  EG_ASSIGN_OR_RETURN(auto mf, parse_gguf(map->data(), map->size(), path));
  mf->maps.push_back(std::move(map));
  return mf;
}

}  // namespace edgeglm::formats
