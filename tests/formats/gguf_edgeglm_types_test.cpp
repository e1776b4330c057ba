// GGUF files with tensors in edgeglm's own types (ids >= 1024): written and read back with their
// ids, shapes, byte sizes (per-row headers included) and bytes unchanged; a size that ignores the
// per-row header is rejected by the writer.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/gguf_writer.h"
#include "quant/quant.h"
#include "test_util.h"

using namespace edgeglm;
using namespace edgeglm::formats;

TEST(GgufEdgeglmTypes, WriteReadRoundTripKeepsTypeSizeAndBytes) {
  struct Spec {
    DType t;
    int64_t cols, rows;
    uint64_t bytes;
  };
  const Spec specs[] = {{DType::I8_ROW, 96, 3, 3 * (4 + 96)},   {DType::U8_ROW, 64, 5, 5 * (8 + 64)},
                        {DType::I4_G64, 192, 2, 2 * 3 * 34},    {DType::I4_G128, 640, 3, 3 * 5 * 66},
                        {DType::U4_G64, 128, 7, 7 * 2 * 36},    {DType::U4_G128, 256, 1, 2 * 68}};
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<TensorInfo> infos;
  bufs.reserve(std::size(specs));
  for (const Spec& s : specs) {
    ASSERT_EQ(dtype_row_bytes(s.t, s.cols) * uint64_t(s.rows), s.bytes) << dtype_name(s.t);
    std::vector<float> f(static_cast<size_t>(s.cols));
    std::vector<uint8_t> q(s.bytes);
    for (int64_t r = 0; r < s.rows; ++r) {
      for (auto& v : f) v = nd(rng);
      quant::quantize_row(s.t, f.data(), q.data() + size_t(r) * dtype_row_bytes(s.t, s.cols), s.cols);
    }
    bufs.push_back(std::move(q));
    TensorInfo ti;
    ti.name = std::string("w.") + dtype_name(s.t);
    ti.dtype = s.t;
    ti.shape = {s.cols, s.rows};
    ti.nbytes = s.bytes;
    ti.data = bufs.back().data();
    infos.push_back(ti);
  }
  Metadata meta;
  meta["general.architecture"] = MetaValue::from_string("llama");
  const std::string path = test::temp_path("edgeglm_types.gguf");
  Status st = write_gguf(path, meta, infos);
  ASSERT_TRUE(st.is_ok()) << st.message();
  auto mf = read_gguf(path);
  ASSERT_TRUE(mf.ok()) << mf.status().message();
  ASSERT_EQ((*mf)->tensors.size(), std::size(specs));
  for (size_t i = 0; i < std::size(specs); ++i) {
    const TensorInfo* t = (*mf)->find(infos[i].name);
    ASSERT_NE(t, nullptr) << infos[i].name;
    EXPECT_EQ(t->dtype, specs[i].t);
    EXPECT_EQ(t->shape, infos[i].shape);
    EXPECT_EQ(t->nbytes, specs[i].bytes);
    EXPECT_EQ(std::memcmp(t->data, bufs[i].data(), bufs[i].size()), 0) << infos[i].name;
    EXPECT_EQ(t->view().nb[1], dtype_row_bytes(specs[i].t, specs[i].cols));
  }
  // A byte count computed without the per-row header is an error, not a silent misread.
  std::vector<TensorInfo> bad = {infos[0]};
  bad[0].nbytes = uint64_t(specs[0].cols * specs[0].rows);
  EXPECT_FALSE(write_gguf(test::temp_path("edgeglm_types_bad.gguf"), meta, bad).is_ok());
  // A row length that is not a whole number of groups is rejected.
  std::vector<TensorInfo> ragged = {infos[2]};
  ragged[0].shape = {96, 4};
  EXPECT_FALSE(write_gguf(test::temp_path("edgeglm_types_ragged.gguf"), meta, ragged).is_ok());
}
