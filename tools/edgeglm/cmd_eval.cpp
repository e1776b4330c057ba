// edgeglm eval: perplexity on a text file (llama.cpp's protocol by default), KL divergence from a
// base model or its saved logits, HellaSwag accuracy; with --compare, a report over several
// models (cmd_eval_compare.cpp).
#include <nlohmann/json.hpp>

#include <cstdio>

#include "common.h"
#include "core/mapped_file.h"
#include "eval/hellaswag.h"
#include "eval/kld.h"
#include "eval/report.h"

namespace edgeglm::cli {

namespace {

struct EvalArgs {
  ModelArgs model;
  std::string ppl_file;
  std::string protocol = "llamacpp";
  int64_t chunks = -1;
  std::string kld_base, kld_text, save_logits, logits;
  std::string hellaswag;
  int64_t tasks = -1;
  std::vector<std::string> compare;
  std::string report;
  std::vector<std::string> notes;
  bool json = false;
};

// Progress on stderr, rewritten in place: "[3/10] ppl 7.8012".
auto progress_line(const char* what) {
  return [what](int64_t done, int64_t total, double v) {
    std::fprintf(stderr, "\r[%lld/%lld] %s %.5g", (long long)done, (long long)total, what, v);
    if (done == total) std::fputc('\n', stderr);
  };
}

Status check_flags(const EvalArgs& a) {
  const bool kld_any = !a.kld_base.empty() || !a.logits.empty() || !a.save_logits.empty();
  if (!a.compare.empty()) {
    if (!a.model.model.empty()) return Status::error("eval: --compare takes the models itself; drop -m");
    if (a.compare.size() < 2) return Status::error("eval: --compare needs a base and at least one more model");
    if (kld_any || !a.kld_text.empty())
      return Status::error("eval: --compare measures KLD against its first model; drop --kld, --logits, "
                           "--save-logits and --kld-text");
    if (a.protocol != "llamacpp") return Status::error("eval: --compare uses the llamacpp protocol");
    if (a.ppl_file.empty() && a.hellaswag.empty())
      return Status::error("eval: --compare needs --ppl FILE and/or --hellaswag FILE");
  } else {
    if (a.model.model.empty()) return Status::error("eval: give a model (-m FILE) or --compare MODELS");
    if (!a.report.empty() || !a.notes.empty()) return Status::error("eval: --report and --note need --compare");
    if (int(!a.kld_base.empty()) + int(!a.logits.empty()) + int(!a.save_logits.empty()) > 1)
      return Status::error("eval: --kld, --logits and --save-logits exclude each other");
    if (!a.kld_text.empty() && !kld_any)
      return Status::error("eval: --kld-text needs --kld, --logits or --save-logits");
    if (kld_any && a.kld_text.empty() && a.ppl_file.empty())
      return Status::error("eval: KL divergence needs a text: --kld-text FILE or --ppl FILE");
    if (kld_any && a.protocol != "llamacpp")
      return Status::error("eval: KL divergence uses the llamacpp protocol (drop --protocol full)");
    if (!kld_any && a.ppl_file.empty() && a.hellaswag.empty())
      return Status::error("eval: nothing to evaluate: give --ppl, --kld, --logits, --save-logits or --hellaswag");
  }
  if (a.tasks >= 0 && a.hellaswag.empty()) return Status::error("eval: --tasks needs --hellaswag FILE");
  return Status::ok();
}

void print_ppl(const eval::PerplexityResult& r, int64_t ctx, const std::string& protocol) {
  std::printf("perplexity %.4f (nll %.5f +/- %.5f nats/token) over %lld tokens in %lld chunks of %lld, "
              "protocol %s, %.1f s\n",
              r.perplexity, r.nll, r.nll_stderr, (long long)r.tokens, (long long)r.chunks,
              (long long)ctx, protocol.c_str(), r.seconds);
}

void print_kld(const eval::KldResult& k, const std::string& base) {
  std::printf("KL divergence from %s over %lld positions (%lld chunks):\n", base.c_str(),
              (long long)k.positions, (long long)k.chunks);
  std::printf("  mean %.6f +/- %.6f, median %.6f, p99 %.6f, max %.6f nats\n", k.kld_mean,
              k.kld_stderr, k.kld_median, k.kld_p99, k.kld_max);
  std::printf("  top-1 agreement %.2f%% +/- %.2f%%, RMS delta-p %.3f%%\n", k.top1_percent,
              k.top1_stderr, 100 * k.delta_p_rms);
  std::printf("  perplexity base %.4f, model %.4f (%+.2f%%), %.1f s\n", k.base.perplexity,
              k.test.perplexity, 100 * (k.test.perplexity / k.base.perplexity - 1), k.seconds);
}

int run(const EvalArgs& a) {
  if (Status st = check_flags(a); !st.is_ok()) return fail(st);
  ThreadPool pool(a.model.thread_count(), a.model.pin_cpus());
  if (!a.compare.empty()) {
    eval::CompareOptions o;
    o.ppl_file = a.ppl_file;
    o.hellaswag_file = a.hellaswag;
    o.hellaswag_tasks = a.tasks;
    o.n_ctx = a.model.ctx;
    o.max_chunks = a.chunks;
    o.kv_type = a.model.kv_type;
    o.tokenizer_path = a.model.tokenizer;
    o.notes = a.notes;
    return run_eval_compare(a.compare, o, a.report, a.json, pool);
  }
  // Read every input before the first long computation, so a typo fails at once.
  std::string ppl_text, kld_text, hs_text;
  const std::string kld_file = a.kld_text.empty() ? a.ppl_file : a.kld_text;
  const bool kld_any = !a.kld_base.empty() || !a.logits.empty() || !a.save_logits.empty();
  const std::pair<const std::string*, std::string*> inputs[] = {
      {&a.ppl_file, &ppl_text},
      {kld_any && kld_file != a.ppl_file ? &kld_file : nullptr, &kld_text},
      {&a.hellaswag, &hs_text}};
  for (auto [path, out] : inputs) {
    if (!path || path->empty()) continue;
    auto t = read_text_file(*path);
    if (!t.ok()) return fail(t.status());
    *out = std::move(*t);
  }
  if (kld_any && kld_file == a.ppl_file) kld_text = ppl_text;
  std::vector<eval::HellaswagTask> tasks;
  if (!a.hellaswag.empty()) {
    auto t = eval::parse_hellaswag(hs_text, a.hellaswag);
    if (!t.ok()) return fail(t.status());
    tasks = std::move(*t);
  }
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  const model::Model& m = *loaded->model;
  const tokenizer::Tokenizer& tok = *loaded->tokenizer;
  nlohmann::json j = {{"model", a.model.model}, {"ctx", a.model.ctx}, {"threads", pool.size()}};

  eval::KldOptions ko;
  ko.n_ctx = a.model.ctx;
  ko.max_chunks = a.chunks;
  ko.kv_type = a.model.kv_type;
  // The KLD pass scores exactly perplexity()'s positions, so on the same text it gives the
  // perplexity too and a second pass is not needed.
  std::optional<eval::PerplexityResult> ppl;
  const bool reuse = kld_any && !a.ppl_file.empty() && kld_file == a.ppl_file && a.protocol == "llamacpp";
  if (!a.save_logits.empty()) {
    auto s = eval::save_logits(m, tok, kld_text, a.save_logits, ko, pool, progress_line("ppl"));
    if (!s.ok()) return fail(s.status().with_context(kld_file));
    if (reuse) ppl = s->ppl;
    j["save_logits"] = {{"path", a.save_logits}, {"file", kld_file}, {"bytes", s->file_bytes},
                        {"chunks", s->ppl.chunks}, {"positions", s->ppl.tokens},
                        {"perplexity", s->ppl.perplexity}};
    if (!a.json)
      std::printf("saved the log-probabilities of %lld positions (%lld chunks) to %s (%.1f MiB), "
                  "perplexity %.4f\n", (long long)s->ppl.tokens, (long long)s->ppl.chunks,
                  a.save_logits.c_str(), double(s->file_bytes) / (1 << 20), s->ppl.perplexity);
  }
  if (!a.kld_base.empty() || !a.logits.empty()) {
    std::unique_ptr<model::Model> base_model;
    if (!a.kld_base.empty()) {
      auto b = model::Model::load(a.kld_base, a.model.tokenizer);
      if (!b.ok()) return fail(b.status());
      base_model = std::move(*b);
    }
    auto k = base_model ? eval::kl_divergence(*base_model, m, tok, kld_text, ko, pool, progress_line("KLD"))
                        : eval::kl_divergence(a.logits, m, tok, kld_text, ko, pool, progress_line("KLD"));
    if (!k.ok()) return fail(k.status().with_context(kld_file));
    if (reuse) ppl = k->test;
    const std::string base = a.kld_base.empty() ? a.logits : a.kld_base;
    j["kld"] = eval::kld_json(*k);
    j["kld"]["base"] = base;
    j["kld"]["base_kind"] = a.kld_base.empty() ? "logits" : "model";
    j["kld"]["file"] = kld_file;
    if (!a.json) print_kld(*k, base);
  }
  if (!a.ppl_file.empty()) {
    if (!ppl) {
      eval::PerplexityOptions po;
      po.n_ctx = a.model.ctx;
      po.kv_type = a.model.kv_type;
      po.protocol = a.protocol == "full" ? eval::PplProtocol::kFull : eval::PplProtocol::kLlamaCpp;
      po.max_chunks = a.chunks;
      auto r = eval::perplexity(m, tok, ppl_text, po, pool, progress_line("ppl"));
      if (!r.ok()) return fail(r.status().with_context(a.ppl_file));
      ppl = *r;
    }
    j["ppl"] = eval::perplexity_json(*ppl);
    j["ppl"]["file"] = a.ppl_file;
    j["ppl"]["protocol"] = a.protocol;
    if (!a.json) print_ppl(*ppl, a.model.ctx, a.protocol);
  }
  if (!tasks.empty()) {
    eval::HellaswagOptions ho;
    ho.max_tasks = a.tasks;
    ho.kv_type = a.model.kv_type;
    auto h = eval::hellaswag(m, tok, tasks, ho, pool, progress_line("acc_norm"));
    if (!h.ok()) return fail(h.status());
    j["hellaswag"] = eval::hellaswag_json(*h);
    j["hellaswag"]["file"] = a.hellaswag;
    if (!a.json)
      std::printf("hellaswag %lld tasks: acc %.2f%% +/- %.2f%%, acc_norm %.2f%% +/- %.2f%%, %.1f s\n",
                  (long long)h->tasks, 100 * h->acc, 100 * h->acc_stderr, 100 * h->acc_norm,
                  100 * h->acc_norm_stderr, h->seconds);
  }
  if (a.json) std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace

void register_eval(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<EvalArgs>();
  a->model.ctx = 512;
  CLI::App* cmd = app.add_subcommand(
      "eval", "evaluate a model: perplexity, KL divergence from a base model, HellaSwag; --compare: a report");
  a->model.add(cmd);
  cmd->get_option("--model")->required(false);
  cmd->add_option("--ppl", a->ppl_file, "text file to measure perplexity on");
  cmd->add_option("--protocol", a->protocol,
                  "llamacpp: chunks of ctx starting with BOS, second half scored; full: every token scored")
      ->check(CLI::IsMember({"llamacpp", "full"}));
  cmd->add_option("--chunks", a->chunks, "evaluate at most this many chunks (-1: all)");
  cmd->add_option("--kld", a->kld_base, "KL divergence of -m from this base model");
  cmd->add_option("--kld-text", a->kld_text, "text for the KL divergence (default: the --ppl file)");
  cmd->add_option("--save-logits", a->save_logits,
                  "write -m's log-probabilities on the KLD text to this file (a base for --logits)");
  cmd->add_option("--logits", a->logits, "KL divergence of -m from logits saved with --save-logits");
  cmd->add_option("--hellaswag", a->hellaswag, "HellaSwag accuracy on this file (6 lines per task)");
  cmd->add_option("--tasks", a->tasks, "evaluate the first N HellaSwag tasks (default: all)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--compare", a->compare, "compare these models, the first one the base (a report)")
      ->expected(1, -1);
  cmd->add_option("--report", a->report, "with --compare: also write PREFIX.md and PREFIX.json");
  cmd->add_option("--note", a->notes, "with --compare: a note under the table (repeatable)")
      ->allow_extra_args(false);  // one note per --note: `--note x MODEL` must not eat MODEL
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
