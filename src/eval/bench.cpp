#include "eval/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/sys_info.h"
#include "kernels/isa.h"

namespace edgeglm::eval {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, uint64_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint64_t s = seed;
  for (auto& id : t) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    id = int32_t((z ^ (z >> 31)) % uint64_t(n_vocab));
  }
  return t;
}

// Layer matrices' types by bytes, largest first: "q8_0", or "q5_0+q4_k" for a fallback mix.
std::string matrix_types(const formats::ModelFile& f) {
  std::map<std::string, uint64_t> bytes;
  for (const auto& t : f.tensors)
    if (t.name.rfind("blk.", 0) == 0 && t.shape.size() == 2) bytes[dtype_name(t.dtype)] += t.nbytes;
  std::vector<std::pair<uint64_t, std::string>> v;
  for (const auto& [name, b] : bytes) v.push_back({b, name});
  std::sort(v.rbegin(), v.rend());
  std::string s;
  for (const auto& [b, name] : v) s += (s.empty() ? "" : "+") + name;
  return s.empty() ? "?" : s;
}

std::string fmt(const char* f, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

std::string mib(uint64_t b) { return fmt("%.1f MiB", double(b) / (1 << 20)); }

std::string params_str(int64_t n) {
  return n >= 1000000000 ? fmt("%.2f B", double(n) / 1e9) : fmt("%.2f M", double(n) / 1e6);
}

std::string pm(const Stat& s, const char* f) {
  return fmt(f, s.mean) + " ± " + fmt(f, s.stddev);
}

// Right-aligns to `width` characters (not bytes: "±" is two bytes of UTF-8).
std::string pad_left(const std::string& s, size_t width) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  return chars < width ? std::string(width - chars, ' ') + s : s;
}

nlohmann::json stat_json(const Stat& s) { return {{"mean", s.mean}, {"stddev", s.stddev}}; }

}  // namespace

Status validate_bench_options(const BenchOptions& o) {
  auto check = [](const std::vector<int64_t>& v, const char* flag) -> Status {
    for (int64_t n : v)
      if (n < 1 || n > kBenchMaxTokens)
        return Status::error(std::string("bench: ") + flag + " " + std::to_string(n) +
                             " is out of range (1.." + std::to_string(kBenchMaxTokens) + " tokens)");
    return Status::ok();
  };
  EG_TRY(check(o.prompt_lengths, "prompt length"));
  EG_TRY(check(o.gen_lengths, "generation length"));
  if (o.prompt_lengths.empty() && o.gen_lengths.empty())
    return Status::error("bench: no test to run (give a prompt or a generation length)");
  if (o.depths.empty()) return Status::error("bench: no depth to run the tests at");
  int64_t longest = 0;
  for (int64_t n : o.prompt_lengths) longest = std::max(longest, n);
  for (int64_t n : o.gen_lengths) longest = std::max(longest, n);
  for (int64_t d : o.depths)
    if (d < 0 || d > kBenchMaxTokens - longest)
      return Status::error("bench: depth " + std::to_string(d) + " is out of range (0.." +
                           std::to_string(kBenchMaxTokens - longest) + ": depth + the longest test may be at most " +
                           std::to_string(kBenchMaxTokens) + " tokens)");
  if (o.reps < 1 || o.reps > kBenchMaxReps)
    return Status::error("bench: repetitions " + std::to_string(o.reps) + " is out of range (1.." +
                         std::to_string(kBenchMaxReps) + ")");
  if (o.max_ubatch < 1) return Status::error("bench: ubatch must be positive");
  return Status::ok();
}

std::string bench_test_name(const char* kind, int64_t n_tokens, int64_t depth) {
  return kind + std::to_string(n_tokens) + (depth > 0 ? "@d" + std::to_string(depth) : std::string());
}

Stat summarize(const std::vector<double>& v) {
  Stat s;
  s.n = int(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  if (v.size() >= 2) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / double(v.size() - 1));
  }
  return s;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * double(v.size()));
  const size_t k = size_t(std::clamp(rank, 1.0, double(v.size()))) - 1;
  return v[k];
}

Result<BenchResult> run_bench(const model::Model& m, const std::string& name,
                              const BenchOptions& opts, ThreadPool& pool,
                              const BenchProgress& progress) {
  EG_TRY(validate_bench_options(opts));
  const model::ModelConfig& c = m.config();
  BenchResult r;
  r.model.name = name;
  r.model.arch = c.arch_name;
  r.model.type = matrix_types(m.file());
  r.model.size_bytes = m.weight_bytes();
  r.model.n_params = m.n_params();
  r.model.bits_per_weight = r.model.n_params > 0 ? 8.0 * double(r.model.size_bytes) / double(r.model.n_params) : 0;
  r.model.weight_bytes_per_token = m.bytes_per_token();
  r.model.kv_bytes_per_position = m.kv_cache_bytes(1, opts.kv_type);
  r.model.n_layer = c.n_layer;
  r.model.n_embd = c.n_embd;
  r.model.n_vocab = c.n_vocab;
  r.threads = pool.size();
  r.isa = kernels::active_isa().name;
  r.reps = opts.reps;

  int64_t max_p = 0, max_n = 0, max_d = 0;
  for (int64_t p : opts.prompt_lengths) max_p = std::max(max_p, p);
  for (int64_t n : opts.gen_lengths) max_n = std::max(max_n, n);
  for (int64_t d : opts.depths) max_d = std::max(max_d, d);
  model::ContextOptions co;
  co.n_ctx = max_d + std::max(max_p, max_n);
  co.n_ubatch = std::max<int64_t>(1, std::min(std::max(max_p, max_d), opts.max_ubatch));
  co.kv_type = opts.kv_type;
  r.n_ctx = co.n_ctx;
  r.n_ubatch = co.n_ubatch;
  auto ctx_or = model::Context::create(m, co, pool);
  if (!ctx_or.ok()) return ctx_or.status().with_context("bench");
  model::Context& ctx = **ctx_or;
  r.context_bytes = ctx.memory_bytes();

  for (int64_t depth : opts.depths) {
    // The context every test of this depth starts from: depth random tokens, decoded once.
    ctx.truncate(0);
    if (depth > 0) {
      if (progress) progress("filling the context to depth " + std::to_string(depth), 0, 0);
      const std::vector<int32_t> fill = random_tokens(depth, c.n_vocab, opts.seed ^ 0xD0D0D0u);
      EG_TRY(ctx.decode(fill.data(), depth).with_context("bench: filling the context to depth " + std::to_string(depth)));
    }
    for (int64_t p : opts.prompt_lengths) {
      const std::string test = bench_test_name("pp", p, depth);
      const std::vector<int32_t> tokens = random_tokens(p, c.n_vocab, opts.seed + uint64_t(p));
      std::vector<double> tps, ttft;
      for (int rep = 0; rep <= opts.reps; ++rep) {
        if (progress) progress(test, rep, opts.reps);
        ctx.truncate(depth);
        const auto t0 = Clock::now();
        EG_TRY(ctx.decode(tokens.data(), p).with_context("bench " + test));
        const double ms = ms_since(t0);
        if (rep == 0) continue;  // warm-up
        ttft.push_back(ms);
        tps.push_back(ms > 0 ? double(p) * 1000.0 / ms : 0.0);
      }
      PrefillRun run;
      run.n_tokens = p;
      run.depth = depth;
      run.tok_per_s = summarize(tps);
      run.ttft_ms = summarize(ttft);
      r.prefill.push_back(run);
    }

    for (int64_t n : opts.gen_lengths) {
      const std::string test = bench_test_name("tg", n, depth);
      const std::vector<int32_t> tokens = random_tokens(n, c.n_vocab, opts.seed ^ uint64_t(n) << 20);
      std::vector<double> lat(static_cast<size_t>(n));
      std::vector<double> tps, mean_ms, p50, p95, p99;
      for (int rep = 0; rep <= opts.reps; ++rep) {
        if (progress) progress(test, rep, opts.reps);
        ctx.truncate(depth);
        double total = 0;
        for (int64_t i = 0; i < n; ++i) {
          const auto t0 = Clock::now();
          EG_TRY(ctx.decode(&tokens[size_t(i)], 1).with_context("bench " + test));
          lat[size_t(i)] = ms_since(t0);
          total += lat[size_t(i)];
        }
        if (rep == 0) continue;
        tps.push_back(total > 0 ? double(n) * 1000.0 / total : 0.0);
        mean_ms.push_back(total / double(n));
        p50.push_back(percentile(lat, 50));
        p95.push_back(percentile(lat, 95));
        p99.push_back(percentile(lat, 99));
      }
      DecodeRun run;
      run.n_tokens = n;
      run.depth = depth;
      run.tok_per_s = summarize(tps);
      run.ms_per_token = summarize(mean_ms);
      run.p50_ms = summarize(p50);
      run.p95_ms = summarize(p95);
      run.p99_ms = summarize(p99);
      run.mean_kv_positions = double(depth) + double(n + 1) / 2.0;
      run.bytes_per_token = double(r.model.weight_bytes_per_token) +
                            double(r.model.kv_bytes_per_position) * run.mean_kv_positions;
      r.decode.push_back(run);
    }
  }
  ctx.truncate(0);
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

void apply_roofline(BenchResult& r, const MemBandwidth& bw) {
  r.bandwidth = bw;
  for (DecodeRun& d : r.decode) {
    d.roofline_tok_per_s = d.bytes_per_token > 0 ? bw.best_bytes_per_s / d.bytes_per_token : 0;
    d.roofline_fraction = d.roofline_tok_per_s > 0 ? d.tok_per_s.mean / d.roofline_tok_per_s : 0;
  }
}

nlohmann::json bench_json(const BenchResult& r) {
  const BenchModelInfo& mi = r.model;
  nlohmann::json j;
  j["model"] = {{"name", mi.name},
                {"arch", mi.arch},
                {"type", mi.type},
                {"size_bytes", mi.size_bytes},
                {"params", mi.n_params},
                {"bits_per_weight", mi.bits_per_weight},
                {"bytes_per_weight", mi.bits_per_weight / 8.0},
                {"weight_bytes_per_token", mi.weight_bytes_per_token},
                {"kv_bytes_per_position", mi.kv_bytes_per_position},
                {"n_layer", mi.n_layer},
                {"n_embd", mi.n_embd},
                {"n_vocab", mi.n_vocab}};
  j["threads"] = r.threads;
  j["isa"] = r.isa;
  j["cpu_features"] = cpu_features_string();
  j["reps"] = r.reps;
  j["warmup_reps"] = 1;
  j["n_ctx"] = r.n_ctx;
  j["n_ubatch"] = r.n_ubatch;
  j["context_bytes"] = r.context_bytes;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  if (r.bandwidth) {
    j["memory_bandwidth"] = {{"best_gb_per_s", r.bandwidth->best_bytes_per_s / 1e9},
                             {"median_gb_per_s", r.bandwidth->median_bytes_per_s / 1e9},
                             {"buffer_bytes", r.bandwidth->buffer_bytes},
                             {"threads", r.bandwidth->threads},
                             {"passes", r.bandwidth->passes}};
  } else {
    j["memory_bandwidth"] = nullptr;
  }
  nlohmann::json tests = nlohmann::json::array();
  for (const PrefillRun& p : r.prefill)
    tests.push_back({{"test", bench_test_name("pp", p.n_tokens, p.depth)},
                     {"kind", "prefill"},
                     {"n_tokens", p.n_tokens},
                     {"depth", p.depth},
                     {"tok_per_s", stat_json(p.tok_per_s)},
                     {"ttft_ms", stat_json(p.ttft_ms)}});
  for (const DecodeRun& d : r.decode) {
    nlohmann::json t = {{"test", bench_test_name("tg", d.n_tokens, d.depth)},
                        {"kind", "decode"},
                        {"n_tokens", d.n_tokens},
                        {"depth", d.depth},
                        {"tok_per_s", stat_json(d.tok_per_s)},
                        {"latency_ms",
                         {{"mean", stat_json(d.ms_per_token)},
                          {"p50", stat_json(d.p50_ms)},
                          {"p95", stat_json(d.p95_ms)},
                          {"p99", stat_json(d.p99_ms)}}},
                        {"mean_kv_positions", d.mean_kv_positions},
                        {"bytes_per_token", d.bytes_per_token}};
    if (r.bandwidth)
      t["roofline"] = {{"tok_per_s", d.roofline_tok_per_s}, {"fraction", d.roofline_fraction}};
    else
      t["roofline"] = nullptr;
    tests.push_back(t);
  }
  j["tests"] = tests;
  return j;
}

std::string bench_table(const BenchResult& r) {
  const BenchModelInfo& mi = r.model;
  std::string s;
  s += "model   " + mi.name + " (" + mi.arch + ", " + mi.type + ")\n";
  s += "size    " + mib(mi.size_bytes) + ", " + params_str(mi.n_params) + " params, " +
       fmt("%.2f bits/weight", mi.bits_per_weight) + fmt(" (%.3f bytes/weight)", mi.bits_per_weight / 8) + "\n";
  s += "decode  " + mib(mi.weight_bytes_per_token) + " of weights per token + " +
       fmt("%.1f KiB", double(mi.kv_bytes_per_position) / 1024) + " of KV cache per position\n";
  s += "run     " + std::to_string(r.threads) + " threads, kernels " + r.isa + ", " +
       std::to_string(r.reps) + " reps after 1 warm-up, context " + std::to_string(r.n_ctx) +
       " (" + mib(r.context_bytes) + "), peak RSS " + mib(r.peak_rss_bytes) + "\n";
  if (r.bandwidth)
    s += "memory  read bandwidth " + fmt("%.2f GB/s", r.bandwidth->best_bytes_per_s / 1e9) +
         fmt(" best, %.2f GB/s median", r.bandwidth->median_bytes_per_s / 1e9) + " (" +
         std::to_string(r.bandwidth->threads) + " threads, " + mib(r.bandwidth->buffer_bytes) +
         " buffer, " + std::to_string(r.bandwidth->passes) + " passes)\n";
  s += "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-12s %20s  %s\n", "test", "tok/s", "latency");
  s += line;
  for (const PrefillRun& p : r.prefill) {
    std::snprintf(line, sizeof line, "%-12s %s  time to first token %s ms\n",
                  bench_test_name("pp", p.n_tokens, p.depth).c_str(), pad_left(pm(p.tok_per_s, "%.2f"), 20).c_str(),
                  pm(p.ttft_ms, "%.1f").c_str());
    s += line;
  }
  for (const DecodeRun& d : r.decode) {
    std::string roof = "";
    if (r.bandwidth)
      roof = fmt("  | %.0f%%", 100 * d.roofline_fraction) +
             fmt(" of roofline %.1f tok/s", d.roofline_tok_per_s);
    std::snprintf(line, sizeof line, "%-12s %s  p50 %s  p95 %s  p99 %s ms%s\n",
                  bench_test_name("tg", d.n_tokens, d.depth).c_str(), pad_left(pm(d.tok_per_s, "%.2f"), 20).c_str(),
                  pm(d.p50_ms, "%.2f").c_str(), pm(d.p95_ms, "%.2f").c_str(),
                  pm(d.p99_ms, "%.2f").c_str(), roof.c_str());
    s += line;
  }
  return s;
}

std::string bench_markdown(const BenchResult& r) {
  const BenchModelInfo& mi = r.model;
  std::string s =
      "| model | size | params | type | isa | threads | test | t/s | roofline |\n"
      "| ----- | ---: | -----: | ---- | --- | ------: | ---: | --: | -------: |\n";
  const std::string head = "| " + mi.name + " | " + mib(mi.size_bytes) + " | " +
                           params_str(mi.n_params) + " | " + mi.type + " | " + r.isa + " | " +
                           std::to_string(r.threads) + " | ";
  for (const PrefillRun& p : r.prefill)
    s += head + bench_test_name("pp", p.n_tokens, p.depth) + " | " + pm(p.tok_per_s, "%.2f") + " | |\n";
  for (const DecodeRun& d : r.decode)
    s += head + bench_test_name("tg", d.n_tokens, d.depth) + " | " + pm(d.tok_per_s, "%.2f") + " | " +
         (r.bandwidth ? fmt("%.0f%%", 100 * d.roofline_fraction) : std::string()) + " |\n";
  return s;
}

}  // namespace edgeglm::eval
