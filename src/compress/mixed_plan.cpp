#include "compress/mixed_plan.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "compress/quantize_model.h"
#include "model/convert.h"
#include "quant/calibrated.h"
#include "quant/quant.h"
#include "quant/scheme.h"

namespace edgeglm::compress {
namespace {

// Log-softmax of every row of logits (n_rows, n_vocab) into out.
void log_softmax_rows(const float* logits, int64_t n_rows, int64_t n_vocab, float* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* x = logits + r * n_vocab;
    float* y = out + r * n_vocab;
    const float mx = *std::max_element(x, x + n_vocab);
    double sum = 0;
    for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(double(x[i] - mx));
    const float lse = mx + float(std::log(sum));
    for (int64_t i = 0; i < n_vocab; ++i) y[i] = x[i] - lse;
  }
}

// Runs `tokens` through a fresh context and writes the log-softmax of every position.
Status run_logprobs(const model::Model& m, const std::vector<int32_t>& tokens, ThreadPool& pool,
                    std::vector<float>& out) {
  model::ContextOptions co;
  co.n_ctx = int64_t(tokens.size());
  co.all_logits = true;
  co.kv_type = DType::F32;
  EG_ASSIGN_OR_RETURN(auto ctx, model::Context::create(m, co, pool));
  const int64_t V = ctx->n_vocab(), ub = co.n_ubatch, n = int64_t(tokens.size());
  out.resize(size_t(n * V));
  for (int64_t b = 0; b < n; b += ub) {
    const int64_t k = std::min(ub, n - b);
    EG_TRY(ctx->decode(tokens.data() + b, k, /*all_logits=*/true));
    log_softmax_rows(ctx->logits(0), k, V, out.data() + b * V);
  }
  return Status::ok();
}

double mean_kld(const std::vector<float>& base, const std::vector<float>& test, int64_t n_vocab) {
  const int64_t n = int64_t(base.size()) / n_vocab;
  double total = 0;
  for (int64_t r = 0; r < n; ++r) {
    const float* p = base.data() + r * n_vocab;
    const float* q = test.data() + r * n_vocab;
    double kl = 0;
    for (int64_t i = 0; i < n_vocab; ++i) kl += std::exp(double(p[i])) * double(p[i] - q[i]);
    total += std::max(kl, 0.0);
  }
  return n ? total / double(n) : 0.0;
}

uint64_t tensor_bytes(DType t, int64_t rows, int64_t cols) {
  return dtype_row_bytes(t, cols) * uint64_t(rows);
}

struct Budget {
  int64_t n_params = 0;
  uint64_t tensor_bytes = 0;  // for all tensors
  uint64_t smallest = 0;      // every tensor in its cheapest storable candidate
};

// The byte budget for the tensors, and the smallest plan the candidates allow (from shapes
// alone, so a hopeless budget fails before any measurement).
Result<Budget> mixed_budget(const formats::ModelFile& file, const MixedOptions& opts) {
  if (!(opts.target_bpw > 0) && !(opts.target_mib > 0))
    return Status::error("scheme mixed needs --target-bpw B or --target-size MB");
  const std::vector<DType> cands = opts.candidates.empty() ? default_mixed_candidates() : opts.candidates;
  Budget b;
  uint64_t in_tensor_bytes = 0;
  for (const formats::TensorInfo& t : file.tensors) {
    quant::TensorDesc d{t.name, int(t.shape.size()), t.shape.empty() ? 0 : t.shape[0], 0};
    d.rows = d.cols ? t.nelements() / d.cols : 0;
    b.n_params += t.nelements();
    in_tensor_bytes += t.nbytes;
    uint64_t least = std::numeric_limits<uint64_t>::max();
    if (quant::is_quantizable(d))
      for (DType c : cands)
        if (dtype_row_ok(c, d.cols)) least = std::min(least, tensor_bytes(c, d.rows, d.cols));
    if (least == std::numeric_limits<uint64_t>::max()) {
      const DType keep = quant::is_quantizable(d) ? DType::F16
                         : t.dtype == DType::F16 || t.dtype == DType::BF16 ? DType::F32 : t.dtype;
      least = tensor_bytes(keep, d.rows, d.cols);
    }
    b.smallest += least;
  }
  if (opts.target_bpw > 0) {
    b.tensor_bytes = uint64_t(opts.target_bpw * double(b.n_params) / 8.0);
  } else {
    // Header, metadata and alignment padding as in the input, plus room for the plan strings.
    // Plan strings are "name=type" (GGUF: 8-byte length + bytes); each tensor may need up to
    // 32 bytes more alignment padding than in the input; 1 KiB for the other quantize keys.
    uint64_t plan_strings = 0;
    for (const formats::TensorInfo& t : file.tensors) plan_strings += 8 + t.name.size() + 8;
    const uint64_t overhead = (file.file_bytes > in_tensor_bytes ? file.file_bytes - in_tensor_bytes : 0) +
                              plan_strings + 32 * file.tensors.size() + 1024;
    const uint64_t target = uint64_t(opts.target_mib * 1024.0 * 1024.0);
    b.tensor_bytes = target > overhead ? target - overhead : 0;
  }
  if (b.smallest > b.tensor_bytes)
    return Status::error("mixed plan: the budget (" + std::to_string(b.tensor_bytes) +
                         " bytes of tensors) is below the smallest plan (" + std::to_string(b.smallest) +
                         " bytes = " + std::to_string(8.0 * double(b.smallest) / double(b.n_params)) +
                         " bits/weight, every tensor in its cheapest format)");
  return b;
}

}  // namespace

Status check_mixed_budget(const formats::ModelFile& file, const MixedOptions& opts) {
  auto b = mixed_budget(file, opts);
  return b.ok() ? Status::ok() : b.status();
}

namespace {
}  // namespace

std::vector<DType> default_mixed_candidates() {
  return {DType::I4_G128, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
          DType::Q6_K,    DType::Q8_0, DType::F16};
}

Result<uint64_t> choose_formats(std::vector<TensorPlan>& tensors, uint64_t budget_bytes) {
  uint64_t min_bytes = 0;
  for (const TensorPlan& t : tensors) {
    if (t.bytes.empty()) return Status::error("mixed plan: tensor '" + t.name + "' has no candidate format");
    uint64_t m = std::numeric_limits<uint64_t>::max();
    for (const auto& [type, b] : t.bytes) m = std::min(m, b);
    min_bytes += m;
  }
  if (min_bytes > budget_bytes)
    return Status::error("mixed plan: the budget (" + std::to_string(budget_bytes) +
                         " bytes for the quantized tensors) is below the smallest plan (" +
                         std::to_string(min_bytes) + " bytes, every tensor in its cheapest format)");
  // Each tensor's choice for a given lambda: least loss + lambda * bytes (ties: fewer bytes).
  auto pick = [&](double lambda) {
    uint64_t used = 0;
    for (TensorPlan& t : tensors) {
      double best = std::numeric_limits<double>::infinity();
      for (const auto& [type, b] : t.bytes) {
        const double cost = t.predicted_kld.at(type) + lambda * double(b);
        if (cost < best || (cost == best && b < t.bytes.at(t.chosen))) {
          best = cost;
          t.chosen = type;
        }
      }
      used += t.bytes.at(t.chosen);
    }
    return used;
  };
  // lambda = 0 takes the best format everywhere; a large lambda the cheapest.
  double lo = 0, hi = 1.0;
  while (pick(hi) > budget_bytes && hi < 1e30) hi *= 4;
  uint64_t used = pick(0);
  if (used > budget_bytes) {
    for (int it = 0; it < 200; ++it) {
      const double mid = 0.5 * (lo + hi);
      if (pick(mid) > budget_bytes) lo = mid; else hi = mid;
    }
    used = pick(hi);
  }
  // Greedy fill: the upgrade with the most loss saved per extra byte that still fits.
  for (;;) {
    TensorPlan* best_t = nullptr;
    DType best_type = DType::F32;
    double best_gain = 0;
    for (TensorPlan& t : tensors) {
      const uint64_t cur_b = t.bytes.at(t.chosen);
      const double cur_l = t.predicted_kld.at(t.chosen);
      for (const auto& [type, b] : t.bytes) {
        if (b <= cur_b || used - cur_b + b > budget_bytes) continue;
        const double gain = (cur_l - t.predicted_kld.at(type)) / double(b - cur_b);
        if (gain > best_gain) {
          best_gain = gain;
          best_t = &t;
          best_type = type;
        }
      }
    }
    if (!best_t) break;
    used = used - best_t->bytes.at(best_t->chosen) + best_t->bytes.at(best_type);
    best_t->chosen = best_type;
  }
  return used;
}

Result<MixedPlan> plan_mixed(const model::Model& model, const tokenizer::Tokenizer& tok,
                             const std::string& calib_text, const Calibration* calib,
                             const MixedOptions& opts, ThreadPool& pool,
                             const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  if (opts.sensitivity_tokens < 16)
    return Status::error("mixed plan: at least 16 sensitivity tokens are needed");
  const formats::ModelFile& file = model.file();
  EG_TRY(check_mixed_budget(file, opts));
  const bool tied = file.find("output.weight") == nullptr;
  std::vector<DType> cands = opts.candidates.empty() ? default_mixed_candidates() : opts.candidates;
  if (std::find(cands.begin(), cands.end(), opts.probe) == cands.end()) cands.push_back(opts.probe);

  // Sensitivity text: the first tokens of the calibration text, one sequence.
  std::vector<int32_t> tokens;
  if (tok.add_bos() && tok.bos_id() >= 0) tokens.push_back(tok.bos_id());
  for (int32_t id : tok.encode(calib_text, false, false)) {
    if (int64_t(tokens.size()) >= opts.sensitivity_tokens) break;
    tokens.push_back(id);
  }
  if (int64_t(tokens.size()) < 16)
    return Status::error("mixed plan: the calibration text has fewer than 16 tokens");
  // The sensitivity runs use a Q8_0 copy of the model as their reference (every matrix that
  // can be Q8_0 is): its int8 kernels run several times faster than float weights, which makes
  // one run per tensor affordable, and Q8_0's own loss is far below a 4-bit tensor's.
  formats::ModelFile ref_file = file;
  std::vector<std::vector<uint8_t>> ref_store;
  {
    std::vector<float> row;
    for (formats::TensorInfo& t : ref_file.tensors) {
      quant::TensorDesc d{t.name, int(t.shape.size()), t.shape.empty() ? 0 : t.shape[0], 0};
      if (!quant::is_quantizable(d) || t.dtype == DType::Q8_0 || !dtype_row_ok(DType::Q8_0, d.cols))
        continue;
      const int64_t rows = t.nelements() / d.cols;
      std::vector<uint8_t>& buf = ref_store.emplace_back(tensor_bytes(DType::Q8_0, rows, d.cols));
      const size_t src_row = dtype_row_bytes(t.dtype, d.cols), dst_row = dtype_row_bytes(DType::Q8_0, d.cols);
      row.resize(size_t(d.cols));
      for (int64_t r = 0; r < rows; ++r) {
        quant::dequantize_row(t.dtype, t.data + size_t(r) * src_row, row.data(), d.cols);
        quant::quantize_row(DType::Q8_0, row.data(), buf.data() + size_t(r) * dst_row, d.cols);
      }
      t.dtype = DType::Q8_0;
      t.data = buf.data();
      t.nbytes = buf.size();
    }
  }
  std::vector<float> base_lp, test_lp;
  {
    EG_ASSIGN_OR_RETURN(auto ref, model::Model::from_file(std::make_unique<formats::ModelFile>(ref_file)));
    EG_TRY(run_logprobs(*ref, tokens, pool, base_lp));
  }
  const int64_t V = model.config().n_vocab;

  MixedPlan plan;
  EG_ASSIGN_OR_RETURN(const Budget budget, mixed_budget(file, opts));
  const int64_t n_params = budget.n_params;
  const uint64_t tensor_budget = budget.tensor_bytes;
  plan.budget_bytes = tensor_budget;
  std::vector<size_t> quantizable;
  for (size_t k = 0; k < file.tensors.size(); ++k) {
    const formats::TensorInfo& t = file.tensors[k];
    quant::TensorDesc d{t.name, int(t.shape.size()), t.shape.empty() ? 0 : t.shape[0], 0};
    d.rows = d.cols ? t.nelements() / d.cols : 0;
    if (quant::is_quantizable(d)) {
      quantizable.push_back(k);
    } else {
      const DType keep = t.dtype == DType::F16 || t.dtype == DType::BF16 ? DType::F32 : t.dtype;
      plan.fixed_bytes += tensor_bytes(keep, d.rows, d.cols);
    }
  }

  std::vector<float> w;
  for (size_t i = 0; i < quantizable.size(); ++i) {
    const formats::TensorInfo& t = file.tensors[quantizable[i]];
    TensorPlan tp;
    tp.name = t.name;
    tp.cols = t.shape[0];
    tp.rows = t.nelements() / tp.cols;
    w.resize(size_t(tp.rows * tp.cols));
    pool.parallel_for(
        tp.rows, [&](int64_t b, int64_t e) { model::dequantize_rows(t, b, e, w.data() + b * tp.cols); }, 16);
    const InputStats* st = calib ? calib->for_tensor(t.name, tied) : nullptr;
    // Relative error of each candidate storable with these rows, weighted per input channel by
    // diag(H) (the importance; 1 without statistics): sum_rj H_jj e_rj^2 / sum_rj H_jj w_rj^2.
    // The full tr(E H E^T) costs rows * cols^2 per format (minutes for a whole model); the
    // diagonal is rows * cols and ranks formats the same way. Plain rounding: the ratio between
    // formats is what matters, and calibrated rounding lowers them all alike.
    std::vector<double> imp(size_t(tp.cols), 1.0);
    if (st && st->n_in == tp.cols)
      for (int64_t j = 0; j < tp.cols; ++j) imp[size_t(j)] = std::max(0.0, double(st->xtx[size_t(j * tp.cols + j)]));
    double ref = 0;
    for (int64_t r = 0; r < tp.rows; ++r)
      for (int64_t j = 0; j < tp.cols; ++j) ref += imp[size_t(j)] * double(w[size_t(r * tp.cols + j)]) * w[size_t(r * tp.cols + j)];
    std::map<DType, double> err;
    std::map<DType, std::vector<uint8_t>> encoded;
    for (DType c : cands) {
      if (!dtype_row_ok(c, tp.cols)) continue;
      std::vector<uint8_t>& q = encoded[c];
      q.resize(tensor_bytes(c, tp.rows, tp.cols));
      EG_TRY(compress::quantize_matrix(c, w.data(), tp.rows, tp.cols, nullptr, q.data(), pool));
      const size_t rb = dtype_row_bytes(c, tp.cols);
      std::vector<double> parts(size_t(pool.size()), 0.0);
      pool.parallel_for(
          tp.rows,
          [&](int64_t b, int64_t e_row, int ith) {
            std::vector<float> deq(size_t(tp.cols));
            double e = 0;
            for (int64_t r = b; r < e_row; ++r) {
              quant::dequantize_row(c, q.data() + size_t(r) * rb, deq.data(), tp.cols);
              for (int64_t j = 0; j < tp.cols; ++j) {
                const double d = double(w[size_t(r * tp.cols + j)]) - deq[size_t(j)];
                e += imp[size_t(j)] * d * d;
              }
            }
            parts[size_t(ith)] += e;
          },
          16);
      double e = 0;
      for (double v : parts) e += v;
      err[c] = ref > 0 ? e / ref : 0.0;
      tp.bytes[c] = q.size();
    }
    DType probe = opts.probe;
    if (!encoded.count(probe)) {
      uint64_t least = std::numeric_limits<uint64_t>::max();
      for (const auto& [c, b] : tp.bytes)
        if (c != DType::F16 && b < least) least = b, probe = c;
    }
    if (!encoded.count(probe)) {
      // Only float can store these rows (e.g. 172 columns, no 32-blocks): not planned.
      const DType keep = encoded.count(DType::F16) ? DType::F16 : DType::F32;
      plan.fixed_bytes += tensor_bytes(keep, tp.rows, tp.cols);
      plan.types[t.name] = keep;
      if (progress) progress(int64_t(i + 1), int64_t(quantizable.size()));
      continue;
    }
    const std::vector<uint8_t>& probe_bytes = encoded.at(probe);
    // Measured loss with only this tensor in the probe format.
    auto mf = std::make_unique<formats::ModelFile>(ref_file);
    formats::TensorInfo& ti = mf->tensors[quantizable[i]];
    ti.dtype = probe;
    ti.data = probe_bytes.data();
    ti.nbytes = probe_bytes.size();
    EG_ASSIGN_OR_RETURN(auto trial, model::Model::from_file(std::move(mf)));
    EG_TRY(run_logprobs(*trial, tokens, pool, test_lp));
    tp.measured_kld = mean_kld(base_lp, test_lp, V);
    const double ep = err.at(probe);
    for (const auto& [c, e] : err)
      tp.predicted_kld[c] = ep > 0 ? tp.measured_kld * e / ep : (c == probe ? tp.measured_kld : 0.0);
    plan.tensors.push_back(std::move(tp));
    if (progress) progress(int64_t(i + 1), int64_t(quantizable.size()));
  }
  EG_ASSIGN_OR_RETURN(uint64_t used, choose_formats(plan.tensors, tensor_budget - plan.fixed_bytes));
  plan.planned_bytes = used + plan.fixed_bytes;
  for (const TensorPlan& tp : plan.tensors) {
    plan.types[tp.name] = tp.chosen;
    plan.predicted_kld += tp.predicted_kld.at(tp.chosen);
  }
  plan.bits_per_weight = n_params ? 8.0 * double(plan.planned_bytes) / double(n_params) : 0;
  plan.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return plan;
}

}  // namespace edgeglm::compress
