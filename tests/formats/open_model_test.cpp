#include <gtest/gtest.h>

#include <filesystem>

#include "format_test_util.h"
#include "formats/gguf/gguf_writer.h"
#include "formats/llama2c/llama2c_reader.h"
#include "formats/model_file.h"

namespace edgeglm::formats {
namespace {

using test::Bytes;

TEST(OpenModel, DispatchesOnContent) {
  // A GGUF with a misleading extension is still read as GGUF.
  std::vector<float> w(8, 1.0f);
  TensorInfo t;
  t.name = "token_embd.weight";
  t.shape = {8};
  t.data = reinterpret_cast<const uint8_t*>(w.data());
  Metadata m;
  m["general.architecture"] = MetaValue::from_string("llama");
  const std::string gguf = test::temp_path("open_model_gguf.bin");
  ASSERT_TRUE(write_gguf(gguf, m, {t}).is_ok());
  auto r = open_model(gguf);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->kind, FileKind::kGguf);
  EXPECT_EQ((*r)->architecture(), "llama");

  // A consistent legacy llama2.c header: dim 2, hidden 2, 1 layer, 1 head, vocab 1, seq 1.
  Bytes b;
  b.i32(2).i32(2).i32(1).i32(1).i32(1).i32(1).i32(1);
  const int floats = 2 + 2 + 4 + 4 + 4 + 4 + 2 + 4 + 4 + 4 + 2 + 2;
  for (int k = 0; k < floats; ++k) b.f32(0.5f);
  const std::string ckpt = test::temp_path("open_model_ckpt.dat");
  test::write_file(ckpt, b.b);
  r = open_model(ckpt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->kind, FileKind::kLlama2c);
  EXPECT_EQ((*r)->tensors.size(), 11u);
}

TEST(OpenModel, ErrorsNameThePath) {
  auto r = open_model("/no/such/model.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/no/such/model.gguf"), std::string::npos);

  const std::string junk = test::temp_path("open_model_junk.bin");
  test::write_file(junk, "this is not a model, just some text that is long enough");
  r = open_model(junk);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(junk + ": unrecognised model format", 0), 0u)
      << r.status().message();

  const std::string empty = test::temp_path("open_model_empty.bin");
  test::write_file(empty, "");
  EXPECT_FALSE(open_model(empty).ok());

  Bytes v2;
  v2.u32(kLlama2cMagic).i32(2).pad_to(256);
  const std::string q8 = test::temp_path("open_model_q8.bin");
  test::write_file(q8, v2.b);
  r = open_model(q8);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("version 2"), std::string::npos);

  const std::string dir = test::temp_path("open_model_not_hf");
  std::filesystem::create_directories(dir);
  r = open_model(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no config.json"), std::string::npos);
}

TEST(OpenModel, Stories260KWithTokenizer) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  EDGEGLM_REQUIRE_SHARED("models/stories260K/tok512.bin");
  auto r = open_model(test::shared_path("models/stories260K/stories260K.bin"),
                      test::shared_path("models/stories260K/tok512.bin"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->kind, FileKind::kLlama2c);
  EXPECT_EQ(*(*r)->get_int("llama.block_count").value(), 5);
  const MetaValue* tokens = (*r)->get("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr) << "tokenizer not imported";
  EXPECT_EQ(tokens->array_size(), 512u);
  EXPECT_EQ((*r)->get_string("tokenizer.ggml.model"), "llama");

  auto g = open_model(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ((*g)->kind, FileKind::kGguf);
  EXPECT_EQ((*g)->tensors.size(), 48u);
}

}  // namespace
}  // namespace edgeglm::formats
