#include "core/sys_info.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace edgeglm {
namespace {

size_t status_field_kb(const char* field) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t kb = 0;
  const size_t n = std::strlen(field);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, field, n) == 0) {
      std::sscanf(line + n, " %zu", &kb);
      break;
    }
  }
  std::fclose(f);
  return kb;
}

CpuFeatures detect() {
  CpuFeatures c;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, cx, d;
  if (__get_cpuid(1, &a, &b, &cx, &d)) {
    c.fma = cx & (1u << 12);
    c.f16c = cx & (1u << 29);
  }
  // OS must save the AVX (and AVX-512) register state.
  bool os_avx = false, os_avx512 = false;
  if (__get_cpuid(1, &a, &b, &cx, &d) && (cx & (1u << 27))) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    os_avx = (lo & 0x6) == 0x6;
    os_avx512 = (lo & 0xe6) == 0xe6;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
    c.avx2 = os_avx && (b & (1u << 5));
    c.avx512f = os_avx512 && (b & (1u << 16));
    c.avx512bw = os_avx512 && (b & (1u << 30));
    c.avx512vl = os_avx512 && (b & (1u << 31));
    c.avx512vnni = os_avx512 && (cx & (1u << 11));
  }
  if (__get_cpuid_count(7, 1, &a, &b, &cx, &d)) c.avx512bf16 = os_avx512 && (a & (1u << 5));
  if (!os_avx) c.fma = c.f16c = false;
#elif defined(__aarch64__)
  unsigned long hw = getauxval(AT_HWCAP);
  c.neon = hw & HWCAP_ASIMD;
  c.dotprod = hw & HWCAP_ASIMDDP;
  c.fp16_arith = hw & HWCAP_ASIMDHP;
#ifdef HWCAP2_I8MM
  c.i8mm = getauxval(AT_HWCAP2) & HWCAP2_I8MM;
#endif
#endif
  return c;
}

}  // namespace

size_t current_rss_bytes() { return status_field_kb("VmRSS:") * 1024; }

size_t peak_rss_bytes() {
  size_t kb = status_field_kb("VmHWM:");
  if (kb == 0) {
    struct rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    kb = size_t(ru.ru_maxrss);
  }
  return kb * 1024;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures c = detect();
  return c;
}

std::string cpu_features_string() {
  const CpuFeatures& c = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(c.avx2, "avx2");
  add(c.fma, "fma");
  add(c.f16c, "f16c");
  add(c.avx512f, "avx512f");
  add(c.avx512bw, "avx512bw");
  add(c.avx512vl, "avx512vl");
  add(c.avx512vnni, "avx512vnni");
  add(c.avx512bf16, "avx512bf16");
  add(c.neon, "neon");
  add(c.dotprod, "dotprod");
  add(c.fp16_arith, "fp16");
  add(c.i8mm, "i8mm");
  return s.empty() ? "none" : s;
}

}  // namespace edgeglm
