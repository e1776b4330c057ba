// edgeglm quantize: a model -> a quantized GGUF under a scheme (fixed, or a mixed-precision plan
// under a size budget), with optional calibration; prints what it did and, with --report, the
// before/after table.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "common.h"
#include "compress/calibration.h"
#include "compress/mixed_plan.h"
#include "compress/pad_ffn.h"
#include "compress/quantize_model.h"
#include "compress/smoothing.h"
#include "core/mapped_file.h"
#include "quant/blocks.h"
#include "quant/scheme.h"

namespace edgeglm::cli {
namespace {

struct QuantizeArgs {
  ModelArgs model;  // model.model is IN
  std::string out;
  std::string scheme;
  std::string calib;
  int64_t calib_tokens = 8192;
  int64_t calib_ctx = 512;
  std::vector<std::string> keep;
  double target_bpw = 0;
  double target_mib = 0;
  int64_t sensitivity_tokens = 256;
  double smooth = -1;  // < 0: 0.5 for the int8 schemes with --calib, else off
  bool plan_only = false;
  bool list = false;
  // --report: the before/after table (eval --compare IN OUT).
  bool report = false;
  std::string report_out;  // PREFIX for .md/.json; default: OUT without .gguf + ".report"
  std::string eval_ppl, eval_hellaswag;
  int64_t eval_tasks = 400, eval_chunks = 20;
  std::vector<std::string> notes;
};

// One line on stderr redrawn in place: "label [=====>     ] 12/30 detail".
// Redrawn at most every 100 ms (and at the end), so a log file gets a few lines, not thousands.
void progress_bar(const char* label, int64_t done, int64_t total, const std::string& detail) {
  using clock = std::chrono::steady_clock;
  static clock::time_point last;
  const clock::time_point now = clock::now();
  if (done < total && now - last < std::chrono::milliseconds(100)) return;
  last = now;
  constexpr int kWidth = 30;
  const int fill = total > 0 ? int(kWidth * done / total) : kWidth;
  std::string bar(size_t(fill), '=');
  if (fill < kWidth) bar += '>';
  bar.resize(kWidth, ' ');
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %-40.40s", label, bar.c_str(), (long long)done,
               (long long)total, detail.c_str());
  if (done >= total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void print_schemes() {
  std::printf("%-16s %8s  %s\n", "scheme", "bits/w", "description");
  for (const quant::Scheme& s : quant::schemes()) {
    // Bits per weight of a 4096-column matrix in the scheme's format (row headers included).
    const double bpw = s.kind == quant::SchemeKind::kMixed ? 0 : quant::type_bits_per_weight(s.type, 4096);
    if (bpw > 0)
      std::printf("%-16s %8.3f  %s\n", s.name, bpw, s.description);
    else
      std::printf("%-16s %8s  %s\n", s.name, "budget", s.description);
  }
}

void print_plan(const std::vector<compress::TensorChoice>& plan, const compress::MixedPlan* mixed) {
  std::map<std::string, const compress::TensorPlan*> by_name;
  if (mixed)
    for (const auto& t : mixed->tensors) by_name[t.name] = &t;
  std::printf("%-32s %-14s %-7s %-8s %10s%s\n", "tensor", "shape", "from", "to", "bytes",
              mixed ? "   kld(probe)  kld(pred)" : "");
  for (const auto& c : plan) {
    const std::string shape = "[" + std::to_string(c.cols) + ", " + std::to_string(c.rows) + "]";
    std::printf("%-32s %-14s %-7s %-8s %10llu", c.name.c_str(), shape.c_str(), dtype_name(c.from),
                dtype_name(c.to), (unsigned long long)c.bytes);
    auto it = by_name.find(c.name);
    if (it != by_name.end())
      std::printf("   %10.3e  %10.3e", it->second->measured_kld, it->second->predicted_kld.at(c.to));
    std::printf("\n");
  }
}

int run(const QuantizeArgs& a) {
  if (a.list) {
    print_schemes();
    return 0;
  }
  if (a.model.model.empty()) return fail(Status::error("quantize: no input model (edgeglm quantize IN -o OUT --scheme S)"));
  if (a.scheme.empty()) return fail(Status::error("quantize: --scheme is required (see --list)"));
  auto scheme = quant::find_scheme(a.scheme);
  if (!scheme.ok()) return fail(scheme.status());
  const quant::Scheme& s = **scheme;
  const bool mixed = s.kind == quant::SchemeKind::kMixed;
  if (mixed && !(a.target_bpw > 0) && !(a.target_mib > 0))
    return fail(Status::error("scheme mixed needs --target-bpw B or --target-size MB"));
  if (!mixed && (a.target_bpw > 0 || a.target_mib > 0))
    return fail(Status::error("--target-bpw / --target-size need --scheme mixed"));
  if (mixed && a.calib.empty())
    return fail(Status::error("scheme mixed needs --calib FILE: tensor sensitivity is measured on it"));
  if (!a.plan_only) {
    if (a.out.empty()) return fail(Status::error("quantize: -o OUT.gguf is required"));
    if (Status st = compress::check_output_path(a.model.model, a.out); !st.is_ok()) return fail(st);
  }
  std::string report_prefix = a.report_out;
  if (a.report && report_prefix.empty()) {
    report_prefix = a.out;
    if (report_prefix.size() > 5 && report_prefix.ends_with(".gguf")) report_prefix.resize(report_prefix.size() - 5);
    report_prefix += ".report";
  }
  if (a.report && !a.plan_only)
    if (Status st = eval::check_report_prefix(report_prefix); !st.is_ok()) return fail(st);
  compress::QuantizeOptions qo;
  qo.scheme = &s;
  for (const std::string& k : a.keep) {
    auto r = compress::parse_keep_rule(k);
    if (!r.ok()) return fail(r.status());
    qo.keep.push_back(std::move(r).value());
  }
  std::string calib_text;
  if (!a.calib.empty()) {
    auto t = read_text_file(a.calib);
    if (!t.ok()) return fail(t.status());
    if (Status st = compress::check_calibration_text(*t, a.calib); !st.is_ok()) return fail(st);
    calib_text = std::move(t).value();
  }
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  const model::Model* mp_model = loaded->model.get();
  ThreadPool pool(a.model.thread_count(), a.model.pin_cpus());
  // The W8A8 schemes quantize every matrix product: an FFN whose width is no multiple of the
  // 32-element blocks is padded with zero channels (exact) rather than leaving ffn_down in F16.
  // They are also the schemes smoothed by default (below).
  const bool w8a8 = s.type == DType::I8_ROW || s.type == DType::U8_ROW;
  std::unique_ptr<model::Model> padded_model;
  if (w8a8 && mp_model->config().n_ff % quant::kQKRow != 0) {
    auto p = compress::pad_ffn(mp_model->file(), mp_model->config(), quant::kQKRow);
    if (!p.ok()) {
      std::fprintf(stderr, "note: FFN not padded: %s\n", p.status().message().c_str());
    } else if (p->file) {
      auto m = model::Model::from_file(std::move(p->file));
      if (!m.ok()) return fail(m.status());
      padded_model = std::move(m).value();
      mp_model = padded_model.get();
      std::fprintf(stderr,
                   "padded the FFN from %lld to %lld channels with zeros (the same function; %s rows are whole "
                   "%d-element blocks), so every matrix product is %s\n",
                   (long long)p->from, (long long)p->to, dtype_name(s.type), quant::kQKRow, dtype_name(s.type));
    }
  }

  compress::MixedOptions mo;
  mo.target_bpw = a.target_bpw;
  mo.target_mib = a.target_mib;
  mo.sensitivity_tokens = a.sensitivity_tokens;
  if (mixed)
    if (Status st = compress::check_mixed_budget(mp_model->file(), mo); !st.is_ok()) return fail(st);

  compress::Calibration calib;
  std::unique_ptr<model::Model> smoothed_model;  // the input with smoothing folded in
  if (a.smooth > 0 && calib_text.empty()) return fail(Status::error("--smooth needs --calib FILE"));
  if (a.smooth > 0 && !s.calibrated_rounding)
    return fail(Status::error(std::string("--smooth applies to integer schemes, not ") + s.name));
  if (!calib_text.empty() && s.calibrated_rounding) {
    compress::CalibrationOptions copt;
    copt.max_tokens = a.calib_tokens;
    copt.n_ctx = a.calib_ctx;
    auto c = compress::collect_calibration(*mp_model, *loaded->tokenizer, calib_text, a.calib, copt, pool,
                                           [](int64_t d, int64_t n) { progress_bar("calibrating", d, n, "tokens"); });
    if (!c.ok()) return fail(c.status());
    calib = std::move(c).value();
    qo.calib = &calib;
    std::fprintf(stderr, "calibration: %lld tokens of %s\n", (long long)calib.tokens, a.calib.c_str());
    const double alpha = a.smooth >= 0 ? a.smooth : (w8a8 ? 0.5 : 0.0);
    if (alpha > 0) {
      compress::SmoothOptions so;
      so.alpha = alpha;
      auto sm = compress::smooth_model(mp_model->file(), mp_model->config(), calib, so);
      if (!sm.ok()) return fail(sm.status());
      const int sites = sm->sites;
      auto smoothed = model::Model::from_file(std::move(sm->file));
      if (!smoothed.ok()) return fail(smoothed.status());
      smoothed_model = std::move(smoothed).value();
      mp_model = smoothed_model.get();
      std::fprintf(stderr, "smoothing: %d activation sites, strength %.2f\n", sites, alpha);
    }
  } else if (s.kind != quant::SchemeKind::kFloat) {
    std::fprintf(stderr, "no --calib: plain round-to-nearest rounding%s\n",
                 s.calibrated_rounding ? " (give --calib FILE for calibrated, error-compensating rounding)" : "");
  }

  compress::MixedPlan mp;
  if (mixed) {
    auto p = compress::plan_mixed(*mp_model, *loaded->tokenizer, calib_text, qo.calib, mo, pool,
                                  [](int64_t d, int64_t n) { progress_bar("sensitivity", d, n, "tensors"); });
    if (!p.ok()) return fail(p.status());
    mp = std::move(p).value();
    qo.plan = mp.types;
    std::fprintf(stderr, "mixed plan: %.3f bits/weight, %.1f MiB of tensors, predicted KLD %.4g (%.1f s)\n",
                 mp.bits_per_weight, double(mp.planned_bytes) / (1 << 20), mp.predicted_kld, mp.seconds);
  }
  const model::Model& m = *mp_model;
  auto plan = compress::plan_tensors(m.file(), m.config(), qo);
  if (!plan.ok()) return fail(plan.status());
  for (const std::string& note : compress::fallback_notes(*plan)) std::fprintf(stderr, "note: %s\n", note.c_str());
  if (a.plan_only) {
    print_plan(*plan, mixed ? &mp : nullptr);
    return 0;
  }
  auto r = compress::quantize_model(m, a.out, qo, pool, [](size_t i, size_t n, const std::string& name) {
    progress_bar("quantizing", int64_t(i), int64_t(n), name);
  });
  if (!r.ok()) return fail(r.status());
  std::map<std::string, int> counts;
  for (const auto& c : r->tensors) counts[dtype_name(c.to)]++;
  std::string mix;
  for (const auto& [name, n] : counts) mix += (mix.empty() ? "" : ", ") + std::to_string(n) + " " + name;
  std::printf("wrote %s: scheme %s, %s rounding; %.2f MiB -> %.2f MiB, %.3f bits/weight; tensors: %s; %.1f s\n",
              a.out.c_str(), s.name, r->method == "gptq" ? "calibrated (GPTQ)" : "round-to-nearest",
              double(r->in_bytes) / (1 << 20), double(r->out_bytes) / (1 << 20), r->bits_per_weight,
              mix.c_str(), r->seconds);
  if (!a.report) return 0;
  std::fflush(stdout);
  eval::CompareOptions co;
  co.ppl_file = a.eval_ppl;
  co.hellaswag_file = a.eval_hellaswag;
  co.hellaswag_tasks = a.eval_tasks;
  co.max_chunks = a.eval_chunks;
  co.tokenizer_path = a.model.tokenizer;
  co.notes = a.notes;
  co.notes.push_back(std::string("quantized with --scheme ") + s.name +
                     (qo.calib ? ", calibrated on " + a.calib + " (" + std::to_string(calib.tokens) + " tokens)"
                               : ", plain rounding (no --calib)"));
  if (a.eval_ppl.empty()) co.notes.push_back("no --eval-ppl FILE: perplexity and KL divergence not measured");
  return run_eval_compare({a.model.model, a.out}, co, report_prefix, false, pool);
}

}  // namespace

void register_quantize(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand("quantize", "quantize a model: int8 / asymmetric / int4 groups / GGUF types / mixed plan");
  cmd->add_option("input", a->model.model, "model to quantize (.gguf, Hugging Face directory, llama2.c .bin)");
  cmd->add_option("-o,--output", a->out, "output .gguf (never the input)");
  cmd->add_option("--scheme", a->scheme, "quantization scheme (--list shows them)");
  cmd->add_option("--calib", a->calib, "calibration text: activation statistics for calibrated rounding and mixed plans");
  cmd->add_option("--calib-tokens", a->calib_tokens, "calibration tokens to run (default 8192)")->check(CLI::Range(int64_t(16), int64_t(1) << 24));
  cmd->add_option("--calib-ctx", a->calib_ctx, "tokens per calibration chunk (default 512)")->check(CLI::Range(int64_t(16), int64_t(1) << 16));
  cmd->add_option("--keep", a->keep, "REGEX=TYPE: tensors matching REGEX get TYPE (repeatable; first match wins)");
  cmd->add_option("--target-bpw", a->target_bpw, "mixed: bits per weight over all tensors")->check(CLI::Range(1.0, 32.0));
  cmd->add_option("--target-size", a->target_mib, "mixed: output size in MiB")->check(CLI::Range(0.001, 1e9));
  cmd->add_option("--sensitivity-tokens", a->sensitivity_tokens, "mixed: calibration tokens per sensitivity run (default 256)")
      ->check(CLI::Range(int64_t(16), int64_t(1) << 16));
  cmd->add_option("--smooth", a->smooth,
                  "with --calib: move activation outliers into the weights (SmoothQuant strength 0..1; "
                  "default 0.5 for int8 / uint8-asym, 0 = off for the others)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--plan-only", a->plan_only, "print the per-tensor plan and write nothing");
  cmd->add_flag("--list", a->list, "list the schemes with their bits per weight");
  cmd->add_flag("--report", a->report, "after writing, evaluate input and output: the before/after table (markdown + JSON)");
  cmd->add_option("--report-out", a->report_out, "report PREFIX (.md, .json); default OUT without .gguf + .report");
  cmd->add_option("--eval-ppl", a->eval_ppl, "report: text for perplexity and KL divergence");
  cmd->add_option("--eval-hellaswag", a->eval_hellaswag, "report: HellaSwag file (6 lines per task)");
  cmd->add_option("--eval-tasks", a->eval_tasks, "report: HellaSwag tasks (default 400)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--eval-chunks", a->eval_chunks, "report: perplexity chunks of 512 tokens (default 20)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--note", a->notes, "report: a note under the table (repeatable)");
  cmd->add_option("--tokenizer", a->model.tokenizer, "llama2.c tokenizer.bin (for a .bin input)");
  a->model.add_thread_options(cmd);
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
