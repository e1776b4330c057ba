#include "formats/model_file.h"

#include <cstdio>
#include <cstring>
#include <limits>

namespace edgeglm::formats {

const char* meta_type_name(MetaType t) {
  switch (t) {
    case MetaType::U8: return "u8";
    case MetaType::I8: return "i8";
    case MetaType::U16: return "u16";
    case MetaType::I16: return "i16";
    case MetaType::U32: return "u32";
    case MetaType::I32: return "i32";
    case MetaType::F32: return "f32";
    case MetaType::Bool: return "bool";
    case MetaType::String: return "string";
    case MetaType::Array: return "array";
    case MetaType::U64: return "u64";
    case MetaType::I64: return "i64";
    case MetaType::F64: return "f64";
  }
  return "unknown";
}

MetaValue MetaValue::from_u32(uint32_t v) {
  MetaValue m;
  m.type = MetaType::U32;
  m.u = v;
  return m;
}
MetaValue MetaValue::from_i32(int32_t v) {
  MetaValue m;
  m.type = MetaType::I32;
  m.i = v;
  return m;
}
MetaValue MetaValue::from_u64(uint64_t v) {
  MetaValue m;
  m.type = MetaType::U64;
  m.u = v;
  return m;
}
MetaValue MetaValue::from_f32(float v) {
  MetaValue m;
  m.type = MetaType::F32;
  m.f = v;
  return m;
}
MetaValue MetaValue::from_bool(bool v) {
  MetaValue m;
  m.type = MetaType::Bool;
  m.u = v ? 1 : 0;
  return m;
}
MetaValue MetaValue::from_string(std::string v) {
  MetaValue m;
  m.type = MetaType::String;
  m.s = std::move(v);
  return m;
}
size_t meta_type_size(MetaType t) {
  switch (t) {
    case MetaType::U8: case MetaType::I8: case MetaType::Bool: return 1;
    case MetaType::U16: case MetaType::I16: return 2;
    case MetaType::U32: case MetaType::I32: case MetaType::F32: return 4;
    case MetaType::U64: case MetaType::I64: case MetaType::F64: return 8;
    default: return 0;
  }
}

namespace {

template <class T>
void store(uint8_t* dst, T v) {
  std::memcpy(dst, &v, sizeof v);
}
template <class T>
T load(const uint8_t* src) {
  T v;
  std::memcpy(&v, src, sizeof v);
  return v;
}

// Writes scalar v (of a fixed-size type) as GGUF stores it: meta_type_size(v.type) bytes.
void encode_scalar(const MetaValue& v, uint8_t* dst) {
  switch (v.type) {
    case MetaType::U8: store<uint8_t>(dst, uint8_t(v.u)); break;
    case MetaType::I8: store<int8_t>(dst, int8_t(v.i)); break;
    case MetaType::U16: store<uint16_t>(dst, uint16_t(v.u)); break;
    case MetaType::I16: store<int16_t>(dst, int16_t(v.i)); break;
    case MetaType::U32: store<uint32_t>(dst, uint32_t(v.u)); break;
    case MetaType::I32: store<int32_t>(dst, int32_t(v.i)); break;
    case MetaType::U64: store<uint64_t>(dst, v.u); break;
    case MetaType::I64: store<int64_t>(dst, v.i); break;
    case MetaType::F32: store<float>(dst, float(v.f)); break;
    case MetaType::F64: store<double>(dst, v.f); break;
    case MetaType::Bool: store<uint8_t>(dst, v.u ? 1 : 0); break;
    default: break;
  }
}

MetaValue decode_scalar(MetaType t, const uint8_t* src) {
  MetaValue m;
  m.type = t;
  switch (t) {
    case MetaType::U8: m.u = load<uint8_t>(src); break;
    case MetaType::I8: m.i = load<int8_t>(src); break;
    case MetaType::U16: m.u = load<uint16_t>(src); break;
    case MetaType::I16: m.i = load<int16_t>(src); break;
    case MetaType::U32: m.u = load<uint32_t>(src); break;
    case MetaType::I32: m.i = load<int32_t>(src); break;
    case MetaType::U64: m.u = load<uint64_t>(src); break;
    case MetaType::I64: m.i = load<int64_t>(src); break;
    case MetaType::F32: m.f = load<float>(src); break;
    case MetaType::F64: m.f = load<double>(src); break;
    case MetaType::Bool: m.u = load<uint8_t>(src); break;
    default: break;
  }
  return m;
}

}  // namespace

MetaValue MetaValue::from_array(MetaType elem, std::vector<MetaValue> values) {
  MetaValue m;
  m.type = MetaType::Array;
  m.elem_type = elem;
  bool uniform = true;
  for (const MetaValue& v : values) uniform = uniform && v.type == elem;
  const size_t size = meta_type_size(elem);
  if (elem == MetaType::Array || !uniform || (elem != MetaType::String && size == 0)) {
    m.arr = std::move(values);
  } else if (elem == MetaType::String) {
    m.strs.reserve(values.size());
    for (MetaValue& v : values) m.strs.push_back(std::move(v.s));
  } else {
    m.raw.resize(values.size() * size);
    for (size_t k = 0; k < values.size(); ++k) encode_scalar(values[k], m.raw.data() + k * size);
  }
  return m;
}
MetaValue MetaValue::from_strings(std::vector<std::string> values) {
  MetaValue m;
  m.type = MetaType::Array;
  m.elem_type = MetaType::String;
  m.strs = std::move(values);
  return m;
}
MetaValue MetaValue::from_i32s(const std::vector<int32_t>& values) {
  MetaValue m;
  m.type = MetaType::Array;
  m.elem_type = MetaType::I32;
  m.raw.resize(values.size() * sizeof(int32_t));
  if (!values.empty()) std::memcpy(m.raw.data(), values.data(), m.raw.size());
  return m;
}
MetaValue MetaValue::from_f32s(const std::vector<float>& values) {
  MetaValue m;
  m.type = MetaType::Array;
  m.elem_type = MetaType::F32;
  m.raw.resize(values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(m.raw.data(), values.data(), m.raw.size());
  return m;
}

size_t MetaValue::array_size() const {
  if (type != MetaType::Array) return 0;
  if (elem_type == MetaType::Array || !arr.empty()) return arr.size();
  if (elem_type == MetaType::String) return strs.size();
  const size_t size = meta_type_size(elem_type);
  return size ? raw.size() / size : 0;
}

MetaValue MetaValue::element(size_t k) const {
  if (elem_type == MetaType::Array || !arr.empty()) return arr[k];
  if (elem_type == MetaType::String) return from_string(strs[k]);
  return decode_scalar(elem_type, raw.data() + k * meta_type_size(elem_type));
}

std::optional<int64_t> MetaValue::int_at(size_t k) const {
  if (elem_type == MetaType::String) return std::nullopt;
  return element(k).as_int();
}
std::optional<double> MetaValue::float_at(size_t k) const {
  if (elem_type == MetaType::String) return std::nullopt;
  return element(k).as_double();
}

bool MetaValue::is_integer() const {
  switch (type) {
    case MetaType::U8: case MetaType::I8: case MetaType::U16: case MetaType::I16:
    case MetaType::U32: case MetaType::I32: case MetaType::U64: case MetaType::I64:
      return true;
    default:
      return false;
  }
}

static bool is_unsigned_type(MetaType t) {
  return t == MetaType::U8 || t == MetaType::U16 || t == MetaType::U32 || t == MetaType::U64;
}

std::optional<int64_t> MetaValue::as_int() const {
  if (!is_integer()) return std::nullopt;
  if (is_unsigned_type(type)) {
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(u);
  }
  return i;
}

std::optional<double> MetaValue::as_double() const {
  if (is_float()) return f;
  if (!is_integer()) return std::nullopt;
  return is_unsigned_type(type) ? double(u) : double(i);
}

static std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

std::string MetaValue::to_string(size_t max_array_items) const {
  switch (type) {
    case MetaType::Bool: return u ? "true" : "false";
    case MetaType::String: return quote(s);
    case MetaType::F32:
    case MetaType::F64: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.9g", f);
      return buf;
    }
    case MetaType::Array: {
      std::string out = "[";
      const size_t total = array_size();
      const size_t n = total < max_array_items ? total : max_array_items;
      for (size_t k = 0; k < n; ++k) out += (k ? ", " : "") + element(k).to_string(max_array_items);
      if (n < total) out += (n ? ", ... (" : "... (") + std::to_string(total) + " items)";
      return out + "]";
    }
    default:
      return is_unsigned_type(type) ? std::to_string(u) : std::to_string(i);
  }
}

std::string TensorInfo::shape_string() const {
  std::string r = "[";
  for (size_t i = 0; i < shape.size(); ++i) r += (i ? ", " : "") + std::to_string(shape[i]);
  return r + "]";
}

int64_t TensorInfo::nelements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

TensorView TensorInfo::view() const {
  int64_t ne[kMaxDims] = {1, 1, 1, 1};
  for (size_t k = 0; k < shape.size() && k < size_t(kMaxDims); ++k) ne[k] = shape[k];
  return TensorView::make(dtype, const_cast<uint8_t*>(data), ne[0], ne[1], ne[2], ne[3]);
}

const TensorInfo* ModelFile::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it != index_.end() && it->second < tensors.size() && tensors[it->second].name == name)
    return &tensors[it->second];
  // The index may be stale if `tensors` was edited without rebuild_index(); fall back to a scan.
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void ModelFile::replace_with_f32(TensorInfo& t, const std::vector<float>& values, std::vector<int64_t> shape) {
  auto buf = std::make_shared<std::vector<uint8_t>>(values.size() * sizeof(float));
  std::memcpy(buf->data(), values.data(), buf->size());
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  t.data = buf->data();
  t.nbytes = buf->size();
  owned.push_back(std::move(buf));
}

void ModelFile::rebuild_index() {
  index_.clear();
  index_.reserve(tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) index_.emplace(tensors[k].name, k);
}

const MetaValue* ModelFile::get(const std::string& key) const {
  auto it = meta.find(key);
  return it == meta.end() ? nullptr : &it->second;
}

std::optional<std::string> ModelFile::get_string(const std::string& key) const {
  const MetaValue* v = get(key);
  if (!v || v->type != MetaType::String) return std::nullopt;
  return v->s;
}

Result<std::optional<int64_t>> ModelFile::get_int(const std::string& key) const {
  const MetaValue* v = get(key);
  if (!v) return std::optional<int64_t>();
  if (!v->is_integer())
    return Status::error(path + ": metadata '" + key + "' has type " + meta_type_name(v->type) +
                         ", expected an integer");
  auto x = v->as_int();
  if (!x)
    return Status::error(path + ": metadata '" + key + "' value " + std::to_string(v->u) +
                         " does not fit in int64");
  return std::optional<int64_t>(*x);
}

Result<std::optional<double>> ModelFile::get_float(const std::string& key) const {
  const MetaValue* v = get(key);
  if (!v) return std::optional<double>();
  auto x = v->as_double();
  if (!x)
    return Status::error(path + ": metadata '" + key + "' has type " + meta_type_name(v->type) +
                         ", expected a number");
  return std::optional<double>(*x);
}

std::string ModelFile::architecture() const {
  return get_string("general.architecture").value_or("");
}

}  // namespace edgeglm::formats
