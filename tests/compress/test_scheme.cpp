// Scheme table and per-tensor format rules (quant/scheme.h), --keep parsing, and the
// mixed-precision chooser on hand-made predictions. No model files needed.
#include <gtest/gtest.h>

#include "compress/mixed_plan.h"
#include "compress/quantize_model.h"
#include "quant/quant.h"
#include "quant/scheme.h"

namespace edgeglm {
namespace {

using quant::find_scheme;
using quant::ModelDesc;
using quant::scheme_tensor_type;
using quant::TensorDesc;

TensorDesc matrix(const std::string& name, int64_t cols, int64_t rows) {
  return TensorDesc{name, 2, cols, rows};
}

TEST(Scheme, EveryNameResolvesAndUnknownListsChoices) {
  for (const quant::Scheme& s : quant::schemes()) {
    auto r = find_scheme(s.name);
    ASSERT_TRUE(r.ok()) << s.name;
    EXPECT_EQ(*r, &s);
    if (s.kind != quant::SchemeKind::kMixed) {
      const quant::QuantOps* ops = quant::quant_ops(s.type);
      ASSERT_NE(ops, nullptr) << s.name;
      EXPECT_NE(ops->quantize_row, nullptr) << s.name << " has no reference quantizer";
    }
  }
  EXPECT_TRUE(find_scheme("Q4_K_M").ok());  // case-insensitive
  auto bad = find_scheme("int3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("int4-g128"), std::string::npos) << bad.status().message();
}

TEST(Scheme, IssueNamesExist) {
  for (const char* n : {"int8", "uint8-asym", "int4-g32", "int4-g64", "int4-g128", "uint4-g32-asym",
                        "uint4-g64-asym", "uint4-g128-asym", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                        "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m", "f16", "bf16", "mixed"})
    EXPECT_TRUE(find_scheme(n).ok()) << n;
}

// llama.cpp's Q4_K_M on SmolLM2-135M (30 layers, 576 wide, tied output), as its llama-quantize
// writes it: attn_v and ffn_down get Q6_K in layers 0-2, 5, 8, ..., 23, 26-29; 576-column K-quants
// fall back (Q4_K -> Q5_0, Q6_K -> Q8_0); the tied embedding is the output (Q6_K -> Q8_0).
TEST(Scheme, Q4KMMatchesLlamaCppOnSmolLM2Shape) {
  const quant::Scheme& s = **find_scheme("q4_k_m");
  const ModelDesc m{30, true};
  const std::vector<int> more = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29};
  for (int il = 0; il < 30; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const bool hi = std::find(more.begin(), more.end(), il) != more.end();
    EXPECT_EQ(scheme_tensor_type(s, matrix(p + "attn_v.weight", 576, 192), m, DType::F32),
              hi ? DType::Q8_0 : DType::Q5_0) << il;
    EXPECT_EQ(scheme_tensor_type(s, matrix(p + "ffn_down.weight", 1536, 576), m, DType::F32),
              hi ? DType::Q6_K : DType::Q4_K) << il;
    EXPECT_EQ(scheme_tensor_type(s, matrix(p + "attn_q.weight", 576, 576), m, DType::F32), DType::Q5_0);
  }
  EXPECT_EQ(scheme_tensor_type(s, matrix("token_embd.weight", 576, 49152), m, DType::F32), DType::Q8_0);
  // Untied, 2048 wide: output Q6_K, embedding the base type.
  const ModelDesc untied{22, false};
  EXPECT_EQ(scheme_tensor_type(s, matrix("output.weight", 2048, 32000), untied, DType::F16), DType::Q6_K);
  EXPECT_EQ(scheme_tensor_type(s, matrix("token_embd.weight", 2048, 32000), untied, DType::F16), DType::Q4_K);
}

TEST(Scheme, VectorsStayAndOwnFormatsFallBack) {
  const ModelDesc m{5, false};
  const quant::Scheme& g128 = **find_scheme("int4-g128");
  EXPECT_EQ(scheme_tensor_type(g128, TensorDesc{"blk.0.attn_norm.weight", 1, 64, 1}, m, DType::F32), DType::F32);
  EXPECT_EQ(scheme_tensor_type(g128, matrix("blk.0.attn_q.weight", 256, 256), m, DType::F32), DType::I4_G128);
  EXPECT_EQ(scheme_tensor_type(g128, matrix("blk.0.attn_q.weight", 64, 64), m, DType::F32), DType::Q4_0);
  EXPECT_EQ(scheme_tensor_type(g128, matrix("blk.0.ffn_down.weight", 172, 64), m, DType::F32), DType::F16);
  const quant::Scheme& u64 = **find_scheme("uint4-g64-asym");
  EXPECT_EQ(scheme_tensor_type(u64, matrix("blk.0.ffn_up.weight", 96, 8), m, DType::F32), DType::Q4_1);
  // int8 quantizes every matmul, the output too; 4-bit schemes keep the output at 8 bits here.
  const quant::Scheme& i8 = **find_scheme("int8");
  EXPECT_EQ(scheme_tensor_type(i8, matrix("output.weight", 64, 512), m, DType::F32), DType::I8_ROW);
  EXPECT_EQ(scheme_tensor_type(g128, matrix("output.weight", 64, 512), m, DType::F32), DType::Q8_0);
  EXPECT_EQ(scheme_tensor_type(**find_scheme("f16"), matrix("output.weight", 64, 512), m, DType::Q4_0), DType::F16);
}

// The format before the fallback (what quantize's "kept as" note names) and after it.
TEST(Scheme, PreferredTypeIsTheSchemesFormatBeforeTheFallback) {
  const ModelDesc m{5, false};
  const quant::Scheme& i8 = **find_scheme("int8");
  const TensorDesc down = matrix("blk.0.ffn_down.weight", 172, 64);
  EXPECT_EQ(quant::scheme_preferred_type(i8, down, m, DType::F32), DType::I8_ROW);
  EXPECT_EQ(scheme_tensor_type(i8, down, m, DType::F32), DType::F16);
  const quant::Scheme& km = **find_scheme("q4_k_m");
  const TensorDesc v = matrix("blk.4.attn_v.weight", 64, 32);  // last of 5 layers: Q6_K, rows too short
  EXPECT_EQ(quant::scheme_preferred_type(km, v, m, DType::F32), DType::Q6_K);
  EXPECT_EQ(scheme_tensor_type(km, v, m, DType::F32), DType::Q8_0);
  EXPECT_EQ(quant::scheme_preferred_type(km, matrix("blk.0.attn_q.weight", 256, 256), m, DType::F32), DType::Q4_K);
  const TensorDesc norm{"blk.0.attn_norm.weight", 1, 64, 1};
  EXPECT_EQ(quant::scheme_preferred_type(i8, norm, m, DType::F32), DType::F32);
}

TEST(Scheme, FallbackNotesGroupTensorsByFormatAndRowLength) {
  auto choice = [](const std::string& name, DType wanted, DType to, int64_t cols) {
    compress::TensorChoice c;
    c.name = name;
    c.wanted = wanted;
    c.to = to;
    c.cols = cols;
    c.rows = 64;
    return c;
  };
  std::vector<compress::TensorChoice> plan;
  for (int i = 0; i < 5; ++i) plan.push_back(choice("blk." + std::to_string(i) + ".ffn_down.weight", DType::I8_ROW, DType::F16, 172));
  plan.push_back(choice("blk.0.attn_q.weight", DType::I8_ROW, DType::I8_ROW, 64));
  plan.push_back(choice("output.weight", DType::Q6_K, DType::Q8_0, 64));
  EXPECT_TRUE(compress::fallback_notes({plan[5]}).empty());
  const std::vector<std::string> notes = compress::fallback_notes(plan);
  ASSERT_EQ(notes.size(), 2u);
  const std::string& a = notes[0].find("i8_row") != std::string::npos ? notes[0] : notes[1];
  const std::string& b = &a == &notes[0] ? notes[1] : notes[0];
  EXPECT_EQ(a, "5 matrices kept as f16, not i8_row: rows of 172 elements are no whole number of its 32-element "
               "blocks (blk.0.ffn_down.weight, blk.1.ffn_down.weight, blk.2.ffn_down.weight, ...)");
  EXPECT_EQ(b, "1 matrix kept as q8_0, not q6_k: rows of 64 elements are no whole number of its 256-element "
               "blocks (output.weight)");
}

TEST(Scheme, LayerOf) {
  EXPECT_EQ(quant::layer_of("blk.12.ffn_up.weight"), 12);
  EXPECT_EQ(quant::layer_of("output.weight"), -1);
  EXPECT_EQ(quant::layer_of("blk.x.ffn_up.weight"), -1);
}

TEST(KeepRule, ParsesTypesSchemesAndRejectsBadInput) {
  auto a = compress::parse_keep_rule("output|token_embd=q8_0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->type, DType::Q8_0);
  EXPECT_TRUE(std::regex_search(std::string("token_embd.weight"), a->re));
  EXPECT_FALSE(std::regex_search(std::string("blk.0.attn_q.weight"), a->re));
  auto b = compress::parse_keep_rule("ffn_down=int8");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->type, DType::I8_ROW);
  for (const char* bad : {"no-equals", "=q8_0", "x=", "x=q9_9", "([=q8_0", "x=mixed", "x=q3_k"})
    EXPECT_FALSE(compress::parse_keep_rule(bad).ok()) << bad;
}

compress::TensorPlan fake(const std::string& name, std::map<DType, std::pair<uint64_t, double>> c) {
  compress::TensorPlan t;
  t.name = name;
  for (auto& [type, bl] : c) {
    t.bytes[type] = bl.first;
    t.predicted_kld[type] = bl.second;
  }
  return t;
}

TEST(MixedChooser, SpendsBudgetWhereLossDropsMost) {
  // Tensor a is sensitive, b is not: with room for one upgrade, a gets it.
  std::vector<compress::TensorPlan> ts = {
      fake("a", {{DType::Q4_0, {100, 1.0}}, {DType::Q8_0, {200, 0.01}}}),
      fake("b", {{DType::Q4_0, {100, 0.1}}, {DType::Q8_0, {200, 0.001}}}),
  };
  auto used = compress::choose_formats(ts, 300);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, 300u);
  EXPECT_EQ(ts[0].chosen, DType::Q8_0);
  EXPECT_EQ(ts[1].chosen, DType::Q4_0);
  // Everything fits: best everywhere.
  ASSERT_TRUE(compress::choose_formats(ts, 1000).ok());
  EXPECT_EQ(ts[1].chosen, DType::Q8_0);
  // Below the cheapest plan: a clear error.
  auto none = compress::choose_formats(ts, 199);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("below the smallest plan"), std::string::npos);
}

TEST(MixedChooser, LossFallsAsBudgetGrows) {
  std::vector<compress::TensorPlan> ts;
  for (int i = 0; i < 20; ++i)
    ts.push_back(fake(std::string("t").append(std::to_string(i)), {{DType::I4_G128, {66, 1.0 / (i + 1)}},
                                                 {DType::Q4_0, {72, 0.7 / (i + 1)}},
                                                 {DType::Q5_0, {88, 0.3 / (i + 1)}},
                                                 {DType::Q8_0, {136, 0.01 / (i + 1)}}}));
  double prev = 1e9;
  for (uint64_t budget = 66 * 20; budget <= 136 * 20; budget += 97) {
    auto used = compress::choose_formats(ts, budget);
    ASSERT_TRUE(used.ok());
    EXPECT_LE(*used, budget);
    double loss = 0;
    for (auto& t : ts) loss += t.predicted_kld.at(t.chosen);
    EXPECT_LE(loss, prev + 1e-12);
    prev = loss;
  }
}

}  // namespace
}  // namespace edgeglm
