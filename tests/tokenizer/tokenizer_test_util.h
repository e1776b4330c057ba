// Helpers for the tokenizer tests: load a tokenizer from a GGUF's metadata or a HF directory.
#pragma once
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "formats/gguf/gguf_reader.h"
#include "formats/vocab_import.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::test {

inline std::unique_ptr<tokenizer::Tokenizer> load_gguf_tokenizer(const std::string& path) {
  auto mf = formats::read_gguf(path);
  EXPECT_TRUE(mf.ok()) << mf.status().message();
  if (!mf.ok()) return nullptr;
  auto tok = tokenizer::Tokenizer::from_metadata((*mf)->meta);
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  if (!tok.ok()) return nullptr;
  return std::move(tok).value();
}

inline std::unique_ptr<tokenizer::Tokenizer> load_hf_tokenizer(const std::string& dir,
                                                               formats::Metadata* meta_out = nullptr) {
  formats::Metadata meta;
  Status st = formats::import_hf_tokenizer(dir, meta);
  EXPECT_TRUE(st.is_ok()) << st.message();
  if (!st.is_ok()) return nullptr;
  auto tok = tokenizer::Tokenizer::from_metadata(meta);
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  if (meta_out) *meta_out = meta;
  if (!tok.ok()) return nullptr;
  return std::move(tok).value();
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream is(line);
  long v;
  while (is >> v) ids.push_back(int32_t(v));
  return ids;
}

// Unescapes the \n, \t, \r, \\ and \xHH escapes of the committed vector files.
inline std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out.push_back(s[i]);
      continue;
    }
    char c = s[++i];
    if (c == 'n') out.push_back('\n');
    else if (c == 't') out.push_back('\t');
    else if (c == 'r') out.push_back('\r');
    else if (c == '\\') out.push_back('\\');
    else if (c == 'x' && i + 2 < s.size()) {
      out.push_back(char(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back('\\');
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace edgeglm::test
