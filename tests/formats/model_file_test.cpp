#include "formats/model_file.h"

#include <gtest/gtest.h>

#include <cstring>

namespace edgeglm::formats {
namespace {

TEST(MetaValue, IntegerAndFloatConversions) {
  EXPECT_EQ(MetaValue::from_u32(7).as_int(), 7);
  EXPECT_EQ(MetaValue::from_i32(-3).as_int(), -3);
  EXPECT_EQ(MetaValue::from_u64(uint64_t(1) << 40).as_int(), int64_t(1) << 40);
  EXPECT_FALSE(MetaValue::from_u64(~uint64_t(0)).as_int().has_value());  // > INT64_MAX
  EXPECT_FALSE(MetaValue::from_f32(1.5f).as_int().has_value());
  EXPECT_FALSE(MetaValue::from_bool(true).as_int().has_value());
  EXPECT_DOUBLE_EQ(*MetaValue::from_f32(1.5f).as_double(), 1.5);
  EXPECT_DOUBLE_EQ(*MetaValue::from_i32(-2).as_double(), -2.0);
  EXPECT_FALSE(MetaValue::from_string("x").as_double().has_value());
  EXPECT_TRUE(MetaValue::from_u32(1).is_integer());
  EXPECT_FALSE(MetaValue::from_bool(false).is_integer());
  EXPECT_TRUE(MetaValue::from_f32(0).is_float());
}

TEST(MetaValue, ToString) {
  EXPECT_EQ(MetaValue::from_u32(42).to_string(), "42");
  EXPECT_EQ(MetaValue::from_i32(-42).to_string(), "-42");
  EXPECT_EQ(MetaValue::from_bool(true).to_string(), "true");
  EXPECT_EQ(MetaValue::from_f32(0.5f).to_string(), "0.5");
  EXPECT_EQ(MetaValue::from_string("a\"b\n").to_string(), "\"a\\\"b\\x0a\"");
  std::vector<MetaValue> v;
  for (int k = 0; k < 10; ++k) v.push_back(MetaValue::from_i32(k));
  EXPECT_EQ(MetaValue::from_array(MetaType::I32, v).to_string(3), "[0, 1, 2, ... (10 items)]");
  EXPECT_EQ(MetaValue::from_array(MetaType::I32, {}).to_string(), "[]");
  auto nested = MetaValue::from_array(
      MetaType::Array, {MetaValue::from_array(MetaType::String, {MetaValue::from_string("x")})});
  EXPECT_EQ(nested.to_string(), "[[\"x\"]]");
  EXPECT_EQ(MetaValue::from_strings({"a", "b"}).to_string(), "[\"a\", \"b\"]");
  EXPECT_EQ(MetaValue::from_f32s({0.5f, -2.0f}).to_string(), "[0.5, -2]");
  EXPECT_STREQ(meta_type_name(MetaType::F64), "f64");
}

TEST(MetaValue, CompactArrays) {
  // from_array picks the compact store; the typed constructors give the same value.
  auto ints = MetaValue::from_array(MetaType::I32, {MetaValue::from_i32(-7), MetaValue::from_i32(3)});
  EXPECT_TRUE(ints.arr.empty());
  EXPECT_EQ(ints.raw, MetaValue::from_i32s({-7, 3}).raw);
  ASSERT_EQ(ints.array_size(), 2u);
  EXPECT_EQ(ints.int_at(0), -7);
  EXPECT_EQ(ints.float_at(1), 3.0);
  EXPECT_EQ(ints.element(0).type, MetaType::I32);
  auto strs = MetaValue::from_array(MetaType::String, {MetaValue::from_string("x")});
  EXPECT_EQ(strs.strs, std::vector<std::string>{"x"});
  EXPECT_EQ(strs.str_at(0), "x");
  EXPECT_EQ(strs.int_at(0), std::nullopt);
  auto big = MetaValue::from_array(MetaType::U64, {MetaValue::from_u64(~uint64_t(0))});
  EXPECT_EQ(big.int_at(0), std::nullopt);
  EXPECT_EQ(big.element(0).u, ~uint64_t(0));
  auto bools = MetaValue::from_array(MetaType::Bool, {MetaValue::from_bool(true)});
  EXPECT_EQ(bools.int_at(0), std::nullopt);
  EXPECT_EQ(bools.element(0).u, 1u);
  auto floats = MetaValue::from_f32s({0.25f});
  EXPECT_EQ(floats.float_at(0), 0.25);
  EXPECT_EQ(floats.int_at(0), std::nullopt);
  // Mixed element types stay as MetaValues so the writer can name the bad element.
  auto mixed = MetaValue::from_array(MetaType::U32, {MetaValue::from_string("oops")});
  EXPECT_EQ(mixed.arr.size(), 1u);
  EXPECT_EQ(mixed.array_size(), 1u);
  EXPECT_EQ(MetaValue::from_u32(5).array_size(), 0u);
}

TEST(ModelFile, TypedLookups) {
  ModelFile mf;
  mf.path = "m.gguf";
  MetaValue u8;
  u8.type = MetaType::U8;
  u8.u = 200;
  MetaValue i64;
  i64.type = MetaType::I64;
  i64.i = -5;
  mf.meta["a.u8"] = u8;
  mf.meta["a.i64"] = i64;
  mf.meta["a.f"] = MetaValue::from_f32(2.5f);
  mf.meta["a.s"] = MetaValue::from_string("llama");
  mf.meta["general.architecture"] = MetaValue::from_string("glm4");

  EXPECT_EQ(mf.get_int("a.u8").value(), 200);
  EXPECT_EQ(mf.get_int("a.i64").value(), -5);
  EXPECT_FALSE(mf.get_int("missing").value().has_value());
  auto bad = mf.get_int("a.s");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("a.s"), std::string::npos);
  EXPECT_NE(bad.status().message().find("m.gguf"), std::string::npos);
  EXPECT_NE(bad.status().message().find("string"), std::string::npos);
  EXPECT_FALSE(mf.get_int("a.f").ok());

  EXPECT_DOUBLE_EQ(*mf.get_float("a.f").value(), 2.5);
  EXPECT_DOUBLE_EQ(*mf.get_float("a.u8").value(), 200.0);  // ints are numbers too
  EXPECT_FALSE(mf.get_float("a.s").ok());
  EXPECT_EQ(mf.get_string("a.s"), "llama");
  EXPECT_FALSE(mf.get_string("a.f").has_value());
  EXPECT_EQ(mf.architecture(), "glm4");
  EXPECT_EQ(mf.get("nope"), nullptr);
}

TEST(ModelFile, FindAndView) {
  ModelFile mf;
  std::vector<float> w(6);
  for (int k = 0; k < 6; ++k) w[k] = float(k);
  TensorInfo t;
  t.name = "w";
  t.shape = {3, 2};
  t.nbytes = 24;
  t.data = reinterpret_cast<const uint8_t*>(w.data());
  mf.tensors.push_back(t);
  t.name = "v";
  t.shape = {6};
  mf.tensors.push_back(t);
  mf.rebuild_index();
  ASSERT_NE(mf.find("w"), nullptr);
  EXPECT_EQ(mf.find("x"), nullptr);
  EXPECT_EQ(mf.find("w")->nelements(), 6);
  TensorView v = mf.find("w")->view();
  EXPECT_EQ(v.ne[0], 3);
  EXPECT_EQ(v.ne[1], 2);
  EXPECT_EQ(v.ne[2], 1);
  EXPECT_EQ(v.nb[1], 12u);
  EXPECT_EQ(v.row<float>(1)[2], 5.0f);
  EXPECT_EQ(mf.find("v")->view().ne[1], 1);
}

}  // namespace
}  // namespace edgeglm::formats
