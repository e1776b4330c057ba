// SentencePiece-style BPE: llama.cpp's Llama-2 tokenizer vectors, llama2.c tokenizer import.
#include <gtest/gtest.h>

#include "formats/vocab_import.h"
#include "tokenizer_test_util.h"

namespace edgeglm::test {
namespace {

using tokenizer::Tokenizer;

const char* kSpmGguf = "tokenizers/llama2/ggml-vocab-llama-spm.gguf";

// .inp: inputs separated by "\n__ggml_vocab_test__\n" (the file ends with one); .out: one line
// of space-separated ids per input, without BOS.
TEST(SpmTokenizer, LlamaCppVectorsMatchExactly) {
  EDGEGLM_REQUIRE_SHARED(kSpmGguf);
  auto tok = load_gguf_tokenizer(shared_path(kSpmGguf));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->kind(), tokenizer::VocabKind::kSpm);
  EXPECT_EQ(tok->n_vocab(), 32000);
  const std::string inp = read_file(shared_path(std::string(kSpmGguf) + ".inp"));
  const std::string out = read_file(shared_path(std::string(kSpmGguf) + ".out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < inp.size();) {
    size_t e = inp.find(sep, pos);
    ASSERT_NE(e, std::string::npos) << "input file must end with the separator";
    inputs.push_back(inp.substr(pos, e - pos));
    pos = e + sep.size();
  }
  std::vector<std::string> lines;
  std::istringstream os(out);
  for (std::string l; std::getline(os, l);) lines.push_back(l);
  ASSERT_EQ(inputs.size(), lines.size());
  int passed = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto ids = tok->encode(inputs[i], /*add_special=*/false, /*parse_special=*/false);
    auto expected = parse_ids(lines[i]);
    EXPECT_EQ(ids, expected) << "case " << i << ": \"" << inputs[i] << "\"";
    passed += ids == expected;
    // Round trip: SentencePiece keeps every byte (byte fallback), so decode gives the input back.
    EXPECT_EQ(tok->decode(ids), inputs[i]) << "case " << i;
  }
  std::printf("llama-spm vectors: %d/%zu cases match\n", passed, inputs.size());
}

TEST(SpmTokenizer, SpecialTokensAndBos) {
  EDGEGLM_REQUIRE_SHARED(kSpmGguf);
  auto tok = load_gguf_tokenizer(shared_path(kSpmGguf));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_FALSE(tok->add_eos());
  EXPECT_TRUE(tok->add_space_prefix());
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_FALSE(tok->is_eog(1));
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_FALSE(tok->is_special(15043));
  EXPECT_EQ(tok->encode("Hello world", true, false), (std::vector<int32_t>{1, 15043, 3186}));
  // "</s>" is text unless parse_special; with it, the text after gets the space prefix again.
  EXPECT_EQ(tok->encode("Hello</s>world", false, true),
            (std::vector<int32_t>{15043, 2, 3186}));
  auto plain = tok->encode("</s>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok->token_to_piece(2), "");
  EXPECT_EQ(tok->token_to_piece(2, true), "</s>");
  EXPECT_EQ(tok->token_to_piece(15043), " Hello");
  EXPECT_EQ(tok->token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(tok->decode({1, 15043, 3186, 2}), "Hello world");
  EXPECT_EQ(tok->find_token("<0x0A>").value_or(-1), 13);
  EXPECT_EQ(tok->token_text(15043), "\xE2\x96\x81Hello");
}

TEST(SpmTokenizer, LongInputRoundTrip) {
  EDGEGLM_REQUIRE_SHARED(kSpmGguf);
  EDGEGLM_REQUIRE_SHARED("data/wikitext2_test.raw");
  auto tok = load_gguf_tokenizer(shared_path(kSpmGguf));
  ASSERT_TRUE(tok);
  std::string text = read_file(shared_path("data/wikitext2_test.raw")).substr(0, 300000);
  text += std::string(20000, ' ') + std::string(20000, 'a');
  auto ids = tok->encode(text, true, false);
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ(tok->decode(ids), text);
}

TEST(SpmTokenizer, Llama2cTokenizerMatchesGgufVocab) {
  // tok512.bin (llama2.c) and stories260K.gguf carry the same vocabulary.
  EDGEGLM_REQUIRE_SHARED("models/stories260K/tok512.bin");
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  formats::Metadata meta;
  Status st = formats::import_llama2c_tokenizer(shared_path("models/stories260K/tok512.bin"), 512, meta);
  ASSERT_TRUE(st.is_ok()) << st.message();
  auto mf = formats::read_gguf(shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(mf.ok()) << mf.status().message();
  const auto& g = (*mf)->meta;
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
    const auto& a = meta.at(key);
    const auto& b = g.at(key);
    ASSERT_EQ(a.array_size(), b.array_size()) << key;
    for (size_t i = 0; i < a.array_size(); ++i) {
      const formats::MetaValue ai = a.element(i), bi = b.element(i);
      EXPECT_EQ(ai.s, bi.s) << key << "[" << i << "]";
      EXPECT_EQ(ai.f, bi.f) << key << "[" << i << "]";
      EXPECT_EQ(ai.as_int(), bi.as_int()) << key << "[" << i << "]";
    }
  }
}

TEST(SpmTokenizer, Llama2cTok512EncodesStories) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/tok512.bin");
  formats::Metadata meta;
  ASSERT_TRUE(formats::import_llama2c_tokenizer(shared_path("models/stories260K/tok512.bin"), 0, meta)
                  .is_ok());
  auto tok = Tokenizer::from_metadata(meta);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const auto& t = **tok;
  EXPECT_EQ(t.n_vocab(), 512);
  auto ids = t.encode("Once upon a time", true, false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);
  // Each piece is a real vocab entry, no byte fallback for plain English.
  std::string joined;
  for (size_t i = 1; i < ids.size(); ++i) {
    EXPECT_GE(ids[i], 259) << "byte fallback in plain text at " << i;
    joined += t.token_text(ids[i]);
  }
  EXPECT_EQ(joined, "\xE2\x96\x81Once\xE2\x96\x81upon\xE2\x96\x81" "a\xE2\x96\x81time");
  for (const char* s : {"Once upon a time", "The cat sat on the mat. It was happy!",
                        "Lily and Tom went to the park.\nThey played all day.", "  two  spaces ",
                        "x", "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", "Zebra 1234567890"}) {
    EXPECT_EQ(t.decode(t.encode(s, true, false)), s);
  }
}

TEST(SpmTokenizer, Llama2TokenizerBinMatchesGguf) {
  EDGEGLM_REQUIRE_SHARED("tokenizers/llama2/tokenizer.bin");
  EDGEGLM_REQUIRE_SHARED(kSpmGguf);
  formats::Metadata meta;
  Status st = formats::import_llama2c_tokenizer(shared_path("tokenizers/llama2/tokenizer.bin"), 32000, meta);
  ASSERT_TRUE(st.is_ok()) << st.message();
  auto mf = formats::read_gguf(shared_path(kSpmGguf));
  ASSERT_TRUE(mf.ok());
  const auto& a = meta.at("tokenizer.ggml.tokens");
  const auto& b = (*mf)->meta.at("tokenizer.ggml.tokens");
  ASSERT_EQ(a.array_size(), b.array_size());
  size_t diff = 0;
  for (size_t i = 0; i < a.array_size(); ++i) diff += a.str_at(i) != b.str_at(i);
  EXPECT_EQ(diff, 0u);
}

TEST(VocabImport, Llama2cErrorsNameTheFile) {
  formats::Metadata meta;
  Status st = formats::import_llama2c_tokenizer("/nonexistent/tok.bin", 10, meta);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("/nonexistent/tok.bin"), std::string::npos);

  // Truncated: header says max len 4, one token then the file ends.
  std::string path = temp_path("trunc_tok.bin");
  {
    std::ofstream f(path, std::ios::binary);
    int32_t max_len = 4, len = 2;
    float score = 0;
    f.write(reinterpret_cast<const char*>(&max_len), 4);
    f.write(reinterpret_cast<const char*>(&score), 4);
    f.write(reinterpret_cast<const char*>(&len), 4);
    f.write("ab", 2);
  }
  st = formats::import_llama2c_tokenizer(path, 3, meta);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("token 1"), std::string::npos) << st.message();

  // A token with invalid UTF-8 that is not a byte token.
  {
    std::ofstream f(path, std::ios::binary);
    int32_t max_len = 4;
    f.write(reinterpret_cast<const char*>(&max_len), 4);
    for (int i = 0; i < 4; ++i) {
      float score = 0;
      std::string text = i == 3 ? std::string("\xC3\x28") : std::string("ab");
      int32_t len = int32_t(text.size());
      f.write(reinterpret_cast<const char*>(&score), 4);
      f.write(reinterpret_cast<const char*>(&len), 4);
      f.write(text.data(), len);
    }
  }
  st = formats::import_llama2c_tokenizer(path, 4, meta);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("token 3"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("UTF-8"), std::string::npos) << st.message();
}

TEST(Tokenizer, FromMetadataErrorsNameTheKey) {
  formats::Metadata meta;
  auto r = Tokenizer::from_metadata(meta);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tokenizer.ggml.model"), std::string::npos);
  meta["tokenizer.ggml.model"] = formats::MetaValue::from_string("llama");
  r = Tokenizer::from_metadata(meta);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tokenizer.ggml.tokens"), std::string::npos);
  meta["tokenizer.ggml.model"] = formats::MetaValue::from_string("rwkv");
  r = Tokenizer::from_metadata(meta);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rwkv"), std::string::npos);
}

}  // namespace
}  // namespace edgeglm::test
