#include "formats/safetensors/safetensors_reader.h"

#include <cstring>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "formats/gguf/byte_reader.h"
#include "formats/gguf/gguf_reader.h"

namespace edgeglm::formats {
namespace {

using nlohmann::json;

struct DtypeEntry {
  const char* name;
  DType dtype;
  uint64_t bytes;
};
constexpr DtypeEntry kDtypes[] = {
    {"F32", DType::F32, 4}, {"F16", DType::F16, 2}, {"BF16", DType::BF16, 2}};

// A non-negative JSON integer that fits uint64, or false.
bool json_u64(const json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    out = uint64_t(j.get<int64_t>());
    return true;
  }
  return false;
}

Status parse_entry(const std::string& tname, const json& e, const uint8_t* data_section,
                   uint64_t data_bytes, const std::string& name, SafetensorsFile& out) {
  const std::string what = name + ": tensor '" + tname + "'";
  if (!e.is_object()) return Status::error(what + " entry is not a JSON object");
  auto dt = e.find("dtype");
  auto sh = e.find("shape");
  auto off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) return Status::error(what + " has no string 'dtype'");
  if (sh == e.end() || !sh->is_array()) return Status::error(what + " has no 'shape' array");
  if (off == e.end() || !off->is_array() || off->size() != 2)
    return Status::error(what + " has no 'data_offsets' [begin, end]");

  const std::string& dname = dt->get_ref<const std::string&>();
  const DtypeEntry* entry = nullptr;
  for (const auto& d : kDtypes)
    if (dname == d.name) entry = &d;
  if (!entry)
    return Status::error(what + " has dtype '" + dname +
                         "', which is not supported (only F32, F16 and BF16)");

  if (sh->size() > size_t(kMaxDims))
    return Status::error(what + " has " + std::to_string(sh->size()) + " dimensions (at most " +
                         std::to_string(kMaxDims) + ")");
  TensorInfo t;
  t.name = tname;
  t.dtype = entry->dtype;
  uint64_t n = 1;
  for (auto it = sh->rbegin(); it != sh->rend(); ++it) {  // ggml order: innermost first
    uint64_t d = 0;
    if (!json_u64(*it, d) || d == 0 || d > uint64_t(std::numeric_limits<int64_t>::max()))
      return Status::error(what + " has a shape entry that is not a positive integer");
    if (!checked_mul(n, d, n)) return Status::error(what + " shape product overflows");
    t.shape.push_back(int64_t(d));
  }
  if (t.shape.empty()) t.shape.push_back(1);  // a scalar
  uint64_t begin = 0, end = 0;
  if (!json_u64((*off)[0], begin) || !json_u64((*off)[1], end) || begin > end)
    return Status::error(what + " has invalid data_offsets");
  uint64_t bytes = 0;
  if (!checked_mul(n, entry->bytes, bytes) || bytes != end - begin)
    return Status::error(what + ": shape and dtype " + dname + " need " +
                         (checked_mul(n, entry->bytes, bytes) ? std::to_string(bytes)
                                                               : std::string("too many")) +
                         " bytes but data_offsets [" + std::to_string(begin) + ", " +
                         std::to_string(end) + ") hold " + std::to_string(end - begin));
  if (end > data_bytes)
    return Status::error(what + " data [" + std::to_string(begin) + ", " + std::to_string(end) +
                         ") extends past the end of the data section (" +
                         std::to_string(data_bytes) + " bytes)");
  t.offset = begin;
  t.nbytes = bytes;
  t.data = data_section + begin;
  out.tensors.push_back(std::move(t));
  return Status::ok();
}

Result<SafetensorsFile> parse_impl(const uint8_t* data, size_t size, const std::string& name) {
  ByteReader r(data, size);
  uint64_t n = 0;
  if (!r.read(n))
    return Status::error(name + ": too small for a safetensors file (" + std::to_string(size) +
                         " bytes)");
  if (n > r.remaining())
    return Status::error(name + ": safetensors header length " + std::to_string(n) +
                         " exceeds the file size (" + std::to_string(size) + " bytes)");
  if (n > kSafetensorsMaxHeaderBytes)
    return Status::error(name + ": safetensors header length " + std::to_string(n) +
                         " is larger than the 100 MiB limit");
  const char* text = reinterpret_cast<const char*>(data + 8);
  std::unordered_set<std::string> keys;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string() &&
        !keys.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j = json::parse(text, text + n, cb, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return Status::error(name + ": safetensors header is not valid JSON");
  if (!j.is_object()) return Status::error(name + ": safetensors header is not a JSON object");
  if (!duplicate.empty())
    return Status::error(name + ": duplicate tensor name '" + duplicate + "' in header");

  SafetensorsFile out;
  const uint8_t* data_section = data + 8 + n;
  const uint64_t data_bytes = size - 8 - n;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object())
        return Status::error(name + ": __metadata__ is not a JSON object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          return Status::error(name + ": __metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    if (it.key().empty()) return Status::error(name + ": tensor with an empty name");
    EG_TRY(parse_entry(it.key(), *it, data_section, data_bytes, name, out));
  }
  EG_TRY(check_tensor_overlaps(out.tensors, name));
  // Kernels read elements directly; copy the (rare) tensors that are misaligned in the file.
  for (TensorInfo& t : out.tensors) {
    const uint64_t elem = t.dtype == DType::F32 ? 4 : 2;
    if (uintptr_t(t.data) % elem == 0) continue;
    auto buf = std::make_shared<std::vector<uint8_t>>(t.data, t.data + t.nbytes);
    t.data = buf->data();
    out.owned.push_back(std::move(buf));
  }
  return out;
}

}  // namespace

Result<SafetensorsFile> parse_safetensors(const uint8_t* data, size_t size,
                                          const std::string& name) {
  try {
    return parse_impl(data, size, name);
  } catch (const std::exception& e) {  // nlohmann or allocation failure: keep it a value
    return Status::error(name + ": cannot read safetensors header: " + e.what());
  }
}

}  // namespace edgeglm::formats
