#include "eval/report.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/mapped_file.h"
#include "core/sys_info.h"
#include "kernels/isa.h"

namespace edgeglm::eval {
namespace {

namespace fs = std::filesystem;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

double mib(uint64_t b) { return double(b) / (1 << 20); }

// Removes the base's logits file however compare_models returns.
struct RemoveOnExit {
  std::string path;
  ~RemoveOnExit() {
    if (!path.empty()) {
      std::error_code ec;
      fs::remove(path, ec);
    }
  }
};

std::string temp_logits_path(const std::string& work_dir) {
  static std::atomic<int> counter{0};
  std::error_code ec;
  const fs::path dir = work_dir.empty() ? fs::temp_directory_path(ec) : fs::path(work_dir);
  return (dir / ("edgeglm_compare_" + std::to_string(::getpid()) + "_" +
                 std::to_string(counter++) + ".logits"))
      .string();
}

void fill_sizes(const model::Model& m, ModelReport& r) {
  const formats::ModelFile& f = m.file();
  r.file_bytes = f.file_bytes;
  r.n_params = m.n_params();
  for (const formats::TensorInfo& t : f.tensors)
    if (t.shape.size() == 2) {
      r.matrix_params += t.nelements();
      r.matrix_bytes += t.nbytes;
    }
  r.bits_per_weight = r.n_params > 0 ? 8.0 * double(r.file_bytes) / double(r.n_params) : 0;
  r.matrix_bits_per_weight =
      r.matrix_params > 0 ? 8.0 * double(r.matrix_bytes) / double(r.matrix_params) : 0;
}

Status write_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::error(tmp + ": cannot create: " + std::strerror(errno));
  if (std::fwrite(content.data(), 1, content.size(), f) != content.size() || std::fflush(f) != 0 ||
      ::fsync(fileno(f)) != 0) {
    const int err = errno;
    std::fclose(f);
    std::remove(tmp.c_str());
    return Status::error(tmp + ": cannot write: " + std::strerror(err));
  }
  if (std::fclose(f) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return Status::error(tmp + ": cannot write: " + std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return Status::error(path + ": cannot rename " + tmp + " into place: " + std::strerror(e));
  }
  return Status::ok();
}

Result<ModelReport> evaluate_one(const std::string& path, size_t index, size_t n_models,
                                 const std::string& base_logits, const std::string* text,
                                 const std::vector<HellaswagTask>* tasks, const CompareOptions& o,
                                 ThreadPool& pool, const CompareProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  ModelReport r;
  r.path = path;
  r.name = fs::path(path).filename().string();
  if (r.name.empty()) r.name = path;  // a directory given with a trailing slash
  r.peak_rss_per_model = reset_peak_rss();
  auto say = [&](const std::string& what) {
    if (progress) progress(index, n_models, what);
  };
  say("loading");
  EG_ASSIGN_OR_RETURN(auto model, model::Model::load(path, o.tokenizer_path));
  EG_ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::from_metadata(model->file().meta));
  fill_sizes(*model, r);

  if (text) {
    KldOptions ko;
    ko.n_ctx = o.n_ctx;
    ko.max_chunks = o.max_chunks;
    ko.kv_type = o.kv_type;
    if (index == 0) {
      EG_ASSIGN_OR_RETURN(SaveLogitsResult s,
                          save_logits(*model, *tok, *text, base_logits, ko, pool,
                                      [&](int64_t d, int64_t n, double) {
                                        say("perplexity " + std::to_string(d) + "/" + std::to_string(n));
                                      }));
      r.ppl = s.ppl;
    } else {
      EG_ASSIGN_OR_RETURN(KldResult k,
                          kl_divergence(base_logits, *model, *tok, *text, ko, pool,
                                        [&](int64_t d, int64_t n, double) {
                                          say("perplexity + KLD " + std::to_string(d) + "/" +
                                              std::to_string(n));
                                        }));
      r.ppl = k.test;
      r.kld = k;
    }
  }
  if (tasks) {
    HellaswagOptions ho;
    ho.max_tasks = o.hellaswag_tasks;
    ho.kv_type = o.kv_type;
    EG_ASSIGN_OR_RETURN(HellaswagResult h,
                        hellaswag(*model, *tok, *tasks, ho, pool, [&](int64_t d, int64_t n, double) {
                          if (d % 10 == 0 || d == n)
                            say("hellaswag " + std::to_string(d) + "/" + std::to_string(n));
                        }));
    h.scores.clear();
    r.hellaswag = h;
  }
  if (o.bench) {
    say("speed");
    BenchOptions bo = o.bench_options;
    bo.kv_type = o.kv_type;
    EG_ASSIGN_OR_RETURN(BenchResult b, run_bench(*model, r.name, bo, pool));
    if (!b.prefill.empty()) r.prefill_tok_per_s = b.prefill[0].tok_per_s.mean;
    if (!b.decode.empty()) r.decode_tok_per_s = b.decode[0].tok_per_s.mean;
  }
  r.peak_rss_bytes = peak_rss_bytes();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace

bool reset_peak_rss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool wrote = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && wrote;
}

Result<CompareReport> compare_models(const std::vector<std::string>& paths,
                                     const CompareOptions& opts, ThreadPool& pool,
                                     const CompareProgress& progress) {
  if (paths.empty()) return Status::error("compare: no models given");
  // Check every input before the first (possibly hour-long) evaluation.
  for (const std::string& p : paths) {
    std::error_code ec;
    if (!fs::exists(p, ec)) return Status::error("compare: " + p + ": no such file or directory");
  }
  if (opts.bench) EG_TRY(validate_bench_options(opts.bench_options).with_context("compare"));
  std::optional<std::string> text;
  if (!opts.ppl_file.empty()) {
    EG_ASSIGN_OR_RETURN(text, read_text_file(opts.ppl_file));
  }
  std::optional<std::vector<HellaswagTask>> tasks;
  if (!opts.hellaswag_file.empty()) {
    EG_ASSIGN_OR_RETURN(std::string hs, read_text_file(opts.hellaswag_file));
    EG_ASSIGN_OR_RETURN(tasks, parse_hellaswag(hs, opts.hellaswag_file));
  }
  if (opts.bench && opts.bench_options.prompt_lengths.size() + opts.bench_options.gen_lengths.size() == 0)
    return Status::error("compare: no speed test configured");

  CompareReport rep;
  rep.options = opts;
  rep.threads = pool.size();
  rep.isa = kernels::active_isa().name;
  RemoveOnExit logits{text ? temp_logits_path(opts.work_dir) : std::string()};
  for (size_t i = 0; i < paths.size(); ++i) {
    auto r = evaluate_one(paths[i], i, paths.size(), logits.path, text ? &*text : nullptr,
                          tasks ? &*tasks : nullptr, opts, pool, progress);
    if (!r.ok()) return r.status().with_context("compare: " + paths[i]);
    rep.models.push_back(std::move(r).value());
  }
  return rep;
}

std::optional<double> ppl_delta_percent(const CompareReport& r, size_t i) {
  if (i >= r.models.size() || !r.models[0].ppl || !r.models[i].ppl) return std::nullopt;
  return 100.0 * (r.models[i].ppl->perplexity / r.models[0].ppl->perplexity - 1.0);
}

std::string report_markdown(const CompareReport& r) {
  const CompareOptions& o = r.options;
  const bool has_ppl = !o.ppl_file.empty(), has_hs = !o.hellaswag_file.empty(), has_bench = o.bench;
  std::string pp = "pp", tg = "tg";
  if (has_bench) {
    pp += o.bench_options.prompt_lengths.empty() ? "-" : std::to_string(o.bench_options.prompt_lengths[0]);
    tg += o.bench_options.gen_lengths.empty() ? "-" : std::to_string(o.bench_options.gen_lengths[0]);
  }
  std::string head = "| model | size (MiB) | bpw | bpw (2-D) |";
  std::string rule = "| :---- | ---------: | --: | --------: |";
  if (has_ppl) {
    head += " PPL | ΔPPL | mean KLD | top-1 |";
    rule += " --: | ---: | -------: | ----: |";
  }
  if (has_hs) {
    head += " HellaSwag acc | acc_norm |";
    rule += " ------------: | -------: |";
  }
  if (has_bench) {
    head += " " + pp + " t/s | " + tg + " t/s |";
    rule += " --: | --: |";
  }
  head += " peak RSS (MiB) |\n";
  rule += " -------------: |\n";
  std::string s = head + rule;
  for (size_t i = 0; i < r.models.size(); ++i) {
    const ModelReport& m = r.models[i];
    s += "| " + m.name + (i == 0 ? " (base)" : "") + " | " + fmt("%.2f", mib(m.file_bytes)) + " | " +
         fmt("%.2f", m.bits_per_weight) + " | " + fmt("%.2f", m.matrix_bits_per_weight) + " |";
    if (has_ppl) {
      const auto d = ppl_delta_percent(r, i);
      s += m.ppl ? " " + fmt("%.4f", m.ppl->perplexity) + " ± " +
                       fmt("%.4f", m.ppl->perplexity * m.ppl->nll_stderr) + " |"
                 : " - |";
      s += i > 0 && d ? " " + fmt("%+.2f%%", *d) + " |" : " - |";
      s += m.kld ? " " + fmt("%.5f", m.kld->kld_mean) + " ± " + fmt("%.5f", m.kld->kld_stderr) +
                       " | " + fmt("%.2f%%", m.kld->top1_percent) + " |"
                 : " - | - |";
    }
    if (has_hs)
      s += m.hellaswag ? " " + fmt("%.2f%%", 100 * m.hellaswag->acc) + " ± " +
                             fmt("%.2f", 100 * m.hellaswag->acc_stderr) + " | " +
                             fmt("%.2f%%", 100 * m.hellaswag->acc_norm) + " ± " +
                             fmt("%.2f", 100 * m.hellaswag->acc_norm_stderr) + " |"
                       : " - | - |";
    if (has_bench)
      s += (m.prefill_tok_per_s ? " " + fmt("%.1f", *m.prefill_tok_per_s) : std::string(" -")) +
           " |" + (m.decode_tok_per_s ? " " + fmt("%.1f", *m.decode_tok_per_s) : std::string(" -")) +
           " |";
    s += " " + fmt("%.1f", mib(m.peak_rss_bytes)) + (m.peak_rss_per_model ? "" : "*") + " |\n";
  }
  s += "\n";
  if (has_ppl) {
    const ModelReport* m = r.models.empty() || !r.models[0].ppl ? nullptr : &r.models[0];
    s += "PPL, KLD: `" + fs::path(o.ppl_file).filename().string() + "`, ctx " +
         std::to_string(o.n_ctx) +
         (m ? ", " + std::to_string(m->ppl->chunks) + " chunks, " + std::to_string(m->ppl->tokens) +
                  " scored positions"
            : std::string()) +
         " (llama.cpp protocol); KLD = KL(base || model), top-1 = same most likely token as the base.\n";
  }
  if (has_hs) {
    const ModelReport* m = r.models.empty() || !r.models[0].hellaswag ? nullptr : &r.models[0];
    s += "HellaSwag: `" + fs::path(o.hellaswag_file).filename().string() + "`" +
         (m ? ", " + std::to_string(m->hellaswag->tasks) + " tasks" : std::string()) +
         "; acc_norm divides by the ending's token count.\n";
  }
  if (has_bench)
    s += "Speed: " + pp + " / " + tg + ", " + std::to_string(o.bench_options.reps) +
         " repetitions after a warm-up, ";
  else
    s += "Run: ";
  s += std::to_string(r.threads) + " threads, kernels " + r.isa + ".\n";
  bool all_own = true;
  for (const ModelReport& m : r.models) all_own = all_own && m.peak_rss_per_model;
  s += all_own ? "Peak RSS: of each model's evaluation (high-water mark reset between models).\n"
               : "Peak RSS: * = the process's peak so far (the high-water mark could not be reset).\n";
  for (const std::string& n : o.notes) s += "\n- " + n;
  if (!o.notes.empty()) s += "\n";
  return s;
}

nlohmann::json report_json(const CompareReport& r) {
  const CompareOptions& o = r.options;
  nlohmann::json setup = {{"ppl_file", o.ppl_file.empty() ? nlohmann::json() : nlohmann::json(o.ppl_file)},
                          {"hellaswag_file", o.hellaswag_file.empty() ? nlohmann::json()
                                                                      : nlohmann::json(o.hellaswag_file)},
                          {"hellaswag_tasks", o.hellaswag_tasks},
                          {"ctx", o.n_ctx},
                          {"chunks", o.max_chunks},
                          {"kv_type", dtype_name(o.kv_type)},
                          {"threads", r.threads},
                          {"isa", r.isa}};
  if (o.bench)
    setup["bench"] = {{"prompt_lengths", o.bench_options.prompt_lengths},
                      {"gen_lengths", o.bench_options.gen_lengths},
                      {"reps", o.bench_options.reps}};
  else
    setup["bench"] = nullptr;
  nlohmann::json models = nlohmann::json::array();
  for (size_t i = 0; i < r.models.size(); ++i) {
    const ModelReport& m = r.models[i];
    nlohmann::json j = {{"name", m.name},
                        {"path", m.path},
                        {"base", i == 0},
                        {"size_bytes", m.file_bytes},
                        {"size_mib", mib(m.file_bytes)},
                        {"params", m.n_params},
                        {"bits_per_weight", m.bits_per_weight},
                        {"matrix_params", m.matrix_params},
                        {"matrix_bytes", m.matrix_bytes},
                        {"matrix_bits_per_weight", m.matrix_bits_per_weight},
                        {"peak_rss_bytes", m.peak_rss_bytes},
                        {"peak_rss_per_model", m.peak_rss_per_model},
                        {"seconds", m.seconds}};
    j["perplexity"] = m.ppl ? perplexity_json(*m.ppl) : nlohmann::json();
    const auto d = ppl_delta_percent(r, i);
    j["ppl_delta_percent"] = i > 0 && d ? nlohmann::json(*d) : nlohmann::json();
    j["kld"] = m.kld ? kld_json(*m.kld) : nlohmann::json();
    j["hellaswag"] = m.hellaswag ? hellaswag_json(*m.hellaswag) : nlohmann::json();
    j["prefill_tok_per_s"] = m.prefill_tok_per_s ? nlohmann::json(*m.prefill_tok_per_s) : nlohmann::json();
    j["decode_tok_per_s"] = m.decode_tok_per_s ? nlohmann::json(*m.decode_tok_per_s) : nlohmann::json();
    models.push_back(std::move(j));
  }
  return {{"setup", setup}, {"models", models}, {"notes", o.notes}};
}

Status check_report_prefix(const std::string& prefix) {
  if (prefix.empty()) return Status::error("report: empty path prefix");
  for (const char* ext : {".md", ".json"}) {
    const std::string tmp = prefix + ext + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return Status::error("report: cannot create " + tmp + ": " + std::strerror(errno));
    std::fclose(f);
    std::remove(tmp.c_str());
  }
  return Status::ok();
}

Status write_report(const std::string& prefix, const CompareReport& r) {
  EG_TRY(write_atomic(prefix + ".md", report_markdown(r)));
  return write_atomic(prefix + ".json", report_json(r).dump(2) + "\n");
}

}  // namespace edgeglm::eval
