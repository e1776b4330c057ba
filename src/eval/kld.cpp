#include "eval/kld.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "eval/bench.h"
#include "eval/logits_file.h"

namespace edgeglm::eval {
namespace {

// The tokens of every chunk as the model reads them (perplexity()'s kLlamaCpp protocol).
struct ChunkPlan {
  std::vector<int32_t> tokens;  // (n_chunks, n_ctx)
  int64_t n_chunks = 0;
  int64_t text_tokens = 0;
  int32_t bos_id = -1;  // written over each chunk's first token; -1: none
};

Result<ChunkPlan> plan_chunks(const tokenizer::Tokenizer& tok, const std::string& text,
                              int64_t n_ctx, int64_t max_chunks) {
  if (n_ctx < 8) return Status::error("kld: --ctx must be at least 8");
  const bool use_bos = tok.add_bos() && tok.bos_id() >= 0;
  const std::vector<int32_t> all = tok.encode(text, /*add_special=*/use_bos, /*parse_special=*/false);
  ChunkPlan p;
  p.text_tokens = int64_t(all.size());
  p.bos_id = use_bos ? tok.bos_id() : -1;
  p.n_chunks = p.text_tokens / n_ctx;
  if (max_chunks >= 0) p.n_chunks = std::min(p.n_chunks, max_chunks);
  if (p.n_chunks < 1)
    return Status::error("kld: the text has " + std::to_string(all.size()) +
                         " tokens, fewer than one chunk of " + std::to_string(n_ctx) +
                         " (use a smaller --ctx)");
  p.tokens.assign(all.begin(), all.begin() + p.n_chunks * n_ctx);
  if (use_bos)
    for (int64_t c = 0; c < p.n_chunks; ++c) p.tokens[size_t(c * n_ctx)] = p.bos_id;
  return p;
}

struct Position {
  double kld = 0, nll_base = 0, nll_test = 0, delta_p = 0;
  bool same_top1 = false;
  bool finite = true;
};

// Both rows as logits: identical rows give exactly 0, since both sides run the same arithmetic.
Position compare_logits(const float* b, const float* t, int64_t n, int32_t target) {
  Position p;
  if (!row_finite(b, n) || !row_finite(t, n)) {
    p.finite = false;
    return p;
  }
  const RowNorm nb = row_norm(b, n), nt = row_norm(t, n);
  double kl = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double lb = (double(b[i]) - nb.max) - nb.lse;
    const double lt = (double(t[i]) - nt.max) - nt.lse;
    kl += std::exp(lb) * (lb - lt);
  }
  p.kld = kl;
  p.nll_base = row_nll(b, nb, target);
  p.nll_test = row_nll(t, nt, target);
  p.delta_p = std::exp(-p.nll_test) - std::exp(-p.nll_base);
  p.same_top1 = nb.argmax == nt.argmax;
  return p;
}

// Base as a decoded file row (lp: renormalised log-probabilities).
Position compare_decoded(const double* lp, const DecodedRow& d, const float* t, int64_t n,
                         int32_t target) {
  Position p;
  if (!row_finite(t, n)) {
    p.finite = false;
    return p;
  }
  const RowNorm nt = row_norm(t, n);
  double kl = 0;
  for (int64_t i = 0; i < n; ++i) kl += std::exp(lp[i]) * (lp[i] - ((double(t[i]) - nt.max) - nt.lse));
  p.kld = kl;
  p.nll_base = d.target_nll;
  p.nll_test = row_nll(t, nt, target);
  p.delta_p = std::exp(-p.nll_test) - std::exp(-p.nll_base);
  p.same_top1 = d.argmax == nt.argmax;
  return p;
}

// Running sums in position order, so results do not depend on the thread count.
struct NllSum {
  double sum = 0, sum_sq = 0;
  int64_t n = 0;
  void add(double x) {
    sum += x;
    sum_sq += x * x;
    ++n;
  }
  // The same arithmetic as perplexity(), so equal inputs give equal numbers.
  PerplexityResult result(int64_t chunks, int64_t text_tokens, double seconds) const {
    PerplexityResult r;
    r.tokens = n;
    r.chunks = chunks;
    r.text_tokens = text_tokens;
    r.seconds = seconds;
    if (n == 0) return r;
    r.nll = sum / double(n);
    r.perplexity = std::exp(r.nll);
    const double var = sum_sq / double(n) - r.nll * r.nll;
    r.nll_stderr = n > 1 && var > 0 ? std::sqrt(var / double(n - 1)) : 0;
    return r;
  }
};

struct KldAccum {
  std::vector<double> kld;
  double sum = 0, sum_sq = 0, dp_sq = 0;
  int64_t same = 0;
  NllSum base, test;
  void add(const Position& p) {
    kld.push_back(p.kld);
    sum += p.kld;
    sum_sq += p.kld * p.kld;
    dp_sq += p.delta_p * p.delta_p;
    same += p.same_top1;
    base.add(p.nll_base);
    test.add(p.nll_test);
  }
  double mean() const { return kld.empty() ? 0 : sum / double(kld.size()); }
  KldResult result(int64_t chunks, int64_t text_tokens, double seconds) const {
    KldResult r;
    const double n = double(kld.size());
    r.chunks = chunks;
    r.positions = int64_t(kld.size());
    r.seconds = seconds;
    r.base = base.result(chunks, text_tokens, seconds);
    r.test = test.result(chunks, text_tokens, seconds);
    if (kld.empty()) return r;
    r.kld_mean = sum / n;
    const double var = sum_sq / n - r.kld_mean * r.kld_mean;
    r.kld_stderr = n > 1 && var > 0 ? std::sqrt(var / (n - 1)) : 0;
    r.kld_median = percentile(kld, 50);
    r.kld_p99 = percentile(kld, 99);
    r.kld_max = *std::max_element(kld.begin(), kld.end());
    const double f = double(same) / n;
    r.top1_percent = 100 * f;
    r.top1_stderr = n > 1 ? 100 * std::sqrt(f * (1 - f) / (n - 1)) : 0;
    r.delta_p_rms = std::sqrt(dp_sq / n);
    return r;
  }
};

// Rows [row0, row0+n) of the contexts' last ubatch hold positions j0 .. j0+n-1 of chunk c.
using RowsFn = std::function<Status(int64_t c, int64_t j0, int64_t n, int64_t row0)>;

// Feeds every chunk to the contexts (same tokens, in lockstep, ubatch by ubatch) and hands the
// scored rows of each ubatch to on_rows before the next ubatch overwrites them.
Status drive_chunks(const std::vector<model::Context*>& ctxs, const ChunkPlan& plan, int64_t n_ctx,
                    int64_t n_ubatch, const RowsFn& on_rows, const std::function<void(int64_t)>& done) {
  const int64_t first = n_ctx / 2;
  for (int64_t c = 0; c < plan.n_chunks; ++c) {
    const int32_t* chunk = plan.tokens.data() + c * n_ctx;
    for (model::Context* ctx : ctxs) ctx->truncate(0);
    for (int64_t b = 0; b < n_ctx; b += n_ubatch) {
      const int64_t m = std::min(n_ubatch, n_ctx - b);
      // Ubatches before the scored half need no logits.
      const bool scored = b + m > first;
      for (model::Context* ctx : ctxs) EG_TRY(ctx->decode(chunk + b, m, /*all_logits=*/scored));
      if (!scored) continue;
      const int64_t j0 = std::max(first, b), j1 = std::min(b + m, n_ctx - 1);
      if (j1 > j0) EG_TRY(on_rows(c, j0, j1 - j0, j0 - b));
    }
    if (done) done(c + 1);
  }
  return Status::ok();
}

int64_t ubatch(const KldOptions& o) { return std::max<int64_t>(1, std::min(o.n_ubatch, o.n_ctx)); }

Result<std::unique_ptr<model::Context>> make_context(const model::Model& m, const KldOptions& o,
                                                     ThreadPool& pool) {
  model::ContextOptions co;
  co.n_ctx = o.n_ctx;
  co.n_ubatch = ubatch(o);
  co.all_logits = true;
  co.kv_type = o.kv_type;
  return model::Context::create(m, co, pool);
}

int64_t row_grain(int64_t n_vocab) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n_vocab)); }

Status non_finite(const char* who, int64_t c, int64_t j) {
  return Status::error(std::string("kld: the ") + who + " model's logits are not finite at chunk " +
                       std::to_string(c) + " position " + std::to_string(j));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<KldResult> kl_divergence(const model::Model& base, const model::Model& test,
                                const tokenizer::Tokenizer& tok, const std::string& text,
                                const KldOptions& opts, ThreadPool& pool,
                                const KldProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n_vocab = test.config().n_vocab;
  if (base.config().n_vocab != n_vocab || vocab_fingerprint(base.file()) != vocab_fingerprint(test.file()))
    return Status::error("kld: the base model (" + base.file().path + ", vocab " +
                         std::to_string(base.config().n_vocab) + ") and the model (" +
                         test.file().path + ", vocab " + std::to_string(n_vocab) +
                         ") do not share a vocabulary");
  EG_ASSIGN_OR_RETURN(ChunkPlan plan, plan_chunks(tok, text, opts.n_ctx, opts.max_chunks));
  EG_ASSIGN_OR_RETURN(auto cb, make_context(base, opts, pool));
  EG_ASSIGN_OR_RETURN(auto ct, make_context(test, opts, pool));
  KldAccum acc;
  std::vector<Position> pos;
  auto on_rows = [&](int64_t c, int64_t j0, int64_t n, int64_t row0) -> Status {
    const int32_t* chunk = plan.tokens.data() + c * opts.n_ctx;
    pos.assign(size_t(n), Position{});
    pool.parallel_for(
        n,
        [&](int64_t k0, int64_t k1) {
          for (int64_t k = k0; k < k1; ++k)
            pos[size_t(k)] = compare_logits(cb->logits(row0 + k), ct->logits(row0 + k), n_vocab,
                                            chunk[j0 + k + 1]);
        },
        row_grain(n_vocab));
    for (int64_t k = 0; k < n; ++k) {
      if (!pos[size_t(k)].finite) return non_finite("base or test", c, j0 + k);
      acc.add(pos[size_t(k)]);
    }
    return Status::ok();
  };
  EG_TRY(drive_chunks({cb.get(), ct.get()}, plan, opts.n_ctx, ubatch(opts), on_rows, [&](int64_t done) {
                        if (progress) progress(done, plan.n_chunks, acc.mean());
                      }));
  return acc.result(plan.n_chunks, plan.text_tokens, seconds_since(t0));
}

Result<KldResult> kl_divergence(const std::string& logits_path, const model::Model& test,
                                const tokenizer::Tokenizer& tok, const std::string& text,
                                const KldOptions& opts, ThreadPool& pool,
                                const KldProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  EG_ASSIGN_OR_RETURN(auto reader, LogitsReader::open(logits_path));
  const LogitsHeader& h = reader->header();
  const int64_t n_vocab = test.config().n_vocab;
  if (int64_t(h.n_vocab) != n_vocab)
    return Status::error(logits_path + ": saved with a vocabulary of " + std::to_string(h.n_vocab) +
                         " tokens; " + test.file().path + " has " + std::to_string(n_vocab));
  if (h.vocab_hash != vocab_fingerprint(test.file()))
    return Status::error(logits_path + ": saved by a model with a different vocabulary than " +
                         test.file().path);
  if (int64_t(h.n_ctx) != opts.n_ctx)
    return Status::error(logits_path + ": saved with --ctx " + std::to_string(h.n_ctx) +
                         "; this run uses --ctx " + std::to_string(opts.n_ctx));
  int64_t n_chunks = h.n_chunks;
  if (opts.max_chunks > n_chunks)
    return Status::error(logits_path + ": holds " + std::to_string(n_chunks) + " chunks; --chunks " +
                         std::to_string(opts.max_chunks) + " asks for more");
  if (opts.max_chunks >= 0) n_chunks = opts.max_chunks;
  if (n_chunks < 1) return Status::error("kld: --chunks 0 leaves nothing to compare");
  EG_ASSIGN_OR_RETURN(ChunkPlan plan, plan_chunks(tok, text, opts.n_ctx, -1));
  if (plan.n_chunks < n_chunks)
    return Status::error(logits_path + ": holds " + std::to_string(n_chunks) + " chunks of " +
                         std::to_string(h.n_ctx) + " tokens, the text gives only " +
                         std::to_string(plan.n_chunks) + " (not the text the logits were saved from)");
  plan.n_chunks = n_chunks;
  plan.tokens.resize(size_t(n_chunks * opts.n_ctx));
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int32_t* saved = reader->chunk_tokens(c);
    const int32_t* ours = plan.tokens.data() + c * opts.n_ctx;
    for (int64_t j = 0; j < opts.n_ctx; ++j)
      if (saved[j] != ours[j])
        return Status::error(logits_path + ": token " + std::to_string(j) + " of chunk " +
                             std::to_string(c) + " is " + std::to_string(saved[j]) +
                             " in the file and " + std::to_string(ours[j]) +
                             " in this text: not the text (or tokenizer) the logits were saved from");
  }

  EG_ASSIGN_OR_RETURN(auto ct, make_context(test, opts, pool));
  KldAccum acc;
  std::vector<Position> pos;
  std::vector<uint8_t> rows;
  std::vector<std::vector<double>> scratch(size_t(pool.size()), std::vector<double>(size_t(n_vocab)));
  const size_t rb = logits_row_bytes(n_vocab);
  auto on_rows = [&](int64_t c, int64_t j0, int64_t n, int64_t row0) -> Status {
    EG_TRY(reader->read_rows(c, j0 - h.first_scored(), n, rows));
    const int32_t* chunk = plan.tokens.data() + c * opts.n_ctx;
    pos.assign(size_t(n), Position{});
    pool.parallel_for(
        n,
        [&](int64_t k0, int64_t k1, int ith) {
          double* lp = scratch[size_t(ith)].data();
          for (int64_t k = k0; k < k1; ++k) {
            const DecodedRow d = decode_logprob_row(rows.data() + size_t(k) * rb, n_vocab, lp);
            pos[size_t(k)] = compare_decoded(lp, d, ct->logits(row0 + k), n_vocab, chunk[j0 + k + 1]);
          }
        },
        row_grain(n_vocab));
    for (int64_t k = 0; k < n; ++k) {
      if (!pos[size_t(k)].finite) return non_finite("test", c, j0 + k);
      acc.add(pos[size_t(k)]);
    }
    return Status::ok();
  };
  EG_TRY(drive_chunks({ct.get()}, plan, opts.n_ctx, ubatch(opts), on_rows,
                      [&](int64_t done) {
                        if (progress) progress(done, plan.n_chunks, acc.mean());
                      }));
  return acc.result(plan.n_chunks, plan.text_tokens, seconds_since(t0));
}

Result<SaveLogitsResult> save_logits(const model::Model& base, const tokenizer::Tokenizer& tok,
                                     const std::string& text, const std::string& path,
                                     const KldOptions& opts, ThreadPool& pool,
                                     const KldProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  EG_ASSIGN_OR_RETURN(ChunkPlan plan, plan_chunks(tok, text, opts.n_ctx, opts.max_chunks));
  const int64_t n_vocab = base.config().n_vocab;
  LogitsHeader h;
  h.n_vocab = uint32_t(n_vocab);
  h.n_ctx = uint32_t(opts.n_ctx);
  h.n_chunks = uint32_t(plan.n_chunks);
  h.bos_id = plan.bos_id;
  h.vocab_hash = vocab_fingerprint(base.file());
  EG_ASSIGN_OR_RETURN(auto writer, LogitsWriter::create(path, h, plan.tokens));
  EG_ASSIGN_OR_RETURN(auto cb, make_context(base, opts, pool));
  NllSum nll;
  std::vector<uint8_t> rows;
  std::vector<uint8_t> finite;
  const size_t rb = logits_row_bytes(n_vocab);
  auto on_rows = [&](int64_t c, int64_t j0, int64_t n, int64_t row0) -> Status {
    const int32_t* chunk = plan.tokens.data() + c * opts.n_ctx;
    rows.resize(size_t(n) * rb);
    finite.assign(size_t(n), 1);
    pool.parallel_for(
        n,
        [&](int64_t k0, int64_t k1) {
          for (int64_t k = k0; k < k1; ++k) {
            const float* x = cb->logits(row0 + k);
            if (!row_finite(x, n_vocab)) {
              finite[size_t(k)] = 0;
              continue;
            }
            encode_logprob_row(x, row_norm(x, n_vocab), n_vocab, chunk[j0 + k + 1],
                               rows.data() + size_t(k) * rb);
          }
        },
        row_grain(n_vocab));
    for (int64_t k = 0; k < n; ++k) {
      if (!finite[size_t(k)]) return non_finite("base", c, j0 + k);
      // Recomputed (not read back from the float in the row) so the perplexity is exact.
      const float* x = cb->logits(row0 + k);
      nll.add(row_nll(x, row_norm(x, n_vocab), chunk[j0 + k + 1]));
    }
    return writer->append_rows(rows.data(), n);
  };
  EG_TRY(drive_chunks({cb.get()}, plan, opts.n_ctx, ubatch(opts), on_rows,
                      [&](int64_t done) {
                        if (progress) progress(done, plan.n_chunks, std::exp(nll.sum / double(nll.n)));
                      }));
  EG_TRY(writer->finish());
  SaveLogitsResult r;
  r.ppl = nll.result(plan.n_chunks, plan.text_tokens, seconds_since(t0));
  r.file_bytes = writer->bytes_written();
  return r;
}

nlohmann::json perplexity_json(const PerplexityResult& r) {
  return {{"perplexity", r.perplexity}, {"nll", r.nll},         {"nll_stderr", r.nll_stderr},
          {"tokens", r.tokens},         {"chunks", r.chunks},   {"text_tokens", r.text_tokens},
          {"seconds", r.seconds}};
}

nlohmann::json kld_json(const KldResult& r) {
  return {{"chunks", r.chunks},
          {"positions", r.positions},
          {"kld_mean", r.kld_mean},
          {"kld_stderr", r.kld_stderr},
          {"kld_median", r.kld_median},
          {"kld_p99", r.kld_p99},
          {"kld_max", r.kld_max},
          {"top1_percent", r.top1_percent},
          {"top1_stderr", r.top1_stderr},
          {"delta_p_rms", r.delta_p_rms},
          {"ppl_base", r.base.perplexity},
          {"ppl_base_nll_stderr", r.base.nll_stderr},
          {"ppl_test", r.test.perplexity},
          {"ppl_test_nll_stderr", r.test.nll_stderr},
          {"seconds", r.seconds}};
}

}  // namespace edgeglm::eval
