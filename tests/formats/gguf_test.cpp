#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "format_test_util.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/gguf_writer.h"

namespace edgeglm::formats {
namespace {

using test::Bytes;

bool meta_equal(const MetaValue& a, const MetaValue& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case MetaType::String: return a.s == b.s;
    case MetaType::F32: case MetaType::F64: return a.f == b.f;
    case MetaType::I8: case MetaType::I16: case MetaType::I32: case MetaType::I64:
      return a.i == b.i;
    case MetaType::Array:
      if (a.elem_type != b.elem_type || a.array_size() != b.array_size()) return false;
      for (size_t k = 0; k < a.array_size(); ++k)
        if (!meta_equal(a.element(k), b.element(k))) return false;
      return true;
    default: return a.u == b.u;
  }
}

void expect_same_model(const ModelFile& a, const ModelFile& b) {
  ASSERT_EQ(a.meta.size(), b.meta.size());
  for (const auto& [k, v] : a.meta) {
    const MetaValue* w = b.get(k);
    ASSERT_NE(w, nullptr) << k;
    EXPECT_TRUE(meta_equal(v, *w)) << k << ": " << v.to_string() << " vs " << w->to_string();
  }
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t k = 0; k < a.tensors.size(); ++k) {
    const TensorInfo& x = a.tensors[k];
    const TensorInfo* y = b.find(x.name);
    ASSERT_NE(y, nullptr) << x.name;
    EXPECT_EQ(x.dtype, y->dtype) << x.name;
    EXPECT_EQ(x.shape, y->shape) << x.name;
    ASSERT_EQ(x.nbytes, y->nbytes) << x.name;
    EXPECT_EQ(std::memcmp(x.data, y->data, x.nbytes), 0) << x.name;
  }
}

MetaValue typed(MetaType t, uint64_t u, int64_t i = 0) {
  MetaValue v;
  v.type = t;
  v.u = u;
  v.i = i;
  return v;
}

Metadata all_types_meta() {
  Metadata m;
  m["general.architecture"] = MetaValue::from_string("llama");
  m["t.u8"] = typed(MetaType::U8, 250);
  m["t.i8"] = typed(MetaType::I8, 0, -100);
  m["t.u16"] = typed(MetaType::U16, 65000);
  m["t.i16"] = typed(MetaType::I16, 0, -32000);
  m["t.u32"] = MetaValue::from_u32(4000000000u);
  m["t.i32"] = MetaValue::from_i32(-2000000000);
  m["t.f32"] = MetaValue::from_f32(3.25f);
  m["t.bool"] = MetaValue::from_bool(true);
  m["t.string"] = MetaValue::from_string(std::string("h\xc3\xa9llo\0x", 8));
  m["t.u64"] = MetaValue::from_u64(uint64_t(1) << 62);
  m["t.i64"] = typed(MetaType::I64, 0, -(int64_t(1) << 60));
  MetaValue f64;
  f64.type = MetaType::F64;
  f64.f = 1.0 / 3.0;
  m["t.f64"] = f64;
  m["t.empty"] = MetaValue::from_array(MetaType::F32, {});
  m["t.strings"] = MetaValue::from_array(
      MetaType::String, {MetaValue::from_string("a"), MetaValue::from_string(""),
                         MetaValue::from_string("<0x0A>")});
  m["t.nested"] = MetaValue::from_array(
      MetaType::Array,
      {MetaValue::from_array(MetaType::I32, {MetaValue::from_i32(1), MetaValue::from_i32(-2)}),
       MetaValue::from_array(MetaType::Array,
                             {MetaValue::from_array(MetaType::String,
                                                    {MetaValue::from_string("deep")})})});
  m["t.bools"] = MetaValue::from_array(MetaType::Bool,
                                       {MetaValue::from_bool(false), MetaValue::from_bool(true)});
  return m;
}

struct OwnedTensors {
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<TensorInfo> infos;
  void add(const std::string& name, DType dt, std::vector<int64_t> shape, size_t nbytes) {
    bufs.emplace_back(nbytes);
    for (size_t k = 0; k < nbytes; ++k) bufs.back()[k] = uint8_t(k * 7 + bufs.size());
    TensorInfo t;
    t.name = name;
    t.dtype = dt;
    t.shape = std::move(shape);
    t.data = bufs.back().data();
    infos.push_back(t);
  }
};

OwnedTensors sample_tensors() {
  OwnedTensors o;
  o.add("token_embd.weight", DType::F32, {4, 3}, 48);
  o.add("blk.0.attn_norm.weight", DType::F16, {8}, 16);
  o.add("blk.0.attn_q.weight", DType::Q8_0, {64, 2}, 4 * 34);
  o.add("blk.0.ffn_up.weight", DType::Q4_K, {256, 1, 2}, 2 * 144);
  return o;
}

TEST(Gguf, RoundTripEveryTypeAndNestedArrays) {
  OwnedTensors ts = sample_tensors();
  Metadata meta = all_types_meta();
  const std::string path = test::temp_path("roundtrip.gguf");
  ASSERT_TRUE(write_gguf(path, meta, ts.infos).is_ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto mf = read_gguf(path);
  ASSERT_TRUE(mf.ok()) << mf.status().message();
  EXPECT_EQ((*mf)->gguf_version, 3u);
  EXPECT_EQ((*mf)->alignment, 32u);
  ModelFile expected;
  expected.meta = meta;
  expected.tensors = ts.infos;
  for (auto& t : expected.tensors) t.nbytes = ts.bufs[&t - expected.tensors.data()].size();
  expect_same_model(expected, **mf);
  // Data is zero copy and aligned.
  for (const TensorInfo& t : (*mf)->tensors) {
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(uintptr_t(t.data) % 32, 0u) << t.name;
  }
  EXPECT_EQ((*mf)->find("blk.0.attn_q.weight")->nbytes, 136u);
  EXPECT_EQ((*mf)->get("t.nested")->arr[1].arr[0].str_at(0), "deep");
  EXPECT_EQ((*mf)->get("t.string")->s.size(), 8u);
}

TEST(Gguf, HonoursAlignment) {
  OwnedTensors ts = sample_tensors();
  Metadata meta;
  meta["general.alignment"] = MetaValue::from_u32(256);
  const std::string path = test::temp_path("align256.gguf");
  ASSERT_TRUE(write_gguf(path, meta, ts.infos).is_ok());
  auto mf = read_gguf(path);
  ASSERT_TRUE(mf.ok()) << mf.status().message();
  EXPECT_EQ((*mf)->alignment, 256u);
  for (const TensorInfo& t : (*mf)->tensors) EXPECT_EQ(t.offset % 256, 0u);
  EXPECT_EQ((*mf)->tensors[1].offset, 256u);  // 48-byte tensor padded to 256

  meta["general.alignment"] = MetaValue::from_u32(48);
  Status st = write_gguf(path, meta, ts.infos);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(path), std::string::npos);
}

TEST(Gguf, WriterRejectsBadInputAndUnwritablePaths) {
  OwnedTensors ts = sample_tensors();
  Status st = write_gguf("/nonexistent_dir_edgeglm/x.gguf", {}, ts.infos);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("/nonexistent_dir_edgeglm/x.gguf"), std::string::npos);

  const std::string path = test::temp_path("bad_writer.gguf");
  std::filesystem::remove(path);
  auto dup = ts.infos;
  dup.push_back(dup[0]);
  EXPECT_FALSE(write_gguf(path, {}, dup).is_ok());
  auto bad_block = ts.infos;
  bad_block[2].shape = {33, 2};
  EXPECT_FALSE(write_gguf(path, {}, bad_block).is_ok());
  auto bad_bytes = ts.infos;
  bad_bytes[0].nbytes = 47;
  EXPECT_FALSE(write_gguf(path, {}, bad_bytes).is_ok());
  Metadata m;
  m["x"] = MetaValue::from_array(MetaType::U32, {MetaValue::from_string("oops")});
  EXPECT_FALSE(write_gguf(path, m, {}).is_ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Gguf, WriterReportsDiskFullAndLeavesNoFile) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  OwnedTensors ts = sample_tensors();
  const std::string path = test::temp_path("disk_full.gguf");
  std::filesystem::remove(path);
  std::filesystem::remove(path + ".tmp");
  // The temporary file is a link to /dev/full, so every write fails with ENOSPC.
  std::filesystem::create_symlink("/dev/full", path + ".tmp");
  Status st = write_gguf(path, all_types_meta(), ts.infos);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("No space left"), std::string::npos) << st.message();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::is_symlink(path + ".tmp"));
}

TEST(Gguf, TruncatedAtEveryByteIsAnError) {
  OwnedTensors ts = sample_tensors();
  const std::string path = test::temp_path("trunc_src.gguf");
  ASSERT_TRUE(write_gguf(path, all_types_meta(), ts.infos).is_ok());
  const std::string bytes = test::read_file(path);
  auto full = parse_gguf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.gguf");
  ASSERT_TRUE(full.ok());
  uint64_t data_end = 0;
  for (const auto& t : (*full)->tensors)
    data_end = std::max<uint64_t>(data_end, uint64_t(t.data + t.nbytes -
                                                      reinterpret_cast<const uint8_t*>(bytes.data())));
  for (size_t n = 0; n < data_end; ++n) {
    auto r = parse_gguf(reinterpret_cast<const uint8_t*>(bytes.data()), n, "t.gguf");
    ASSERT_FALSE(r.ok()) << "prefix " << n;
    EXPECT_EQ(r.status().message().rfind("t.gguf: ", 0), 0u) << r.status().message();
  }
}

// --- hand-made hostile files --------------------------------------------------------------

Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
  Bytes b;
  b.u32(kGgufMagic).u32(version).u64(n_tensors).u64(n_kv);
  return b;
}

std::string parse_error(const Bytes& b) {
  auto r = parse_gguf(b.data(), b.size(), "x.gguf");
  if (r.ok()) return "OK";
  EXPECT_EQ(r.status().message().rfind("x.gguf: ", 0), 0u) << r.status().message();
  return r.status().message();
}

#define EXPECT_ERROR_HAS(bytes, text)                                                  \
  do {                                                                                 \
    std::string msg_ = parse_error(bytes);                                             \
    EXPECT_NE(msg_.find(text), std::string::npos) << "message: " << msg_;              \
  } while (0)

TEST(Gguf, RejectsBadHeaders) {
  EXPECT_ERROR_HAS(Bytes().raw("GGUX").u32(3).u64(0).u64(0), "not a GGUF file");
  EXPECT_ERROR_HAS(header(0, 0, 1), "version 1 is not supported");
  EXPECT_ERROR_HAS(header(0, 0, 0x03000000), "big-endian");
  EXPECT_ERROR_HAS(header(0, 0, 4), "unsupported GGUF version 4");
  EXPECT_ERROR_HAS(header(0, uint64_t(1) << 40), "metadata count 1099511627776");
  EXPECT_ERROR_HAS(header(uint64_t(1) << 40, 0), "tensor count");
  EXPECT_ERROR_HAS(Bytes().raw("GG"), "too small");
  EXPECT_EQ(parse_error(header(0, 0)), "OK");  // an empty GGUF is valid
  EXPECT_EQ(parse_error(header(0, 0, 2)), "OK");
}

TEST(Gguf, RejectsHostileMetadata) {
  auto one_kv = [](const std::string& key) { return header(0, 1).str(key); };
  EXPECT_ERROR_HAS(header(0, 1).u64(uint64_t(1) << 60).raw("abcdefghijklm"), "string length");
  EXPECT_ERROR_HAS(one_kv("a").u32(9).u32(0).u64(uint64_t(1) << 40).raw(std::string(16, 'x')),
                   "array of 1099511627776");
  EXPECT_ERROR_HAS(one_kv("a").u32(8).u64(uint64_t(1) << 63), "string length");
  EXPECT_ERROR_HAS(one_kv("a").u32(13).u32(0), "unknown value type 13");
  EXPECT_ERROR_HAS(one_kv("a").u32(9).u32(77).u64(0), "unknown array element type 77");
  EXPECT_ERROR_HAS(one_kv("a\xff\xfe").u32(4).u32(0), "not valid UTF-8");
  EXPECT_ERROR_HAS(one_kv("").u32(4).u32(0), "empty");
  EXPECT_ERROR_HAS(one_kv("a").u32(7).u8(2).raw(std::string(8, '\0')), "bool value 2");
  EXPECT_ERROR_HAS(header(0, 2).str("a").u32(4).u32(1).str("a").u32(4).u32(2),
                   "duplicate metadata key 'a'");
  Bytes deep = one_kv("deep").u32(9);
  for (int d = 0; d < 12; ++d) deep.u32(9).u64(1);
  deep.u32(4).u64(1).u32(5).raw(std::string(64, '\0'));
  EXPECT_ERROR_HAS(deep, "nested deeper");
  EXPECT_ERROR_HAS(one_kv("general.alignment").u32(4).u32(0), "general.alignment 0");
  EXPECT_ERROR_HAS(one_kv("general.alignment").u32(4).u32(48), "power of two");
  EXPECT_ERROR_HAS(one_kv("general.alignment").u32(8).str("32"), "general.alignment has type");
  EXPECT_ERROR_HAS(one_kv("a").u32(5), "truncated");
}

// A file with one tensor info {name, dims, type, offset} and `data_bytes` of data.
Bytes one_tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                 uint64_t offset, size_t data_bytes) {
  Bytes b = header(1, 0);
  b.str(name).u32(uint32_t(dims.size()));
  for (uint64_t d : dims) b.u64(d);
  b.u32(type).u64(offset).pad_to(32);
  b.raw(std::string(data_bytes, '\x11'));
  return b;
}

TEST(Gguf, RejectsHostileTensorInfos) {
  EXPECT_EQ(parse_error(one_tensor("w", {4, 2}, 0, 0, 32)), "OK");
  EXPECT_ERROR_HAS(one_tensor("w", {}, 0, 0, 32), "has 0 dimensions");
  EXPECT_ERROR_HAS(one_tensor("w", {1, 1, 1, 1, 1}, 0, 0, 32), "has 5 dimensions");
  EXPECT_ERROR_HAS(one_tensor("w", {4, 0}, 0, 0, 32), "dimension 1 is 0");
  EXPECT_ERROR_HAS(one_tensor("w", {uint64_t(1) << 32, uint64_t(1) << 32}, 0, 0, 32),
                   "overflow");
  EXPECT_ERROR_HAS(one_tensor("w", {4}, 99, 0, 32), "unknown tensor type id 99");
  EXPECT_ERROR_HAS(one_tensor("w", {33}, 8, 0, 64), "not a multiple of the block size 32");
  EXPECT_ERROR_HAS(one_tensor("w", {4}, 0, 8, 64), "not a multiple of the alignment 32");
  EXPECT_ERROR_HAS(one_tensor("blk.0.attn_q.weight", {64, 16}, 0, 32, 3000),
                   "tensor 'blk.0.attn_q.weight' data [offset 32, 4096 bytes] extends past end "
                   "of file");
  EXPECT_ERROR_HAS(one_tensor("w", {4}, 0, uint64_t(1) << 63, 64), "extends past end");
  EXPECT_ERROR_HAS(one_tensor(std::string(65, 'n'), {4}, 0, 0, 64), "65 bytes long");
  EXPECT_ERROR_HAS(one_tensor("w\xc0\x80", {4}, 0, 0, 64), "not valid UTF-8");

  auto two = [](const std::string& n2, uint64_t off2) {
    Bytes b = header(2, 0);
    b.str("a").u32(1).u64(16).u32(0).u64(0);
    b.str(n2).u32(1).u64(8).u32(0).u64(off2).pad_to(32);
    b.raw(std::string(256, '\0'));
    return b;
  };
  EXPECT_EQ(parse_error(two("b", 64)), "OK");
  EXPECT_ERROR_HAS(two("b", 32), "tensor 'a' [offset 0, 64 bytes] overlaps tensor 'b'");
  EXPECT_ERROR_HAS(two("a", 64), "duplicate tensor name 'a'");
}

TEST(Gguf, Stories260KReads) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  const std::string path = test::shared_path("models/stories260K/stories260K.gguf");
  auto r = read_gguf(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelFile& mf = **r;
  EXPECT_EQ(mf.gguf_version, 3u);
  EXPECT_EQ(mf.architecture(), "llama");
  EXPECT_EQ(mf.meta.size(), 19u);
  EXPECT_EQ(*mf.get_int("llama.block_count").value(), 5);
  EXPECT_EQ(*mf.get_int("llama.embedding_length").value(), 64);
  EXPECT_EQ(*mf.get_int("llama.feed_forward_length").value(), 172);
  EXPECT_EQ(*mf.get_int("llama.attention.head_count").value(), 8);
  EXPECT_EQ(*mf.get_int("llama.attention.head_count_kv").value(), 4);
  EXPECT_EQ(*mf.get_int("llama.context_length").value(), 2048);
  EXPECT_EQ(*mf.get_int("llama.rope.dimension_count").value(), 8);
  EXPECT_EQ(*mf.get_int("tokenizer.ggml.bos_token_id").value(), 1);
  EXPECT_FLOAT_EQ(float(*mf.get_float("llama.attention.layer_norm_rms_epsilon").value()), 1e-5f);
  EXPECT_EQ(mf.get_string("tokenizer.ggml.model"), "llama");
  const MetaValue* tokens = mf.get("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_EQ(tokens->array_size(), 512u);
  EXPECT_EQ(tokens->str_at(1), "<s>");
  EXPECT_EQ(tokens->str_at(3), "<0x00>");
  EXPECT_EQ(mf.get("tokenizer.ggml.token_type")->elem_type, MetaType::I32);
  EXPECT_EQ(mf.tensors.size(), 48u);  // 3 global + 5 layers x 9
  const TensorInfo* q = mf.find("blk.0.attn_k.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(q->dtype, DType::F32);
  EXPECT_EQ(q->nbytes, 64u * 32 * 4);
  EXPECT_EQ(mf.find("blk.4.ffn_down.weight")->shape, (std::vector<int64_t>{172, 64}));
  EXPECT_EQ(mf.find("output_norm.weight")->offset, 131072u);
  // Zero copy: the data lies inside the one mapping.
  ASSERT_EQ(mf.maps.size(), 1u);
  EXPECT_GE(q->data, mf.maps[0]->data());
  EXPECT_LE(q->data + q->nbytes, mf.maps[0]->data() + mf.maps[0]->size());
}

TEST(Gguf, Stories260KRewriteReadsBackIdentically) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto src = read_gguf(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(src.ok()) << src.status().message();
  const std::string out = test::temp_path("stories_rewrite.gguf");
  ASSERT_TRUE(write_gguf(out, **src).is_ok());
  auto back = read_gguf(out);
  ASSERT_TRUE(back.ok()) << back.status().message();
  expect_same_model(**src, **back);
  // Same tensor order, same layout: the file is exactly as large as the original.
  EXPECT_EQ((*back)->file_bytes, (*src)->file_bytes);
  EXPECT_EQ((*back)->tensors[5].name, (*src)->tensors[5].name);
}

}  // namespace
}  // namespace edgeglm::formats
