// open_model: picks the reader from what is on disk (directory -> Hugging Face, "GGUF" magic ->
// GGUF, otherwise llama2.c when its header is consistent with the file size) and imports a
// tokenizer stored beside the weights. Kept apart from the readers so they link without the
// tokenizer importers.
#include <cstring>
#include <filesystem>
#include <system_error>

#include "formats/gguf/gguf_reader.h"
#include "formats/llama2c/llama2c_reader.h"
#include "formats/model_file.h"
#include "formats/safetensors/hf_loader.h"
#include "formats/vocab_import.h"

namespace edgeglm::formats {

Result<std::unique_ptr<ModelFile>> open_model(const std::string& path,
                                              const std::string& tokenizer_path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) return Status::error(path + ": no such file or directory");

  if (std::filesystem::is_directory(st)) {
    EG_ASSIGN_OR_RETURN(auto mf, read_hf_dir(path));
    if (std::filesystem::exists(std::filesystem::path(path) / "tokenizer.json", ec))
      EG_TRY(import_hf_tokenizer(path, mf->meta));
    return mf;
  }

  EG_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  uint32_t magic = 0;
  if (map->size() >= 4) std::memcpy(&magic, map->data(), 4);
  if (magic == kGgufMagic) {
    EG_ASSIGN_OR_RETURN(auto mf, parse_gguf(map->data(), map->size(), path));
    mf->maps.push_back(std::move(map));
    return mf;
  }
  auto header = parse_llama2c_header(map->data(), map->size(), path);
  if (magic != kLlama2cMagic && !header.ok())
    return Status::error(path + ": unrecognised model format (not GGUF, not a llama2.c "
                         "checkpoint, not a Hugging Face directory); as llama2.c: " +
                         header.status().message());
  EG_ASSIGN_OR_RETURN(auto mf, parse_llama2c(map->data(), map->size(), path));
  mf->maps.push_back(std::move(map));
  if (!tokenizer_path.empty()) {
    auto vocab = mf->get_int("llama.vocab_size");
    if (!vocab.ok()) return vocab.status();
    EG_TRY(import_llama2c_tokenizer(tokenizer_path, vocab->value_or(0), mf->meta));
  }
  return mf;
}

}  // namespace edgeglm::formats
