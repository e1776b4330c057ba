#include "eval/logits_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>

namespace edgeglm::eval {
namespace {

// The format is little-endian and fields are copied with memcpy; every supported target
// (x86-64, aarch64 Linux) is little-endian.
static_assert(std::endian::native == std::endian::little, "logits files are little-endian");

constexpr char kMagic[8] = {'E', 'G', 'L', 'O', 'G', 'P', 'R', 'B'};
// Bounds that keep every size computation far from overflow; real runs are orders below them.
constexpr uint32_t kMaxVocab = 1u << 24;
constexpr uint32_t kMaxCtx = 1u << 20;
constexpr uint32_t kMaxChunks = 1u << 24;

template <class T>
void put(uint8_t*& p, T v) {
  std::memcpy(p, &v, sizeof v);
  p += sizeof v;
}
template <class T>
T get(const uint8_t*& p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  p += sizeof v;
  return v;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

RowNorm row_norm(const float* x, int64_t n) {
  RowNorm r;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > mx) {
      mx = x[i];
      r.argmax = int32_t(i);
    }
  r.max = double(mx);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - r.max);
  r.lse = std::log(sum);
  return r;
}

bool row_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

uint64_t vocab_fingerprint(const formats::ModelFile& f) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* b = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  };
  const std::string model = f.get_string("tokenizer.ggml.model").value_or("");
  mix(model.data(), model.size() + 1);  // the terminating NUL separates the fields
  if (const formats::MetaValue* t = f.get("tokenizer.ggml.tokens");
      t && t->type == formats::MetaType::Array && t->elem_type == formats::MetaType::String) {
    const uint64_t n = t->strs.size();
    mix(&n, sizeof n);
    for (const std::string& s : t->strs) mix(s.data(), s.size() + 1);
  }
  return h;
}

void encode_logprob_row(const float* logits, const RowNorm& norm, int64_t n, int32_t target,
                        uint8_t* out) {
  // Log-probabilities are (x - max) - lse, so the row's best is -lse and the floor is
  // kLogProbWindow below it.
  double lo = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double lp = (double(logits[i]) - norm.max) - norm.lse;
    lo = i == 0 || lp < lo ? lp : lo;
  }
  const double hi = -norm.lse;
  lo = std::max(lo, hi - kLogProbWindow);
  // Quantize against the float values the reader will use, so the bound holds for them.
  const float lp_min = float(lo);
  const float lp_step = float((hi - double(lp_min)) / 65535.0);
  uint8_t* p = out;
  put(p, lp_min);
  put(p, lp_step);
  put(p, float(row_nll(logits, norm, target)));
  put(p, norm.argmax);
  const double inv = lp_step > 0 ? 1.0 / double(lp_step) : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double lp = (double(logits[i]) - norm.max) - norm.lse;
    const double c = std::nearbyint((lp - double(lp_min)) * inv);
    const uint16_t code = uint16_t(c < 0 ? 0 : c > 65535 ? 65535 : c);
    std::memcpy(p + 2 * i, &code, 2);
  }
}

Status check_logprob_row(const uint8_t* row, int64_t n_vocab, const std::string& what) {
  const uint8_t* p = row;
  const float lp_min = get<float>(p), lp_step = get<float>(p), nll = get<float>(p);
  const int32_t argmax = get<int32_t>(p);
  if (!std::isfinite(lp_min) || !std::isfinite(lp_step) || lp_step < 0 || lp_min > 0)
    return Status::error(what + ": corrupt log-probability range");
  if (!std::isfinite(nll) || nll < -1e-3f)
    return Status::error(what + ": corrupt next-token log-likelihood");
  if (argmax < 0 || argmax >= n_vocab)
    return Status::error(what + ": most likely token " + std::to_string(argmax) +
                         " is outside the vocabulary (" + std::to_string(n_vocab) + ")");
  return Status::ok();
}

DecodedRow decode_logprob_row(const uint8_t* row, int64_t n, double* lp) {
  const uint8_t* p = row;
  const double lp_min = get<float>(p), lp_step = get<float>(p);
  DecodedRow d;
  d.target_nll = get<float>(p);
  d.argmax = get<int32_t>(p);
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t code;
    std::memcpy(&code, p + 2 * i, 2);
    lp[i] = lp_min + double(code) * lp_step;
    mx = std::max(mx, lp[i]);
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(lp[i] - mx);
  const double shift = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) lp[i] -= shift;
  return d;
}

// ---- writer ----

Result<std::unique_ptr<LogitsWriter>> LogitsWriter::create(const std::string& path,
                                                           const LogitsHeader& h,
                                                           const std::vector<int32_t>& chunk_tokens) {
  if (h.n_vocab < 1 || h.n_vocab > kMaxVocab || h.n_ctx < 8 || h.n_ctx > kMaxCtx ||
      h.n_chunks < 1 || h.n_chunks > kMaxChunks ||
      chunk_tokens.size() != size_t(h.n_chunks) * h.n_ctx)
    return Status::error(path + ": logits file header out of range");
  std::unique_ptr<LogitsWriter> w(new LogitsWriter());
  w->path_ = path;
  w->tmp_ = path + ".tmp";
  w->h_ = h;
  w->f_ = std::fopen(w->tmp_.c_str(), "wb");
  if (!w->f_) return Status::error(w->tmp_ + ": cannot create: " + errno_text());
  uint8_t hdr[kLogitsHeaderBytes] = {};
  uint8_t* p = hdr;
  std::memcpy(p, kMagic, 8);
  p += 8;
  put(p, kLogitsFileVersion);
  put(p, uint32_t(0));  // protocol: llama.cpp chunks
  put(p, h.n_vocab);
  put(p, h.n_ctx);
  put(p, h.n_chunks);
  put(p, h.bos_id);
  put(p, h.vocab_hash);
  put(p, uint64_t(0));
  if (std::fwrite(hdr, 1, sizeof hdr, w->f_) != sizeof hdr ||
      std::fwrite(chunk_tokens.data(), 4, chunk_tokens.size(), w->f_) != chunk_tokens.size())
    return w->io_error("write");
  w->bytes_ = sizeof hdr + 4 * chunk_tokens.size();
  return w;
}

LogitsWriter::~LogitsWriter() {
  if (f_) std::fclose(f_);
  if (!done_ && !tmp_.empty()) std::remove(tmp_.c_str());
}

Status LogitsWriter::io_error(const char* what) const {
  return Status::error(tmp_ + ": cannot " + what + ": " + errno_text());
}

Status LogitsWriter::append_rows(const uint8_t* rows, int64_t n_rows) {
  const size_t bytes = size_t(n_rows) * logits_row_bytes(h_.n_vocab);
  if (rows_ + n_rows > int64_t(h_.n_chunks) * h_.n_scored())
    return Status::error(tmp_ + ": more rows than the header announces");
  if (std::fwrite(rows, 1, bytes, f_) != bytes) return io_error("write");
  rows_ += n_rows;
  bytes_ += bytes;
  return Status::ok();
}

Status LogitsWriter::finish() {
  if (rows_ != int64_t(h_.n_chunks) * h_.n_scored())
    return Status::error(tmp_ + ": " + std::to_string(rows_) + " rows written, the header announces " +
                         std::to_string(int64_t(h_.n_chunks) * h_.n_scored()));
  if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0) return io_error("write");
  const int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) return io_error("close");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    return Status::error(path_ + ": cannot rename " + tmp_ + " into place: " + errno_text());
  done_ = true;
  return Status::ok();
}

// ---- reader ----

Result<std::unique_ptr<LogitsReader>> LogitsReader::open(const std::string& path) {
  std::unique_ptr<LogitsReader> r(new LogitsReader());
  r->path_ = path;
  r->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r->fd_ < 0) return Status::error(path + ": cannot open: " + errno_text());
  struct stat st{};
  if (::fstat(r->fd_, &st) != 0) return Status::error(path + ": cannot stat: " + errno_text());
  const uint64_t size = uint64_t(st.st_size);
  uint8_t hdr[kLogitsHeaderBytes];
  if (size < sizeof hdr || ::pread(r->fd_, hdr, sizeof hdr, 0) != ssize_t(sizeof hdr))
    return Status::error(path + ": truncated logits file (" + std::to_string(size) +
                         " bytes, the header alone is " + std::to_string(sizeof hdr) + ")");
  if (std::memcmp(hdr, kMagic, 8) != 0)
    return Status::error(path + ": not an edgeglm logits file (bad magic; expected a file written "
                                "by eval --save-logits)");
  const uint8_t* p = hdr + 8;
  const uint32_t version = get<uint32_t>(p), protocol = get<uint32_t>(p);
  if (version != kLogitsFileVersion)
    return Status::error(path + ": logits file version " + std::to_string(version) +
                         " is not supported (expected " + std::to_string(kLogitsFileVersion) + ")");
  if (protocol != 0)
    return Status::error(path + ": unknown chunking protocol " + std::to_string(protocol));
  LogitsHeader& h = r->h_;
  h.n_vocab = get<uint32_t>(p);
  h.n_ctx = get<uint32_t>(p);
  h.n_chunks = get<uint32_t>(p);
  h.bos_id = get<int32_t>(p);
  h.vocab_hash = get<uint64_t>(p);
  if (h.n_vocab < 1 || h.n_vocab > kMaxVocab)
    return Status::error(path + ": vocabulary size " + std::to_string(h.n_vocab) + " out of range");
  if (h.n_ctx < 8 || h.n_ctx > kMaxCtx)
    return Status::error(path + ": context size " + std::to_string(h.n_ctx) + " out of range");
  if (h.n_chunks < 1 || h.n_chunks > kMaxChunks)
    return Status::error(path + ": chunk count " + std::to_string(h.n_chunks) + " out of range");
  if (h.bos_id < -1 || h.bos_id >= int32_t(h.n_vocab))
    return Status::error(path + ": BOS id " + std::to_string(h.bos_id) + " out of range");
  // With the bounds above these products stay below 2^64.
  const uint64_t n_tokens = uint64_t(h.n_chunks) * h.n_ctx;
  const uint64_t n_rows = uint64_t(h.n_chunks) * uint64_t(h.n_scored());
  r->rows_offset_ = sizeof hdr + 4 * n_tokens;
  const uint64_t expected = r->rows_offset_ + n_rows * logits_row_bytes(h.n_vocab);
  if (size != expected)
    return Status::error(path + ": " + (size < expected ? "truncated" : "oversized") +
                         " logits file: " + std::to_string(size) + " bytes, the header (" +
                         std::to_string(h.n_chunks) + " chunks of " + std::to_string(h.n_ctx) +
                         " tokens, vocab " + std::to_string(h.n_vocab) + ") needs " +
                         std::to_string(expected));
  r->tokens_.resize(n_tokens);
  const size_t tb = 4 * n_tokens;
  if (::pread(r->fd_, r->tokens_.data(), tb, sizeof hdr) != ssize_t(tb))
    return Status::error(path + ": cannot read tokens: " + errno_text());
  for (uint64_t i = 0; i < n_tokens; ++i)
    if (r->tokens_[i] < 0 || r->tokens_[i] >= int32_t(h.n_vocab))
      return Status::error(path + ": token " + std::to_string(i) + " (" +
                           std::to_string(r->tokens_[i]) + ") is outside the vocabulary");
  return r;
}

LogitsReader::~LogitsReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status LogitsReader::read_rows(int64_t c, int64_t r0, int64_t n, std::vector<uint8_t>& buf) const {
  const int64_t n_scored = h_.n_scored();
  if (c < 0 || c >= int64_t(h_.n_chunks) || r0 < 0 || n < 0 || r0 + n > n_scored)
    return Status::error(path_ + ": rows " + std::to_string(r0) + ".." + std::to_string(r0 + n) +
                         " of chunk " + std::to_string(c) + " are not in the file");
  const size_t rb = logits_row_bytes(h_.n_vocab);
  buf.resize(size_t(n) * rb);
  const uint64_t off = rows_offset_ + (uint64_t(c) * uint64_t(n_scored) + uint64_t(r0)) * rb;
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t got = ::pread(fd_, buf.data() + done, buf.size() - done, off_t(off + done));
    if (got <= 0)
      return Status::error(path_ + ": cannot read rows of chunk " + std::to_string(c) + ": " +
                           (got == 0 ? std::string("file shrank while reading") : errno_text()));
    done += size_t(got);
  }
  for (int64_t i = 0; i < n; ++i)
    EG_TRY(check_logprob_row(buf.data() + size_t(i) * rb, h_.n_vocab,
                             path_ + ": chunk " + std::to_string(c) + " row " + std::to_string(r0 + i)));
  return Status::ok();
}

}  // namespace edgeglm::eval
