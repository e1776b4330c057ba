// Log-probabilities: computing them from logits (in double, as every evaluation here does) and
// storing a base model's log-probabilities in a file, so `edgeglm eval --save-logits` runs the
// base once and every compressed variant is compared against the file (`--logits`).
//
// File layout, version 1 (little-endian, fields packed in the order given):
//   header, 48 bytes:
//     char     magic[8]       "EGLOGPRB"
//     uint32   version        1
//     uint32   protocol       0: llama.cpp chunks (chunks of n_ctx tokens, BOS over each chunk's
//                             first token where the vocab adds one, second half scored)
//     uint32   n_vocab
//     uint32   n_ctx
//     uint32   n_chunks
//     int32    bos_id         token written over each chunk's first token; -1: none
//     uint64   vocab_hash     vocab_fingerprint() of the model that wrote the file
//     uint64   reserved       0
//   tokens: int32[n_chunks * n_ctx]   every chunk's tokens as the model read them (BOS included),
//                                     so a run on another text or tokenizer is refused
//   rows:   n_chunks * n_scored rows, chunk by chunk, n_scored = n_ctx - 1 - n_ctx/2 (positions
//           n_ctx/2 .. n_ctx-2 of the chunk, each predicting the next token); a row is
//           16 + 2 * n_vocab bytes:
//     float    lp_min         log-probability of code 0
//     float    lp_step        log-probability per code step (0: every code means lp_min)
//     float    target_nll     -log p(next token), exact up to float rounding (perplexity, delta-p)
//     int32    argmax         most likely token (top-1 agreement), from the logits themselves
//     uint16   code[n_vocab]  log p_i ~= lp_min + code_i * lp_step
//
// Precision: a row's codes span [max(min lp, max lp - kLogProbWindow), max lp] in 65535 steps, so
// every stored log-probability is within lp_step/2 <= kLogProbWindow / 131070 = 3.1e-4 nats of the
// exact one (log-probabilities more than kLogProbWindow below the row's best, i.e. probabilities
// under e^-40 = 4e-18, are raised to that floor). Readers renormalise the decoded row. A
// per-entry error e moves KL(P || Q) by at most about 2 * max|e| * E_P|log P/Q|, which for nearby
// distributions is ~7e-4 * sqrt(KLD) (2e-5 at a KLD of 1e-3, 2e-4 at 0.1) in the worst case and far
// less in practice, since rounding errors have random signs (tests/eval/test_kld.cpp measures it);
// target_nll and argmax are stored exactly, so perplexity, delta-p and top-1 are not affected.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/model_file.h"

namespace edgeglm::eval {

constexpr uint32_t kLogitsFileVersion = 1;
constexpr double kLogProbWindow = 40.0;  // nats below a row's maximum that codes cover
constexpr size_t kLogitsHeaderBytes = 48;
constexpr size_t kLogitsRowHeaderBytes = 16;

// Log-softmax of one row, computed in double with the float maximum subtracted first:
// log p_i = (x_i - max) - lse. perplexity() uses the same arithmetic, so a negative
// log-likelihood from here equals its per-token value bit for bit.
struct RowNorm {
  double max = 0;  // the largest logit
  double lse = 0;  // log sum_i exp(x_i - max)
  int32_t argmax = 0;  // first index of the maximum
};
RowNorm row_norm(const float* logits, int64_t n);
// -log p(target) = lse - (x_target - max).
inline double row_nll(const float* logits, const RowNorm& r, int32_t target) {
  return r.lse - (double(logits[target]) - r.max);
}
// Whether every entry is finite (a NaN or infinite logit would poison every average).
bool row_finite(const float* logits, int64_t n);

// FNV-1a hash of the vocabulary (tokenizer.ggml.model and every token text), so logits saved with
// one tokenizer are not compared with a model that numbers tokens differently.
uint64_t vocab_fingerprint(const formats::ModelFile& f);

struct LogitsHeader {
  uint32_t n_vocab = 0;
  uint32_t n_ctx = 0;
  uint32_t n_chunks = 0;
  int32_t bos_id = -1;
  uint64_t vocab_hash = 0;
  int64_t n_scored() const { return int64_t(n_ctx) - 1 - int64_t(n_ctx) / 2; }
  int64_t first_scored() const { return int64_t(n_ctx) / 2; }
};

inline size_t logits_row_bytes(int64_t n_vocab) {
  return kLogitsRowHeaderBytes + 2 * size_t(n_vocab);
}

// Encodes one row of logits (with its RowNorm) as described above into `out`
// (logits_row_bytes(n) bytes).
void encode_logprob_row(const float* logits, const RowNorm& norm, int64_t n, int32_t target,
                        uint8_t* out);

// A decoded row: lp (n_vocab doubles, renormalised log-probabilities) plus the exact fields.
struct DecodedRow {
  double target_nll = 0;
  int32_t argmax = 0;
};
// Checks a stored row's header fields (finite, in range); `what` names the row in the error.
Status check_logprob_row(const uint8_t* row, int64_t n_vocab, const std::string& what);
DecodedRow decode_logprob_row(const uint8_t* row, int64_t n_vocab, double* lp);

// Writes `path`.tmp and renames it to `path` in finish(); a writer destroyed before finish()
// removes the temporary file, so an interrupted run never leaves a file that looks complete.
class LogitsWriter {
 public:
  static Result<std::unique_ptr<LogitsWriter>> create(const std::string& path,
                                                      const LogitsHeader& h,
                                                      const std::vector<int32_t>& chunk_tokens);
  ~LogitsWriter();
  LogitsWriter(const LogitsWriter&) = delete;
  LogitsWriter& operator=(const LogitsWriter&) = delete;

  Status append_rows(const uint8_t* rows, int64_t n_rows);  // encoded rows, in file order
  Status finish();  // all n_chunks * n_scored rows written: flush, fsync, rename
  uint64_t bytes_written() const { return bytes_; }

 private:
  LogitsWriter() = default;
  Status io_error(const char* what) const;
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  LogitsHeader h_;
  int64_t rows_ = 0;
  uint64_t bytes_ = 0;
  bool done_ = false;
};

// Reads rows on demand with pread, so comparing against a file of many GB costs one ubatch of
// rows in memory (a memory map would count every page read into the process's RSS).
class LogitsReader {
 public:
  // Validates magic, version, protocol, sizes and that the file is exactly as long as the header
  // says; errors name the file.
  static Result<std::unique_ptr<LogitsReader>> open(const std::string& path);
  ~LogitsReader();
  LogitsReader(const LogitsReader&) = delete;
  LogitsReader& operator=(const LogitsReader&) = delete;

  const LogitsHeader& header() const { return h_; }
  const std::string& path() const { return path_; }
  // Tokens of chunk c (n_ctx of them).
  const int32_t* chunk_tokens(int64_t c) const { return tokens_.data() + c * int64_t(h_.n_ctx); }
  // Reads n rows of chunk c starting at scored row r0 into buf (resized), checking each row.
  Status read_rows(int64_t c, int64_t r0, int64_t n, std::vector<uint8_t>& buf) const;

 private:
  LogitsReader() = default;
  std::string path_;
  int fd_ = -1;
  LogitsHeader h_;
  std::vector<int32_t> tokens_;
  uint64_t rows_offset_ = 0;
};

}  // namespace edgeglm::eval
