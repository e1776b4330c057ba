#include "formats/llama2c/llama2c_reader.h"

#include <climits>
#include <filesystem>
#include <vector>

#include "formats/gguf/byte_reader.h"

namespace edgeglm::formats {
namespace {

constexpr uint64_t kLegacyHeaderBytes = 7 * 4;
constexpr uint64_t kV1HeaderBytes = 256;

// One fp32 block of the checkpoint: `count` tensors (one per layer, or one) of (rows, cols).
struct Segment {
  const char* name;  // GGUF name; "%d" is replaced by the layer index
  uint64_t count, rows, cols;
  bool is_vector = false;  // a norm weight: GGUF shape [cols]
};

std::string layer_name(const char* pattern, uint64_t layer) {
  std::string s(pattern);
  auto pos = s.find("%d");
  if (pos != std::string::npos) s.replace(pos, 2, std::to_string(layer));
  return s;
}

// The checkpoint's fp32 blocks in file order; an empty name marks bytes that are skipped.
std::vector<Segment> segments(const Llama2cHeader& h) {
  const uint64_t dim = uint64_t(h.dim), hidden = uint64_t(h.hidden_dim);
  const uint64_t L = uint64_t(h.n_layers), vocab = uint64_t(h.vocab_size);
  const uint64_t head_size = dim / uint64_t(h.n_heads);
  const uint64_t kv_dim = head_size * uint64_t(h.n_kv_heads);
  const Segment tok{"token_embd.weight", 1, vocab, dim};
  const Segment att_norm{"blk.%d.attn_norm.weight", L, 1, dim, true};
  const Segment ffn_norm{"blk.%d.ffn_norm.weight", L, 1, dim, true};
  const Segment out_norm{"output_norm.weight", 1, 1, dim, true};
  const Segment wq{"blk.%d.attn_q.weight", L, dim, dim};
  const Segment wk{"blk.%d.attn_k.weight", L, kv_dim, dim};
  const Segment wv{"blk.%d.attn_v.weight", L, kv_dim, dim};
  const Segment wo{"blk.%d.attn_output.weight", L, dim, dim};
  const Segment w1{"blk.%d.ffn_gate.weight", L, hidden, dim};
  const Segment w2{"blk.%d.ffn_down.weight", L, dim, hidden};
  const Segment w3{"blk.%d.ffn_up.weight", L, hidden, dim};
  const Segment wcls{"output.weight", 1, vocab, dim};
  std::vector<Segment> s;
  if (h.version == 0) {
    const Segment freq{"", 2, uint64_t(h.seq_len), head_size / 2};
    s = {tok, att_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3, out_norm, freq};
  } else {
    s = {att_norm, ffn_norm, out_norm, tok, wq, wk, wv, wo, w1, w2, w3};
  }
  if (!h.shared_classifier) s.push_back(wcls);
  return s;
}

Status check_params(const Llama2cHeader& h, const std::string& name) {
  auto err = [&](const std::string& m) { return Status::error(name + ": " + m); };
  const std::string params = "llama2.c header {dim " + std::to_string(h.dim) + ", hidden_dim " +
                             std::to_string(h.hidden_dim) + ", n_layers " +
                             std::to_string(h.n_layers) + ", n_heads " +
                             std::to_string(h.n_heads) + ", n_kv_heads " +
                             std::to_string(h.n_kv_heads) + ", vocab_size " +
                             std::to_string(h.vocab_size) + ", seq_len " +
                             std::to_string(h.seq_len) + "}";
  if (h.dim <= 0 || h.hidden_dim <= 0 || h.n_layers <= 0 || h.n_heads <= 0 ||
      h.n_kv_heads <= 0 || h.vocab_size <= 0 || h.seq_len <= 0)
    return err(params + ": every value must be positive");
  if (h.dim % h.n_heads != 0) return err(params + ": dim is not a multiple of n_heads");
  if (h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0)
    return err(params + ": n_heads is not a multiple of n_kv_heads");
  if ((h.dim / h.n_heads) % 2 != 0) return err(params + ": head size is odd");
  return Status::ok();
}

}  // namespace

Result<Llama2cHeader> parse_llama2c_header(const uint8_t* data, size_t size,
                                           const std::string& name) {
  ByteReader r(data, size);
  Llama2cHeader h;
  uint32_t magic = 0;
  if (!r.read(magic)) return Status::error(name + ": too small for a llama2.c checkpoint");
  if (magic == kLlama2cMagic) {
    int32_t version = 0;
    if (!r.read(version)) return Status::error(name + ": truncated llama2.c header");
    if (version == 2)
      return Status::error(name + ": llama2.c version 2 (int8 Q8_0) checkpoints are not " +
                           "supported; export with --version 0 or 1, or convert to GGUF");
    if (version != 1)
      return Status::error(name + ": unsupported llama2.c checkpoint version " +
                           std::to_string(version));
    h.version = 1;
    h.header_bytes = kV1HeaderBytes;
  } else {
    r = ByteReader(data, size);
    h.header_bytes = kLegacyHeaderBytes;
  }
  int32_t v[7];
  for (int32_t& x : v)
    if (!r.read(x)) return Status::error(name + ": truncated llama2.c header");
  h.dim = v[0];
  h.hidden_dim = v[1];
  h.n_layers = v[2];
  h.n_heads = v[3];
  h.n_kv_heads = v[4];
  h.vocab_size = v[5];
  h.seq_len = v[6];
  if (h.version == 0) {
    h.shared_classifier = h.vocab_size > 0;
    if (h.vocab_size < 0 && h.vocab_size != INT32_MIN) h.vocab_size = -h.vocab_size;
  } else {
    uint8_t shared = 0;
    if (!r.read(shared) || size < kV1HeaderBytes)
      return Status::error(name + ": truncated llama2.c version 1 header");
    if (shared > 1)
      return Status::error(name + ": llama2.c shared_classifier flag is " +
                           std::to_string(shared) + " (expected 0 or 1)");
    h.shared_classifier = shared == 1;
  }
  EG_TRY(check_params(h, name));

  uint64_t floats = 0;
  for (const Segment& s : segments(h)) {
    uint64_t n = 0;
    if (!checked_mul(s.count, s.rows, n) || !checked_mul(n, s.cols, n) ||
        !checked_add(floats, n, floats))
      return Status::error(name + ": llama2.c header sizes overflow");
  }
  if (!checked_mul(floats, 4, h.expected_bytes) ||
      !checked_add(h.expected_bytes, h.header_bytes, h.expected_bytes))
    return Status::error(name + ": llama2.c header sizes overflow");
  if (h.expected_bytes != size)
    return Status::error(name + ": llama2.c header {dim " + std::to_string(h.dim) +
                         ", hidden_dim " + std::to_string(h.hidden_dim) + ", n_layers " +
                         std::to_string(h.n_layers) + ", n_heads " + std::to_string(h.n_heads) +
                         ", n_kv_heads " + std::to_string(h.n_kv_heads) + ", vocab_size " +
                         std::to_string(h.vocab_size) + ", seq_len " +
                         std::to_string(h.seq_len) + (h.shared_classifier ? "" : ", untied") +
                         "} implies " + std::to_string(h.expected_bytes) +
                         " bytes but the file has " + std::to_string(size));
  return h;
}

Result<std::unique_ptr<ModelFile>> parse_llama2c(const uint8_t* data, size_t size,
                                                 const std::string& name) {
  EG_ASSIGN_OR_RETURN(Llama2cHeader h, parse_llama2c_header(data, size, name));
  auto mf = std::make_unique<ModelFile>();
  mf->path = name;
  mf->kind = FileKind::kLlama2c;
  mf->file_bytes = size;
  mf->alignment = 4;

  auto u32 = [](int64_t v) { return MetaValue::from_u32(uint32_t(v)); };
  Metadata& m = mf->meta;
  m["general.architecture"] = MetaValue::from_string("llama");
  m["general.name"] = MetaValue::from_string(std::filesystem::path(name).stem().string());
  m["llama.embedding_length"] = u32(h.dim);
  m["llama.feed_forward_length"] = u32(h.hidden_dim);
  m["llama.block_count"] = u32(h.n_layers);
  m["llama.attention.head_count"] = u32(h.n_heads);
  m["llama.attention.head_count_kv"] = u32(h.n_kv_heads);
  m["llama.context_length"] = u32(h.seq_len);
  m["llama.rope.dimension_count"] = u32(h.dim / h.n_heads);
  m["llama.attention.layer_norm_rms_epsilon"] = MetaValue::from_f32(1e-5f);
  m["llama.rope.freq_base"] = MetaValue::from_f32(10000.0f);
  m["llama.vocab_size"] = u32(h.vocab_size);

  uint64_t offset = h.header_bytes;
  for (const Segment& s : segments(h)) {
    const uint64_t bytes = s.rows * s.cols * 4;
    for (uint64_t l = 0; l < s.count; ++l, offset += bytes) {
      if (s.name[0] == '\0') continue;
      TensorInfo t;
      t.name = layer_name(s.name, l);
      t.dtype = DType::F32;
      t.shape = s.is_vector ? std::vector<int64_t>{int64_t(s.cols)}
                            : std::vector<int64_t>{int64_t(s.cols), int64_t(s.rows)};
      t.offset = offset;
      t.nbytes = bytes;
      t.data = data + offset;
      mf->tensors.push_back(std::move(t));
    }
  }
  mf->rebuild_index();
  return mf;
}

Result<std::unique_ptr<ModelFile>> read_llama2c(const std::string& path) {
  EG_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  EG_ASSIGN_OR_RETURN(auto mf, parse_llama2c(map->data(), map->size(), path));
  mf->maps.push_back(std::move(map));
  return mf;
}

}  // namespace edgeglm::formats
