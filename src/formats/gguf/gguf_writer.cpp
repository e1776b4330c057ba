#include "formats/gguf/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "formats/gguf/byte_reader.h"
#include "formats/gguf/gguf_reader.h"

namespace edgeglm::formats {
namespace {

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

Status put_value(std::string& out, const MetaValue& v, const std::string& key, int depth) {
  switch (v.type) {
    case MetaType::U8: put<uint8_t>(out, uint8_t(v.u)); break;
    case MetaType::I8: put<int8_t>(out, int8_t(v.i)); break;
    case MetaType::U16: put<uint16_t>(out, uint16_t(v.u)); break;
    case MetaType::I16: put<int16_t>(out, int16_t(v.i)); break;
    case MetaType::U32: put<uint32_t>(out, uint32_t(v.u)); break;
    case MetaType::I32: put<int32_t>(out, int32_t(v.i)); break;
    case MetaType::U64: put<uint64_t>(out, v.u); break;
    case MetaType::I64: put<int64_t>(out, v.i); break;
    case MetaType::F32: put<float>(out, float(v.f)); break;
    case MetaType::F64: put<double>(out, v.f); break;
    case MetaType::Bool: put<uint8_t>(out, v.u ? 1 : 0); break;
    case MetaType::String: put_string(out, v.s); break;
    case MetaType::Array:
      if (v.elem_type == MetaType::Array && depth + 1 >= kGgufMaxArrayDepth)
        return Status::error("metadata '" + key + "': arrays nested too deeply");
      put<uint32_t>(out, uint32_t(v.elem_type));
      put<uint64_t>(out, v.array_size());
      if (v.elem_type == MetaType::Array || !v.arr.empty()) {
        for (const MetaValue& e : v.arr) {
          if (e.type != v.elem_type)
            return Status::error("metadata '" + key + "': array of " +
                                 meta_type_name(v.elem_type) + " holds a " +
                                 meta_type_name(e.type) + " element");
          EG_TRY(put_value(out, e, key, depth + 1));
        }
      } else if (v.elem_type == MetaType::String) {
        if (!v.raw.empty())
          return Status::error("metadata '" + key + "': array of strings holds raw bytes");
        for (const std::string& s : v.strs) put_string(out, s);
      } else {
        const size_t size = meta_type_size(v.elem_type);
        if (size == 0 || !v.strs.empty() || v.raw.size() % size != 0)
          return Status::error("metadata '" + key + "': array of " +
                               meta_type_name(v.elem_type) + " has malformed storage");
        if (v.elem_type == MetaType::Bool) {
          for (uint8_t b : v.raw) put<uint8_t>(out, b ? 1 : 0);
        } else {
          out.append(reinterpret_cast<const char*>(v.raw.data()), v.raw.size());
        }
      }
      break;
    default:
      return Status::error("metadata '" + key + "' has unknown type " +
                           std::to_string(uint32_t(v.type)));
  }
  return Status::ok();
}

Result<uint64_t> alignment_of(const Metadata& meta) {
  auto it = meta.find("general.alignment");
  if (it == meta.end()) return kGgufDefaultAlignment;
  auto x = it->second.as_int();
  if (!it->second.is_integer() || !x || *x <= 0 || (*x & (*x - 1)) != 0 ||
      uint64_t(*x) > kGgufMaxAlignment)
    return Status::error("general.alignment must be a nonzero power of two integer (at most 2^30)");
  return uint64_t(*x);
}

// Validates the tensors and returns each one's byte size.
Result<std::vector<uint64_t>> tensor_sizes(const std::vector<TensorInfo>& tensors) {
  std::vector<uint64_t> sizes;
  std::unordered_set<std::string> names;
  for (const TensorInfo& t : tensors) {
    const std::string what = "tensor '" + t.name + "'";
    if (t.name.empty() || t.name.size() > kGgufMaxNameBytes)
      return Status::error(what + ": name must be 1 to " + std::to_string(kGgufMaxNameBytes) +
                           " bytes");
    if (!names.insert(t.name).second) return Status::error("duplicate " + what);
    const DTypeTraits* tr = dtype_traits(t.dtype);
    if (!tr) return Status::error(what + " has an unknown dtype");
    if (tr->runtime_layout)
      return Status::error(what + " has the in-memory layout " + tr->name + ", which is not a file format");
    if (t.shape.empty() || t.shape.size() > size_t(kMaxDims))
      return Status::error(what + " has " + std::to_string(t.shape.size()) + " dimensions");
    uint64_t n = 1;
    for (int64_t d : t.shape)
      if (d <= 0 || !checked_mul(n, uint64_t(d), n))
        return Status::error(what + " has an invalid shape");
    if (!dtype_row_ok(t.dtype, t.shape[0]))
      return Status::error(what + ": ne[0] = " + std::to_string(t.shape[0]) +
                           " is not a multiple of the " + tr->name + " block size");
    uint64_t bytes = 0;
    if (!checked_mul(dtype_row_bytes(t.dtype, t.shape[0]), n / uint64_t(t.shape[0]), bytes))
      return Status::error(what + " byte size overflows");
    if (t.nbytes != 0 && t.nbytes != bytes)
      return Status::error(what + " says " + std::to_string(t.nbytes) + " bytes but its shape " +
                           "and type need " + std::to_string(bytes));
    sizes.push_back(bytes);
  }
  return sizes;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

class FileSink {
 public:
  explicit FileSink(std::string path) : path_(std::move(path)) {}
  ~FileSink() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::error(path_ + ": cannot create: " + std::strerror(errno));
    return Status::ok();
  }
  Status write(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const size_t chunk = n < (size_t(1) << 30) ? n : (size_t(1) << 30);
      ssize_t w = ::write(fd_, c, chunk);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::error(path_ + ": write failed: " + std::strerror(errno));
      }
      c += w;
      n -= size_t(w);
      written_ += uint64_t(w);
    }
    return Status::ok();
  }
  Status pad_to(uint64_t alignment) {
    static const char zeros[4096] = {};
    uint64_t pad = align_up(written_, alignment) - written_;
    while (pad > 0) {
      const size_t n = pad < sizeof zeros ? size_t(pad) : sizeof zeros;
      EG_TRY(write(zeros, n));
      pad -= n;
    }
    return Status::ok();
  }
  Status finish() {
    if (::fsync(fd_) != 0) return Status::error(path_ + ": fsync failed: " + std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Status::error(path_ + ": close failed: " + std::strerror(errno));
    return Status::ok();
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t written_ = 0;
};

Status write_file(const std::string& tmp, const std::string& header,
                  const std::vector<uint64_t>& sizes, uint64_t alignment,
                  const TensorProducer& produce) {
  FileSink sink(tmp);
  EG_TRY(sink.open());
  EG_TRY(sink.write(header.data(), header.size()));
  EG_TRY(sink.pad_to(alignment));
  std::vector<uint8_t> scratch;
  for (size_t k = 0; k < sizes.size(); ++k) {
    EG_ASSIGN_OR_RETURN(const uint8_t* data, produce(k, scratch));
    EG_TRY(sink.write(data, size_t(sizes[k])));
    EG_TRY(sink.pad_to(alignment));
  }
  return sink.finish();
}

}  // namespace

Status serialize_gguf_header(const Metadata& meta, const std::vector<TensorInfo>& tensors,
                             uint64_t alignment, std::string& out) {
  EG_ASSIGN_OR_RETURN(auto sizes, tensor_sizes(tensors));
  out.clear();
  put<uint32_t>(out, kGgufMagic);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors.size());
  put<uint64_t>(out, meta.size());
  for (const auto& [key, value] : meta) {
    if (key.empty() || key.size() > kGgufMaxKeyBytes || !utf8_valid(key))
      return Status::error("metadata key '" + key + "' is empty, too long or not UTF-8");
    put_string(out, key);
    put<uint32_t>(out, uint32_t(value.type));
    EG_TRY(put_value(out, value, key, 0));
  }
  uint64_t offset = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const TensorInfo& t = tensors[k];
    put_string(out, t.name);
    put<uint32_t>(out, uint32_t(t.shape.size()));
    for (int64_t d : t.shape) put<uint64_t>(out, uint64_t(d));
    put<uint32_t>(out, uint32_t(t.dtype));
    put<uint64_t>(out, offset);
    offset = align_up(offset + sizes[k], alignment);
  }
  return Status::ok();
}

Status write_gguf(const std::string& path, const Metadata& meta,
                  const std::vector<TensorInfo>& tensors) {
  for (const TensorInfo& t : tensors)
    if (!t.data) return Status::error(path + ": tensor '" + t.name + "' has no data");
  return write_gguf(path, meta, tensors,
                    [&](size_t k, std::vector<uint8_t>&) -> Result<const uint8_t*> {
                      return tensors[k].data;
                    });
}

Status write_gguf(const std::string& path, const Metadata& meta,
                  const std::vector<TensorInfo>& tensors, const TensorProducer& produce) {
  auto alignment = alignment_of(meta);
  if (!alignment.ok()) return alignment.status().with_context(path);
  auto sizes = tensor_sizes(tensors);
  if (!sizes.ok()) return sizes.status().with_context(path);
  std::string header;
  EG_TRY(serialize_gguf_header(meta, tensors, *alignment, header).with_context(path));

  const std::string tmp = path + ".tmp";
  Status st = write_file(tmp, header, *sizes, *alignment, produce);
  if (st.is_ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    st = Status::error(path + ": cannot rename " + tmp + " over it: " + std::strerror(errno));
  if (!st.is_ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return Status::ok();
}

}  // namespace edgeglm::formats
