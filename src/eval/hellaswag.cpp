#include "eval/hellaswag.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "eval/logits_file.h"

namespace edgeglm::eval {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool use_bos(const tokenizer::Tokenizer& tok) { return tok.add_bos() && tok.bos_id() >= 0; }

// The accuracy of k hits out of n and its standard error.
std::pair<double, double> accuracy(int64_t hits, int64_t n) {
  if (n == 0) return {0, 0};
  const double p = double(hits) / double(n);
  return {p, n > 1 ? std::sqrt(p * (1 - p) / double(n - 1)) : 0};
}

int argmax4(const std::array<double, 4>& v) {
  int best = 0;
  for (int i = 1; i < 4; ++i)
    if (v[size_t(i)] > v[size_t(best)]) best = i;
  return best;
}

}  // namespace

Result<std::vector<HellaswagTask>> parse_hellaswag(const std::string& text, const std::string& name) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    pos = nl + 1;
  }
  if (lines.empty()) return Status::error(name + ": no HellaSwag tasks (empty file)");
  if (lines.size() % 6 != 0) {
    const size_t start = lines.size() / 6 * 6;
    return Status::error(name + ": " + std::to_string(lines.size()) +
                         " lines, not a multiple of 6 (context, label, 4 endings per task): the "
                         "task starting at line " + std::to_string(start + 1) + " is incomplete");
  }
  std::vector<HellaswagTask> tasks(lines.size() / 6);
  for (size_t t = 0; t < tasks.size(); ++t) {
    const size_t l0 = 6 * t;
    auto where = [&](size_t k) { return name + ":" + std::to_string(l0 + k + 1) + ": "; };
    HellaswagTask& task = tasks[t];
    task.line = int64_t(l0 + 1);
    task.context = lines[l0];
    if (trim(task.context).empty()) return Status::error(where(0) + "empty context");
    const std::string label = trim(lines[l0 + 1]);
    if (label.size() != 1 || label[0] < '0' || label[0] > '3')
      return Status::error(where(1) + "gold label '" + lines[l0 + 1] + "' is not 0, 1, 2 or 3");
    task.label = label[0] - '0';
    for (size_t e = 0; e < 4; ++e) {
      task.endings[e] = lines[l0 + 2 + e];
      if (trim(task.endings[e]).empty())
        return Status::error(where(2 + e) + "ending " + std::to_string(e) + " is empty");
    }
  }
  return tasks;
}

EndingTokens ending_tokens(const tokenizer::Tokenizer& tok, const std::vector<int32_t>& context_tokens,
                           const std::string& context, const std::string& ending) {
  EndingTokens e;
  e.tokens = tok.encode(context + " " + ending, /*add_special=*/use_bos(tok), /*parse_special=*/false);
  const size_t n = std::min(e.tokens.size(), context_tokens.size());
  size_t k = 0;
  while (k < n && e.tokens[k] == context_tokens[k]) ++k;
  e.first = std::max<int64_t>(1, int64_t(k));
  return e;
}

Result<HellaswagResult> hellaswag(const model::Model& model, const tokenizer::Tokenizer& tok,
                                  const std::vector<HellaswagTask>& tasks,
                                  const HellaswagOptions& opts, ThreadPool& pool,
                                  const HellaswagProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  int64_t n_tasks = int64_t(tasks.size());
  if (opts.max_tasks >= 0) n_tasks = std::min(n_tasks, opts.max_tasks);
  if (n_tasks < 1) return Status::error("hellaswag: no tasks to evaluate");
  model::ContextOptions co;
  co.n_ctx = opts.n_ctx > 0 ? opts.n_ctx : 256;
  co.n_ubatch = std::max<int64_t>(1, std::min(opts.n_ubatch, co.n_ctx));
  co.all_logits = true;
  co.kv_type = opts.kv_type;
  EG_ASSIGN_OR_RETURN(auto ctx, model::Context::create(model, co, pool));
  const int64_t n_vocab = ctx->n_vocab();
  const int64_t grain = std::max<int64_t>(1, 32768 / n_vocab);

  HellaswagResult r;
  int64_t hits = 0, hits_norm = 0;
  std::vector<double> lp;
  for (int64_t t = 0; t < n_tasks; ++t) {
    const HellaswagTask& task = tasks[size_t(t)];
    auto where = [&] {
      return "hellaswag: task " + std::to_string(t + 1) + " (line " + std::to_string(task.line) + ")";
    };
    const std::vector<int32_t> context_tokens =
        tok.encode(task.context, /*add_special=*/use_bos(tok), /*parse_special=*/false);
    std::array<EndingTokens, 4> e;
    int64_t shared = INT64_MAX;
    for (size_t i = 0; i < 4; ++i) {
      e[i] = ending_tokens(tok, context_tokens, task.context, task.endings[i]);
      const int64_t len = int64_t(e[i].tokens.size());
      if (e[i].first >= len) return Status::error(where() + ": ending " + std::to_string(i) + " has no tokens");
      if (len - 1 > co.n_ctx) {
        if (opts.n_ctx > 0)
          return Status::error(where() + ": needs " + std::to_string(len - 1) +
                               " tokens of context, more than --ctx " + std::to_string(opts.n_ctx));
        while (co.n_ctx < len - 1) co.n_ctx *= 2;
        EG_ASSIGN_OR_RETURN(ctx, model::Context::create(model, co, pool));
      }
      // Every token before e[i].first equals the context's, so all endings share the first
      // (min first - 1) tokens; the last shared token is re-decoded per ending for its logits.
      shared = std::min(shared, e[i].first - 1);
    }
    ctx->truncate(0);
    if (shared > 0) EG_TRY(ctx->decode(context_tokens.data(), shared).with_context(where()));

    HellaswagTaskScore s;
    s.label = task.label;
    for (size_t i = 0; i < 4; ++i) {
      const std::vector<int32_t>& tk = e[i].tokens;
      const int64_t first = e[i].first, len = int64_t(tk.size());
      ctx->truncate(shared);
      // Tokens up to first-2 only feed the cache; first-1 .. len-2 predict the ending's tokens
      // (the ending's last token predicts nothing and is never decoded).
      if (first - 1 > shared)
        EG_TRY(ctx->decode(tk.data() + shared, first - 1 - shared).with_context(where()));
      double sum = 0;
      for (int64_t b = first - 1; b < len - 1; b += co.n_ubatch) {
        const int64_t m = std::min(co.n_ubatch, len - 1 - b);
        EG_TRY(ctx->decode(tk.data() + b, m, /*all_logits=*/true).with_context(where()));
        lp.assign(size_t(m), 0.0);
        pool.parallel_for(
            m,
            [&](int64_t k0, int64_t k1) {
              for (int64_t k = k0; k < k1; ++k) {
                const float* x = ctx->logits(k);
                lp[size_t(k)] = row_finite(x, n_vocab) ? -row_nll(x, row_norm(x, n_vocab), tk[size_t(b + k + 1)])
                                                       : NAN;
              }
            },
            grain);
        for (double v : lp) {
          if (!std::isfinite(v)) return Status::error(where() + ": the model's logits are not finite");
          sum += v;
        }
      }
      s.logprob[i] = sum;
      s.n_tokens[i] = len - first;
    }
    std::array<double, 4> norm;
    for (size_t i = 0; i < 4; ++i) norm[i] = s.logprob[i] / double(s.n_tokens[i]);
    s.pred = argmax4(s.logprob);
    s.pred_norm = argmax4(norm);
    hits += s.pred == s.label;
    hits_norm += s.pred_norm == s.label;
    r.scores.push_back(s);
    if (progress) progress(t + 1, n_tasks, double(hits_norm) / double(t + 1));
  }
  r.tasks = n_tasks;
  std::tie(r.acc, r.acc_stderr) = accuracy(hits, n_tasks);
  std::tie(r.acc_norm, r.acc_norm_stderr) = accuracy(hits_norm, n_tasks);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

nlohmann::json hellaswag_json(const HellaswagResult& r) {
  return {{"tasks", r.tasks},
          {"acc", r.acc},
          {"acc_stderr", r.acc_stderr},
          {"acc_norm", r.acc_norm},
          {"acc_norm_stderr", r.acc_norm_stderr},
          {"seconds", r.seconds}};
}

}  // namespace edgeglm::eval
