// edgeglm convert: llama2.c checkpoint, Hugging Face directory or GGUF -> GGUF with full metadata
// and vocabulary, so the result runs with no side files.
#include <cstdio>

#include "common.h"
#include "model/convert.h"

namespace edgeglm::cli {
namespace {

struct ConvertArgs {
  std::string src;
  std::string out;
  std::string tokenizer;
  std::string dtype = "f32";
};

int run(const ConvertArgs& a) {
  auto dt = dtype_from_name(a.dtype);
  if (!dt.ok()) return fail(dt.status());
  auto file = formats::open_model(a.src, a.tokenizer);
  if (!file.ok()) return fail(file.status());
  if (!(*file)->get("tokenizer.ggml.model"))
    std::fprintf(stderr, "edgeglm: warning: %s has no vocabulary%s; the GGUF will need one to run\n",
                 a.src.c_str(), (*file)->kind == formats::FileKind::kLlama2c ? " (pass --tokenizer)" : "");
  model::ConvertOptions opts;
  opts.matrix_type = *dt;
  Status s = model::convert_to_gguf(**file, a.out, opts, [](size_t i, size_t n) {
    std::fprintf(stderr, "\rconverting tensor %zu/%zu", i, n);
    if (i == n) std::fputc('\n', stderr);
  });
  if (!s.is_ok()) return fail(s);
  std::fprintf(stderr, "wrote %s\n", a.out.c_str());
  return 0;
}

}  // namespace

void register_convert(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand("convert", "convert llama2.c / Hugging Face / GGUF to GGUF");
  cmd->add_option("src", a->src, "llama2.c .bin, Hugging Face directory or .gguf")->required();
  cmd->add_option("-o,--output", a->out, "output .gguf")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer.bin to embed");
  cmd->add_option("--dtype", a->dtype, "type of weight matrices: f32, f16, bf16")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
