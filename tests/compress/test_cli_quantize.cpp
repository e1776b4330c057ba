// `edgeglm quantize` through the binary: --list, the bad-input cases (each a clear error
// with the input untouched and no output left behind), and a calibrated run end to end.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli/cli_test_util.h"

namespace edgeglm::test {
namespace {

namespace fs = std::filesystem;

TEST(CliQuantize, ListShowsEverySchemeWithBits) {
  CliResult r = run_cli("quantize --list");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"int8 ", "uint8-asym", "int4-g32", "int4-g128", "uint4-g64-asym", "q4_k_m", "q5_k_m", "mixed"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  EXPECT_NE(r.out.find("4.500"), std::string::npos);  // q4_0 / int4-g32
  EXPECT_NE(r.out.find("4.125"), std::string::npos);  // int4-g128
}

class CliQuantizeStories : public ::testing::Test {
 protected:
  void SetUp() override {
    EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
    dir_ = temp_path("cliq_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    in_ = dir_ + "/in.gguf";
    fs::copy_file(shared_path("models/stories260K/stories260K.gguf"), in_);
    before_ = bytes(in_);
  }
  void TearDown() override {
    if (!dir_.empty()) {
      EXPECT_EQ(bytes(in_), before_) << "the input was modified";
      fs::remove_all(dir_);
    }
  }
  static std::string bytes(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  void write(const std::string& p, const std::string& content) {
    std::ofstream(p, std::ios::binary) << content;
  }
  // A failing run: non-zero exit, `needle` in the message, no output file (nor its .tmp).
  void expect_error(const std::string& args, const std::string& needle) {
    CliResult r = run_cli("quantize " + in_ + " -o " + dir_ + "/out.gguf " + args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\n" << r.err;
    EXPECT_FALSE(fs::exists(dir_ + "/out.gguf")) << args;
    EXPECT_FALSE(fs::exists(dir_ + "/out.gguf.tmp")) << args;
  }
  std::string dir_, in_, before_;
};

TEST_F(CliQuantizeStories, BadInputGivesClearErrors) {
  expect_error("--scheme int3", "unknown scheme 'int3'");
  expect_error("", "--scheme is required");
  expect_error("--scheme mixed --calib " + in_, "needs --target-bpw");
  expect_error("--scheme q4_0 --target-bpw 4", "need --scheme mixed");
  write(dir_ + "/empty.txt", "\n  \n");
  expect_error("--scheme int4-g32 --calib " + dir_ + "/empty.txt", "calibration file is empty");
  expect_error("--scheme int4-g32 --calib " + in_, "not text");
  expect_error("--scheme int4-g32 --calib " + dir_ + "/missing.txt", "missing.txt");
  expect_error("--scheme q4_0 --keep 'attn_q=q9'", "unknown type 'q9'");
  expect_error("--scheme int8 --smooth 0.5", "--smooth needs --calib");
  expect_error("--scheme int8 --smooth 1.5", "--smooth");
  write(dir_ + "/calib.txt", bytes(shared_path("data/tinystories_valid_1000.txt")).substr(0, 40000));
  expect_error("--scheme mixed --target-bpw 1.5 --calib " + dir_ + "/calib.txt", "below the smallest plan");
  // Unwritable output: a missing directory, and the input itself.
  CliResult r = run_cli("quantize " + in_ + " -o " + dir_ + "/no/such/dir/out.gguf --scheme q8_0");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  r = run_cli("quantize " + in_ + " -o " + in_ + " --scheme q8_0");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("overwrite the input"), std::string::npos) << r.err;
}

TEST_F(CliQuantizeStories, CalibratedRunWritesFileAndSaysSo) {
  write(dir_ + "/calib.txt", bytes(shared_path("data/tinystories_valid_1000.txt")).substr(0, 40000));
  CliResult r = run_cli("quantize " + in_ + " -o " + dir_ + "/out.gguf --scheme int4-g32 --calib " + dir_ +
                        "/calib.txt --calib-tokens 512 --keep 'output=q8_0'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("calibrated (GPTQ)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("calibration: "), std::string::npos) << r.err;
  CliResult info = run_cli("info " + dir_ + "/out.gguf --tensors");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("q4_0"), std::string::npos);
  // Without --calib the command says it rounds to nearest.
  r = run_cli("quantize " + in_ + " -o " + dir_ + "/rtn.gguf --scheme int4-g32");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("plain round-to-nearest"), std::string::npos) << r.err;
  // int8 pads stories260K's 172-channel FFN to 192 (i8_row rows are whole 32-blocks) and says so;
  // every matrix product is then int8.
  r = run_cli("quantize " + in_ + " -o " + dir_ + "/i8.gguf --scheme int8");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("padded the FFN from 172 to 192 channels"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("tensors: 11 f32, 37 i8_row;"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("kept as"), std::string::npos) << r.err;
  info = run_cli("info " + dir_ + "/i8.gguf");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("ffn 192 (172 + 20 zero channels)"), std::string::npos) << info.out;
  // A scheme that cannot store a tensor in its format says which, and why (q4_k: 256-blocks).
  r = run_cli("quantize " + in_ + " --scheme q4_k --plan-only");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("note: 5 matrices kept as f16, not q4_k: rows of 172 elements"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("kept as q5_0, not q4_k: rows of 64 elements"), std::string::npos) << r.err;
  // --report: the before/after table, base first, in markdown and JSON.
  r = run_cli("quantize " + in_ + " -o " + dir_ + "/rep.gguf --scheme q8_0 --report --eval-ppl " + dir_ +
              "/calib.txt --eval-chunks 2 --note 'test note'");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string md = bytes(dir_ + "/rep.report.md");
  const size_t base_row = md.find("| in.gguf (base)"), out_row = md.find("| rep.gguf");
  ASSERT_NE(base_row, std::string::npos) << md;
  ASSERT_NE(out_row, std::string::npos) << md;
  EXPECT_LT(base_row, out_row);
  EXPECT_NE(md.find("test note"), std::string::npos);
  EXPECT_NE(md.find("quantized with --scheme q8_0"), std::string::npos);
  const std::string js = bytes(dir_ + "/rep.report.json");
  EXPECT_NE(js.find("\"kld\""), std::string::npos) << js.substr(0, 400);
  EXPECT_NE(r.out.find("| rep.gguf"), std::string::npos);
  // --plan-only writes nothing.
  r = run_cli("quantize " + in_ + " --scheme q4_k_m --plan-only");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("blk.0.attn_q.weight"), std::string::npos);
}

}  // namespace
}  // namespace edgeglm::test
