// Microbenchmark of the matmul kernels through the public entry point (kernels::matmul, i.e.
// activation quantization + row sharing over the pool) for each ISA table, in the run-time layout
// the engine would use (printed in place of TYPE; EDGEGLM_WEIGHT_LAYOUT=file for the file's):
//   prefill: n_tok tokens through (n_out x n_in) -> GMAC/s
//   decode:  one token through a set of matrices bigger than the caches (or one small matrix
//            set that stays cached) -> GB/s of weights streamed
// Build (not part of the CMake tree):
//   g++ -std=c++20 -O2 -Isrc bench/micro/qgemm_bench.cpp build-x86/src/kernels/libedgeglm_kernels.a
//       build-x86/src/quant/libedgeglm_quant.a build-x86/src/core/libedgeglm_core.a -lpthread
// Usage: qgemm_bench ISA TYPE prefill|decode N_OUT N_IN [n_tok] [threads] [total_MB]
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/layout.h"
#include "quant/quant.h"

using namespace edgeglm;

static DType parse_type(const std::string& s) {
  auto t = dtype_from_name(s);  // GGUF types and edgeglm's own (ids >= 1024)
  if (t.ok()) return *t;
  std::fprintf(stderr, "unknown type %s\n", s.c_str());
  std::exit(2);
}

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s ISA TYPE prefill|decode N_OUT N_IN [n_tok] [threads] [total_MB]\n", argv[0]);
    return 2;
  }
  if (!kernels::force_isa(argv[1]).is_ok()) return 2;
  const DType t = parse_type(argv[2]);
  const bool prefill = std::string(argv[3]) == "prefill";
  const int64_t n_out = std::atoll(argv[4]), n_in = std::atoll(argv[5]);
  const int64_t n_tok = argc > 6 ? std::atoll(argv[6]) : (prefill ? 128 : 1);
  const int threads = argc > 7 ? std::atoi(argv[7]) : 1;
  const double total_mb = argc > 8 ? std::atof(argv[8]) : 0;
  const size_t rb = dtype_row_bytes(t, n_in), mat_bytes = rb * size_t(n_out);
  const int n_mat = total_mb > 0 ? std::max(1, int(total_mb * 1e6 / double(mat_bytes))) : 1;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint8_t> w(mat_bytes * size_t(n_mat));
  {
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t r = 0; r < std::min<int64_t>(n_out, 64); ++r) {
      for (auto& v : row) v = nd(rng);
      quant::quantize_row(t, row.data(), w.data() + size_t(r) * rb, n_in);
    }
    for (size_t i = 64 * rb; i < w.size(); ++i) w[i] = w[i % (64 * rb)];
  }
  std::vector<float> x(size_t(n_tok * n_in)), y(size_t(n_tok * n_out));
  for (auto& v : x) v = nd(rng);
  // The run-time layout the engine would load this matrix in for the chosen table (kernels/layout.h;
  // EDGEGLM_WEIGHT_LAYOUT=file keeps the file's), so the figures are those of the engine's path.
  const DType L = kernels::preferred_layout(t, n_out, n_in);
  if (L != t) {
    std::vector<uint8_t> relaid(w.size());
    for (int m = 0; m < n_mat; ++m)
      kernels::to_runtime_layout(L, w.data() + size_t(m) * mat_bytes, relaid.data() + size_t(m) * mat_bytes, n_out, rb);
    w.swap(relaid);
  }
  // The engine's kind of memory for weights (core/mapped_file.h: huge pages where the kernel gives
  // them, as for a relaid model or a mapped file), not a vector's 4 KiB pages.
  auto big = allocate_large(w.size());
  if (!big.ok()) {
    std::fprintf(stderr, "%s\n", big.status().message().c_str());
    return 1;
  }
  std::copy(w.begin(), w.end(), big->get());
  std::vector<uint8_t>().swap(w);
  ThreadPool pool(threads);
  std::vector<TensorView> views;
  for (int m = 0; m < n_mat; ++m) views.push_back(TensorView::make(L, big->get() + size_t(m) * mat_bytes, n_in, n_out));
  auto once = [&] {
    for (int m = 0; m < n_mat; ++m) kernels::matmul(views[size_t(m)], x.data(), n_tok, y.data(), pool);
  };
  once();
  // Thread CPU time of the caller too: on a loaded machine it tracks the kernel's own cost.
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  std::vector<double> times, cpus;
  const auto start = std::chrono::steady_clock::now();
  while (times.size() < 5 || (times.size() < 200 && std::chrono::steady_clock::now() - start < std::chrono::seconds(2))) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_now();
    once();
    cpus.push_back(cpu_now() - c0);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  std::sort(cpus.begin(), cpus.end());
  const double med = times[times.size() / 2], cpu_min = cpus.front();
  const double macs = double(n_out) * double(n_in) * double(n_tok) * n_mat;
  std::printf("%-7s %-7s %-7s %5lldx%-5lld tok %3lld thr %d mats %3d: %8.3f ms  %7.1f GMAC/s  %6.1f GB/s | cpu %7.1f GMAC/s %6.1f GB/s\n",
              argv[1], dtype_name(L), argv[3], (long long)n_out, (long long)n_in, (long long)n_tok, threads, n_mat,
              med * 1e3, macs / med / 1e9, double(mat_bytes) * n_mat / med / 1e9,
              macs / cpu_min / 1e9, double(mat_bytes) * n_mat / cpu_min / 1e9);
  return 0;
}
