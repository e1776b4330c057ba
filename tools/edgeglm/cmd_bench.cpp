// edgeglm bench: prefill / decode speed, latency percentiles, peak RSS and the memory-bandwidth
// roofline of a model file or of a synthetic model with a real model's shape.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>

#include "common.h"
#include "core/sys_info.h"
#include "eval/bench.h"
#include "eval/membw.h"
#include "eval/report.h"
#include "eval/synthetic.h"

namespace edgeglm::cli {
namespace {

struct BenchArgs {
  ModelArgs model;
  std::string synthetic;
  std::string type = "q8_0";
  std::string cache_dir;
  bool list_shapes = false;
  std::vector<int64_t> prompts = {128, 512};
  std::vector<int64_t> gens = {64, 128};
  std::vector<int64_t> depths = {0};
  int reps = 5;
  bool json = false;
  bool md = false;
  bool no_bw = false;
  int64_t bw_mib = 0;
};

const bool kTty = ::isatty(2) != 0;

void list_shapes() {
  std::printf("%-16s %-8s %10s %7s %6s %6s %4s %6s %7s %6s  %s\n", "shape", "arch", "params",
              "layers", "embd", "heads", "kv", "ffn", "vocab", "output", "from");
  for (const eval::SyntheticShape& s : eval::synthetic_shapes()) {
    const double p = double(eval::synthetic_param_count(s));
    char params[32];
    std::snprintf(params, sizeof params, p >= 1e9 ? "%.2f B" : "%.1f M", p >= 1e9 ? p / 1e9 : p / 1e6);
    std::printf("%-16s %-8s %10s %7lld %6lld %6lld %4lld %6lld %7lld %6s  %s%s\n", s.name, s.arch,
                params, (long long)s.n_layer, (long long)s.n_embd, (long long)s.n_head,
                (long long)s.n_head_kv, (long long)s.n_ff, (long long)s.n_vocab,
                s.tied ? "tied" : "own", s.source, s.test_only ? " (test shape)" : "");
  }
  std::string types;
  for (const auto& t : eval::synthetic_type_names()) types += " " + t;
  std::printf("types:%s\n", types.c_str());
}

// One note per distinct fallback ("q4_k -> q5_0"), with how many tensors take it.
void print_fallbacks(const std::vector<std::string>& fallbacks) {
  std::map<std::string, int> counts;
  for (const std::string& f : fallbacks) {
    const size_t a = f.find(": "), b = f.find(" (");
    counts[f.substr(a + 2, b - a - 2)]++;
  }
  for (const auto& [what, n] : counts)
    std::fprintf(stderr, "note: %d tensors %s: their rows are not a multiple of the type's block "
                         "(llama.cpp falls back the same way)\n", n, what.c_str());
}

// Returns the path of the (cached or new) synthetic model.
Result<std::string> prepare_synthetic(const BenchArgs& a, ThreadPool& pool) {
  EG_ASSIGN_OR_RETURN(const eval::SyntheticShape* shape, eval::find_synthetic_shape(a.synthetic));
  EG_ASSIGN_OR_RETURN(DType type, eval::synthetic_type_from_name(a.type));
  EG_ASSIGN_OR_RETURN(std::string dir, eval::synthetic_cache_dir(a.cache_dir));
  EG_ASSIGN_OR_RETURN(eval::SyntheticPlan plan, eval::plan_synthetic_model(*shape, type));
  print_fallbacks(plan.fallbacks);
  const auto t0 = std::chrono::steady_clock::now();
  bool created = false;
  EG_ASSIGN_OR_RETURN(std::string path,
                      eval::ensure_synthetic_model(
                          *shape, type, dir, pool,
                          [&](size_t done, size_t total) {
                            if (kTty)
                              std::fprintf(stderr, "\rgenerating %s %s: tensor %zu/%zu", shape->name,
                                           a.type.c_str(), done, total);
                          },
                          1, &created));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (created)
    std::fprintf(stderr, "%swrote %s (%.1f MiB of tensors) in %.1f s\n", kTty ? "\r" : "",
                 path.c_str(), double(plan.tensor_bytes) / (1 << 20), s);
  else
    std::fprintf(stderr, "using cached %s\n", path.c_str());
  return path;
}

int run(BenchArgs a) {
  if (a.list_shapes) {
    list_shapes();
    return 0;
  }
  if (a.model.model.empty() == a.synthetic.empty())
    return fail(Status::error("bench: give a model (-m FILE) or a synthetic shape (--synthetic SHAPE), "
                              "exactly one"));
  if (a.json && a.md) return fail(Status::error("bench: --json and --md exclude each other"));
  if (a.bw_mib < 0 || a.bw_mib > (int64_t(1) << 20))
    return fail(Status::error("bench: --bw-mib " + std::to_string(a.bw_mib) +
                              " is out of range (1..1048576; 0 = automatic)"));
  eval::BenchOptions opts;
  opts.prompt_lengths.clear();
  opts.gen_lengths.clear();
  opts.reps = a.reps;
  opts.kv_type = a.model.kv_type;
  // 0 skips a kind of test (llama-bench's convention); any other value must be a valid length.
  for (int64_t p : a.prompts)
    if (p != 0) opts.prompt_lengths.push_back(p);
  for (int64_t n : a.gens)
    if (n != 0) opts.gen_lengths.push_back(n);
  opts.depths = a.depths;
  if (Status st = eval::validate_bench_options(opts); !st.is_ok()) return fail(st);
  if (!a.synthetic.empty()) {
    // Check names before any work, so a typo costs nothing.
    if (auto s = eval::find_synthetic_shape(a.synthetic); !s.ok()) return fail(s.status());
    if (auto t = eval::synthetic_type_from_name(a.type); !t.ok()) return fail(t.status());
  }

  ThreadPool pool(a.model.thread_count(), a.model.pin_cpus());
  std::string path = a.model.model, name = a.model.model;
  if (!a.synthetic.empty()) {
    auto p = prepare_synthetic(a, pool);
    if (!p.ok()) return fail(p.status());
    path = *p;
    name = a.synthetic + " " + a.type + " (synthetic)";
  }
  auto m = model::Model::load(path, a.model.tokenizer);
  if (!m.ok()) return fail(m.status());

  // The bandwidth is measured before and after the tests, and the roofline takes the best pass of
  // both: one measurement during a neighbour's burst put a decode at 112% of its roofline.
  eval::MemBandwidthOptions bo;
  bo.buffer_bytes = size_t(a.bw_mib) << 20;
  auto measure_bw = [&]() -> Result<eval::MemBandwidth> {
    if (kTty) std::fprintf(stderr, "measuring memory read bandwidth...");
    auto bw = eval::measure_read_bandwidth(pool, bo);
    if (kTty) std::fprintf(stderr, "\r%-40s\r", "");
    return bw;
  };
  // The buffer of the first measurement must not count in the reported peak RSS: the peak so far
  // (the load's) is kept, the kernel's high-water mark is reset after it, and the run's peak is
  // the larger of the two. Where it cannot be reset, only the measurement after the tests is made.
  std::optional<eval::MemBandwidth> bw_before;
  const size_t peak_before = peak_rss_bytes();
  if (!a.no_bw && eval::reset_peak_rss()) {
    auto bw = measure_bw();
    if (!bw.ok()) return fail(bw.status());
    bw_before = *bw;
    eval::reset_peak_rss();
  }
  auto r = eval::run_bench(**m, name, opts, pool, [](const std::string& test, int rep, int reps) {
    if (kTty)
      std::fprintf(stderr, "\r%-40s",
                   (test + (reps == 0  ? std::string()
                            : rep == 0 ? " warm-up"
                                       : " rep " + std::to_string(rep) + "/" + std::to_string(reps)))
                       .c_str());
  });
  if (kTty) std::fprintf(stderr, "\r%-40s\r", "");
  if (!r.ok()) return fail(r.status());
  r->peak_rss_bytes = std::max(r->peak_rss_bytes, peak_before);
  if (!a.no_bw) {
    auto bw = measure_bw();
    if (!bw.ok()) return fail(bw.status());
    eval::apply_roofline(*r, bw_before ? eval::combine(*bw_before, *bw) : *bw);
  }
  if (a.json)
    std::printf("%s\n", eval::bench_json(*r).dump(2).c_str());
  else if (a.md)
    std::printf("%s", eval::bench_markdown(*r).c_str());
  else
    std::printf("%s", eval::bench_table(*r).c_str());
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "measure prefill/decode speed, latency, peak RSS and the memory-bandwidth roofline");
  a->model.add(cmd, /*with_ctx=*/false);
  cmd->get_option("--model")->required(false);
  add_kv_type_option(cmd, a->model.kv_type);
  cmd->add_option("--synthetic", a->synthetic,
                  "bench a random-weight model with this real model's shape (see --list-shapes)");
  cmd->add_option("--type", a->type, "weight type of a synthetic model")->capture_default_str();
  cmd->add_option("--cache-dir", a->cache_dir,
                  "where synthetic models are kept (default $XDG_CACHE_HOME/edgeglm/synthetic)");
  cmd->add_flag("--list-shapes", a->list_shapes, "list the synthetic shapes and types, then exit");
  cmd->add_option("-p,--prompt", a->prompts, "prompt lengths of the prefill tests (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-n,--gen", a->gens, "token counts of the decode tests (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-d,--depth", a->depths,
                  "run every test after this many tokens already in the context (\"tg128@d1024\")")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-r,--reps", a->reps, "repetitions after one warm-up")->capture_default_str();
  cmd->add_flag("--json", a->json, "print one JSON object with every number");
  cmd->add_flag("--md", a->md, "print a markdown table");
  cmd->add_flag("--no-bw", a->no_bw, "skip the memory bandwidth measurement (no roofline)");
  cmd->add_option("--bw-mib", a->bw_mib,
                  "bandwidth buffer in MiB (default: max(4 x last-level cache, 512), at most 1/4 of "
                  "available memory)");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
