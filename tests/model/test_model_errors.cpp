// Files that parse but do not describe a model we can run: each gives one error naming the file
// and the tensor or metadata key at fault. Built by editing stories260K's GGUF and writing it back.
#include <gtest/gtest.h>

#include "formats/gguf/gguf_writer.h"
#include "model/model.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

std::unique_ptr<formats::ModelFile> base() {
  auto f = formats::open_model(test::shared_path("models/stories260K/stories260K.gguf"));
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? std::move(f).value() : nullptr;
}

std::string load_error(formats::ModelFile& f, const std::string& name) {
  const std::string path = test::temp_path(name);
  EXPECT_TRUE(formats::write_gguf(path, f).is_ok());
  auto m = model::Model::load(path);
  EXPECT_FALSE(m.ok());
  if (m.ok()) return "";
  const std::string msg = m.status().message();
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  return msg;
}

}  // namespace

TEST(ModelErrors, UnknownArchitecture) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto f = base();
  f->meta["general.architecture"] = formats::MetaValue::from_string("mamba");
  EXPECT_NE(load_error(*f, "arch.gguf").find("unknown architecture 'mamba'"), std::string::npos);
}

TEST(ModelErrors, MissingTensorIsNamed) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto f = base();
  std::erase_if(f->tensors, [](const auto& t) { return t.name == "blk.3.ffn_up.weight"; });
  f->rebuild_index();
  EXPECT_NE(load_error(*f, "missing.gguf").find("'blk.3.ffn_up.weight' is missing"), std::string::npos);
}

TEST(ModelErrors, MisShapedTensorIsNamed) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto f = base();
  for (auto& t : f->tensors)
    if (t.name == "blk.1.attn_k.weight") t.shape = {32, 64};  // transposed: 64 x 32 expected
  const std::string msg = load_error(*f, "shape.gguf");
  EXPECT_NE(msg.find("'blk.1.attn_k.weight' has shape [32, 64], expected [64, 32]"), std::string::npos)
      << msg;
}

TEST(ModelErrors, BadHyperParameterIsNamed) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto f = base();
  f->meta["llama.attention.head_count_kv"] = formats::MetaValue::from_u32(3);  // 8 % 3 != 0
  EXPECT_NE(load_error(*f, "hkv.gguf").find("llama.attention.head_count_kv"), std::string::npos);
  f = base();
  f->meta.erase("llama.block_count");
  EXPECT_NE(load_error(*f, "blocks.gguf").find("'llama.block_count' is missing"), std::string::npos);
  f = base();
  f->meta["llama.block_count"] = formats::MetaValue::from_string("five");
  EXPECT_NE(load_error(*f, "blocks_type.gguf").find("llama.block_count"), std::string::npos);
}

TEST(ModelErrors, OutOfRangeTokenIsRejectedWithoutChangingState) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto m = model::Model::load(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(m.ok());
  ThreadPool pool(1);
  auto ctx = model::Context::create(**m, {}, pool);
  ASSERT_TRUE(ctx.ok());
  const int32_t bad[2] = {1, 512};
  auto st = (*ctx)->decode(bad, 2);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("512"), std::string::npos);
  EXPECT_EQ((*ctx)->n_past(), 0);
}
