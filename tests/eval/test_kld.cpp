// KL divergence and the logits file: a model against itself gives exactly 0, quantized weights
// give more the coarser they are and match a brute-force recomputation, saved logits reproduce
// the direct result within the file's precision, and a bad logits file is an error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "core/mapped_file.h"
#include "eval/kld.h"
#include "eval/logits_file.h"
#include "formats/gguf/gguf_writer.h"
#include "quant/quant.h"
#include "model/model_test_util.h"
#include "test_util.h"

using namespace edgeglm;

namespace edgeglm::test {

// stories260K with every 2-D weight whose rows are a multiple of 32 stored as `type` (the others,
// e.g. ffn_down with 172-wide rows, stay F32). Written once per process; "" without ../shared.
// Also used by test_report.cpp.
std::string stories_as(DType type) {
  static struct Made : std::map<DType, std::string> {
    ~Made() {
      for (const auto& [t, path] : *this) std::filesystem::remove(path);
    }
  } made;
  if (auto it = made.find(type); it != made.end()) return it->second;
  const std::string src = shared_path("models/stories260K/stories260K.gguf");
  if (!std::filesystem::exists(src)) return "";
  auto f = formats::open_model(src);
  EXPECT_TRUE(f.ok()) << f.status().message();
  if (!f.ok()) return "";
  std::vector<formats::TensorInfo> tensors = (*f)->tensors;
  std::vector<std::vector<uint8_t>> owned;
  owned.reserve(tensors.size());
  for (formats::TensorInfo& t : tensors) {
    if (t.dtype != DType::F32 || t.shape.size() != 2 || t.shape[0] % 32 != 0) continue;
    const int64_t cols = t.shape[0], rows = t.shape[1];
    const size_t row_bytes = dtype_row_bytes(type, cols);
    owned.emplace_back(row_bytes * size_t(rows));
    for (int64_t r = 0; r < rows; ++r)
      quant::quantize_row(type, reinterpret_cast<const float*>(t.data) + r * cols,
                          owned.back().data() + size_t(r) * row_bytes, cols);
    t.dtype = type;
    t.nbytes = owned.back().size();
    t.data = owned.back().data();
  }
  const std::string out = temp_path(std::to_string(::getpid()) + "_stories260K_" +
                                    dtype_name(type) + ".gguf");
  Status st = formats::write_gguf(out, (*f)->meta, tensors);
  EXPECT_TRUE(st.is_ok()) << st.message();
  made[type] = st.is_ok() ? out : "";
  return made[type];
}

}  // namespace edgeglm::test

namespace {

using test::Loaded;
using test::load;

std::string stories_text() {
  return read_text_file(test::shared_path("data/tinystories_valid_1000.txt")).value();
}

#define REQUIRE_STORIES() EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf")

eval::KldOptions opts(int64_t ctx, int64_t chunks) {
  eval::KldOptions o;
  o.n_ctx = ctx;
  o.max_chunks = chunks;
  return o;
}

// Independent double-precision definitions: p = exp(l) / sum exp(l).
std::vector<double> probs(const float* l, int64_t n) {
  double mx = l[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(l[i]));
  std::vector<double> p(static_cast<size_t>(n));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[size_t(i)] = std::exp(double(l[i]) - mx);
  for (double& v : p) v /= s;
  return p;
}

}  // namespace

TEST(LogitsFile, RowRoundTripWithinDocumentedPrecision) {
  const int64_t n = 3000;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 6.0f);
  std::vector<float> logits(static_cast<size_t>(n));
  for (float& x : logits) x = g(rng);
  logits[17] = -500.0f;  // far below the window: raised to the floor
  const eval::RowNorm norm = eval::row_norm(logits.data(), n);
  std::vector<uint8_t> row(eval::logits_row_bytes(n));
  eval::encode_logprob_row(logits.data(), norm, n, 42, row.data());
  ASSERT_TRUE(eval::check_logprob_row(row.data(), n, "row").is_ok());
  std::vector<double> lp(static_cast<size_t>(n));
  const eval::DecodedRow d = eval::decode_logprob_row(row.data(), n, lp.data());
  EXPECT_EQ(d.argmax, int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  EXPECT_FLOAT_EQ(float(d.target_nll), float(eval::row_nll(logits.data(), norm, 42)));
  double worst = 0, mass = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double exact = (double(logits[size_t(i)]) - norm.max) - norm.lse;
    mass += std::exp(lp[size_t(i)]);
    if (exact > -norm.lse - eval::kLogProbWindow) worst = std::max(worst, std::abs(lp[size_t(i)] - exact));
  }
  EXPECT_NEAR(mass, 1.0, 1e-12);  // renormalised
  // Rounding (step/2 <= window/131070) plus the renormalisation shift, bounded by the same.
  EXPECT_LT(worst, 2 * eval::kLogProbWindow / 131070 + 1e-6);
  EXPECT_GT(worst, 1e-6);  // it is a lossy format: the test would catch a no-op
  EXPECT_NEAR(lp[17], -norm.lse - eval::kLogProbWindow, 1e-3);
}

TEST(Kld, ModelAgainstItselfIsExactlyZero) {
  REQUIRE_STORIES();
  Loaded m = load(test::shared_path("models/stories260K/stories260K.gguf"));
  ThreadPool pool(2);
  const std::string text = stories_text();
  auto r = eval::kl_divergence(*m.model, *m.model, *m.tok, text, opts(128, 4), pool);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->chunks, 4);
  EXPECT_EQ(r->positions, 4 * 63);
  EXPECT_EQ(r->kld_mean, 0.0);
  EXPECT_EQ(r->kld_max, 0.0);
  EXPECT_EQ(r->top1_percent, 100.0);
  EXPECT_EQ(r->delta_p_rms, 0.0);
  // Its perplexities are perplexity()'s, bit for bit.
  eval::PerplexityOptions po;
  po.n_ctx = 128;
  po.max_chunks = 4;
  auto p = eval::perplexity(*m.model, *m.tok, text, po, pool);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(r->test.perplexity, p->perplexity);
  EXPECT_EQ(r->base.perplexity, p->perplexity);
  EXPECT_EQ(r->test.nll_stderr, p->nll_stderr);
  EXPECT_EQ(r->test.tokens, p->tokens);
}

TEST(Kld, QuantizedModelsDivergeMoreWhenCoarser) {
  REQUIRE_STORIES();
  Loaded f32 = load(test::shared_path("models/stories260K/stories260K.gguf"));
  Loaded q8 = load(test::stories_as(DType::Q8_0));
  Loaded q4 = load(test::stories_as(DType::Q4_0));
  ThreadPool pool(2);
  const std::string text = stories_text();
  auto k8 = eval::kl_divergence(*f32.model, *q8.model, *f32.tok, text, opts(64, 6), pool);
  auto k4 = eval::kl_divergence(*f32.model, *q4.model, *f32.tok, text, opts(64, 6), pool);
  ASSERT_TRUE(k8.ok()) << k8.status().message();
  ASSERT_TRUE(k4.ok()) << k4.status().message();
  EXPECT_GT(k8->kld_mean, 0.0);
  EXPECT_GT(k4->kld_mean, 5 * k8->kld_mean);  // 4 bits vs 8: far more than noise apart
  EXPECT_GE(k4->kld_max, k4->kld_p99);
  EXPECT_GE(k4->kld_p99, k4->kld_median);
  EXPECT_GT(k4->kld_stderr, 0.0);
  EXPECT_LE(k4->top1_percent, k8->top1_percent);
  EXPECT_GT(k4->delta_p_rms, k8->delta_p_rms);
  EXPECT_EQ(k4->base.perplexity, k8->base.perplexity);  // same base, same positions
  EXPECT_NE(k4->test.perplexity, k4->base.perplexity);
}

TEST(Kld, EqualsBruteForceRecomputation) {
  REQUIRE_STORIES();
  Loaded f32 = load(test::shared_path("models/stories260K/stories260K.gguf"));
  Loaded q4 = load(test::stories_as(DType::Q4_0));
  ThreadPool pool(1);
  const std::string text = stories_text();
  const int64_t ctx = 32;
  auto k = eval::kl_divergence(*f32.model, *q4.model, *f32.tok, text, opts(ctx, 1), pool);
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_EQ(k->positions, ctx - 1 - ctx / 2);

  // The first chunk by hand: BOS, then text tokens 1..31, both models in one decode each.
  std::vector<int32_t> chunk = f32.tok->encode(text, true, false);
  chunk.resize(size_t(ctx));
  chunk[0] = f32.tok->bos_id();
  model::ContextOptions co;
  co.n_ctx = ctx;
  co.n_ubatch = ctx;
  co.all_logits = true;
  auto cb = model::Context::create(*f32.model, co, pool);
  auto ct = model::Context::create(*q4.model, co, pool);
  ASSERT_TRUE(cb.ok() && ct.ok());
  ASSERT_TRUE((*cb)->decode(chunk.data(), ctx, true).is_ok());
  ASSERT_TRUE((*ct)->decode(chunk.data(), ctx, true).is_ok());
  const int64_t V = f32.model->config().n_vocab;
  std::vector<double> klds;
  double nll_b = 0, nll_t = 0;
  int same = 0;
  for (int64_t j = ctx / 2; j < ctx - 1; ++j) {
    const float* lb = (*cb)->logits(j);
    const float* lt = (*ct)->logits(j);
    const std::vector<double> pb = probs(lb, V), pt = probs(lt, V);
    double kl = 0;
    for (int64_t i = 0; i < V; ++i) kl += pb[size_t(i)] * std::log(pb[size_t(i)] / pt[size_t(i)]);
    klds.push_back(kl);
    nll_b -= std::log(pb[size_t(chunk[size_t(j + 1)])]);
    nll_t -= std::log(pt[size_t(chunk[size_t(j + 1)])]);
    same += std::max_element(lb, lb + V) - lb == std::max_element(lt, lt + V) - lt;
  }
  const double n = double(klds.size());
  double mean = 0;
  for (double v : klds) mean += v / n;
  EXPECT_NEAR(k->kld_mean, mean, 1e-9 + 1e-6 * mean);
  EXPECT_NEAR(k->kld_max, *std::max_element(klds.begin(), klds.end()), 1e-9);
  EXPECT_NEAR(k->base.nll, nll_b / n, 1e-9);
  EXPECT_NEAR(k->test.nll, nll_t / n, 1e-9);
  EXPECT_DOUBLE_EQ(k->top1_percent, 100.0 * same / n);
}

TEST(Kld, SavedLogitsReproduceTheDirectResult) {
  REQUIRE_STORIES();
  Loaded f32 = load(test::shared_path("models/stories260K/stories260K.gguf"));
  Loaded q4 = load(test::stories_as(DType::Q4_0));
  Loaded q8 = load(test::stories_as(DType::Q8_0));
  ThreadPool pool(2);
  const std::string text = stories_text();
  const std::string path = test::temp_path(std::to_string(::getpid()) + "_base.logits");
  auto saved = eval::save_logits(*f32.model, *f32.tok, text, path, opts(64, 5), pool);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_EQ(saved->file_bytes, std::filesystem::file_size(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  // 48-byte header + 5 x 64 tokens + 5 x 31 rows of 16 + 2 x 512 bytes.
  EXPECT_EQ(saved->file_bytes, 48u + 5 * 64 * 4 + 5 * 31 * (16 + 2 * 512));
  for (const Loaded* test : {&q4, &q8}) {
    auto direct = eval::kl_divergence(*f32.model, *test->model, *f32.tok, text, opts(64, 5), pool);
    auto file = eval::kl_divergence(path, *test->model, *f32.tok, text, opts(64, -1), pool);
    ASSERT_TRUE(direct.ok() && file.ok()) << file.status().message();
    EXPECT_EQ(file->positions, direct->positions);
    // Documented bound ~7e-4 * sqrt(KLD) per position in the worst case.
    EXPECT_NEAR(file->kld_mean, direct->kld_mean, 7e-4 * std::sqrt(direct->kld_mean));
    EXPECT_NEAR(file->kld_mean, direct->kld_mean, 1e-5);
    EXPECT_NEAR(file->kld_p99, direct->kld_p99, 1e-4);
    EXPECT_EQ(file->top1_percent, direct->top1_percent);  // argmax stored exactly
    EXPECT_EQ(file->test.perplexity, direct->test.perplexity);
    EXPECT_NEAR(file->base.perplexity, direct->base.perplexity, 1e-6 * direct->base.perplexity);
    EXPECT_NEAR(file->delta_p_rms, direct->delta_p_rms, 1e-6);
  }
  // --chunks below the file's count uses its first chunks.
  auto two = eval::kl_divergence(path, *q4.model, *f32.tok, text, opts(64, 2), pool);
  ASSERT_TRUE(two.ok()) << two.status().message();
  EXPECT_EQ(two->positions, 2 * 31);
  std::filesystem::remove(path);
}

TEST(Kld, BadLogitsFilesAreClearErrors) {
  REQUIRE_STORIES();
  Loaded f32 = load(test::shared_path("models/stories260K/stories260K.gguf"));
  ThreadPool pool(1);
  const std::string text = stories_text();
  const std::string path = test::temp_path(std::to_string(::getpid()) + "_bad_base.logits");
  ASSERT_TRUE(eval::save_logits(*f32.model, *f32.tok, text, path, opts(32, 3), pool).ok());
  const std::string good = read_text_file(path).value();
  const std::string bad = path + ".bad";
  auto error_with = [&](const std::string& bytes, const eval::KldOptions& o, const std::string& text_in) {
    std::ofstream(bad, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    auto r = eval::kl_divergence(bad, *f32.model, *f32.tok, text_in, o, pool);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.status().message();
  };
  auto patched = [&](size_t offset, const void* v, size_t n) {
    std::string s = good;
    std::memcpy(s.data() + offset, v, n);
    return s;
  };
  const eval::KldOptions o = opts(32, -1);
  EXPECT_NE(error_with(good.substr(0, good.size() - 1), o, text).find("truncated"), std::string::npos);
  EXPECT_NE(error_with(good.substr(0, 20), o, text).find("truncated"), std::string::npos);
  EXPECT_NE(error_with(good + "x", o, text).find("oversized"), std::string::npos);
  EXPECT_NE(error_with("", o, text).find("truncated"), std::string::npos);
  EXPECT_NE(error_with(patched(0, "XXXX", 4), o, text).find("magic"), std::string::npos);
  const uint32_t version = 9, vocab = 513, huge = 0xffffffffu;
  EXPECT_NE(error_with(patched(8, &version, 4), o, text).find("version 9"), std::string::npos);
  // A larger vocab in the header: the size no longer matches (never read past the end).
  EXPECT_NE(error_with(patched(16, &vocab, 4), o, text).find("truncated"), std::string::npos);
  EXPECT_NE(error_with(patched(24, &huge, 4), o, text).find("chunk count"), std::string::npos);
  const uint64_t other_hash = 1234;
  EXPECT_NE(error_with(patched(32, &other_hash, 8), o, text).find("different vocabulary"), std::string::npos);
  // A corrupt row: lp_step NaN in the first row.
  const float nan = NAN;
  const size_t row0 = 48 + 3 * 32 * 4;
  EXPECT_NE(error_with(patched(row0 + 4, &nan, 4), o, text).find("corrupt"), std::string::npos);
  // Another ctx, more chunks than saved, another text.
  EXPECT_NE(error_with(good, opts(64, -1), text).find("--ctx 32"), std::string::npos);
  EXPECT_NE(error_with(good, opts(32, 4), text).find("holds 3 chunks"), std::string::npos);
  EXPECT_NE(error_with(good, opts(32, 0), text).find("--chunks 0"), std::string::npos);
  EXPECT_NE(error_with(good, o, "Tom had a red ball. " + text).find("not the text"), std::string::npos);
  EXPECT_NE(error_with(good, o, "Too short.").find("fewer than one chunk"), std::string::npos);
  std::filesystem::remove(bad);
  std::filesystem::remove(path);
}

TEST(Kld, UnwritableLogitsPathIsAnErrorAndLeavesNothing) {
  REQUIRE_STORIES();
  Loaded f32 = load(test::shared_path("models/stories260K/stories260K.gguf"));
  ThreadPool pool(1);
  const std::string path = test::temp_path("no_such_dir/base.logits");
  auto r = eval::save_logits(*f32.model, *f32.tok, stories_text(), path, opts(32, 1), pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no_such_dir/base.logits.tmp"), std::string::npos)
      << r.status().message();
}

TEST(Kld, ModelsWithDifferentVocabulariesAreRefused) {
  REQUIRE_STORIES();
  const std::string smol = test::model_path("smollm2-135m-instruct-q4_1.gguf");
  if (!std::filesystem::exists(smol)) GTEST_SKIP() << "model not fetched: " << smol;
  Loaded a = load(test::shared_path("models/stories260K/stories260K.gguf"));
  Loaded b = load(smol);
  ThreadPool pool(1);
  auto r = eval::kl_divergence(*a.model, *b.model, *b.tok, stories_text(), opts(32, 1), pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("do not share a vocabulary"), std::string::npos)
      << r.status().message();
}
