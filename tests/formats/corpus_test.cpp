// Replays every malformed file of tests/data/corpus (made by scripts/make_corpus.py, plus inputs
// the fuzzers once crashed on) through its parser: each must give an error naming the file.
#include <gtest/gtest.h>

#include <filesystem>

#include "format_test_util.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/llama2c/llama2c_reader.h"
#include "formats/safetensors/hf_loader.h"
#include "formats/safetensors/safetensors_reader.h"

namespace edgeglm::formats {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> corpus_files(const std::string& kind) {
  std::vector<std::string> files;
  const fs::path dir = test::data_path("corpus/" + kind);
  if (!fs::is_directory(dir)) return files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

void expect_error(const Status& st, const std::string& path) {
  EXPECT_FALSE(st.is_ok()) << path << " was accepted";
  EXPECT_NE(st.message().find(fs::path(path).filename().string()), std::string::npos)
      << path << ": message does not name the file: " << st.message();
  EXPECT_LT(st.message().size(), 2000u) << path;
}

TEST(Corpus, GgufFilesAreRejected) {
  auto files = corpus_files("gguf");
  ASSERT_GE(files.size(), 40u) << "run scripts/make_corpus.py";
  for (const auto& f : files) {
    expect_error(read_gguf(f).status(), f);
    expect_error(open_model(f).status(), f);
  }
}

TEST(Corpus, Llama2cFilesAreRejected) {
  auto files = corpus_files("llama2c");
  ASSERT_GE(files.size(), 15u) << "run scripts/make_corpus.py";
  for (const auto& f : files) {
    expect_error(read_llama2c(f).status(), f);
    expect_error(open_model(f).status(), f);
  }
}

TEST(Corpus, SafetensorsAndConfigFilesAreRejected) {
  auto files = corpus_files("safetensors");
  ASSERT_GE(files.size(), 20u) << "run scripts/make_corpus.py";
  for (const auto& f : files) {
    if (fs::path(f).extension() == ".json") {
      auto text = read_text_file(f);
      ASSERT_TRUE(text.ok()) << f;
      expect_error(parse_hf_config(*text, f).status(), f);
      continue;
    }
    auto map = MappedFile::open(f);
    ASSERT_TRUE(map.ok()) << f;
    expect_error(parse_safetensors((*map)->data(), (*map)->size(), f).status(), f);
  }
}

}  // namespace
}  // namespace edgeglm::formats
