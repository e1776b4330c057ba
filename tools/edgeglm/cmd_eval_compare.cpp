// edgeglm eval --compare BASE MODEL...: the comparison report (eval/report.h) on stdout as a
// markdown table (or JSON), and with --report PREFIX also in PREFIX.md and PREFIX.json.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "common.h"
#include "eval/report.h"

namespace edgeglm::cli {

int run_eval_compare(const std::vector<std::string>& models, const eval::CompareOptions& opts,
                     const std::string& report_prefix, bool json, ThreadPool& pool) {
  // An unwritable report path fails now, not after every model has been evaluated.
  if (!report_prefix.empty())
    if (Status st = eval::check_report_prefix(report_prefix); !st.is_ok()) return fail(st);
  const bool tty = ::isatty(2) != 0;
  size_t last_model = SIZE_MAX;
  auto progress = [&](size_t i, size_t n, const std::string& what) {
    const std::string name = std::filesystem::path(models[i]).filename().string();
    if (tty) {
      std::fprintf(stderr, "\r%-72s", ("[" + std::to_string(i + 1) + "/" + std::to_string(n) + "] " +
                                       name + ": " + what)
                                          .c_str());
    } else if (i != last_model) {
      std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, n, name.c_str());
    }
    last_model = i;
  };
  auto r = eval::compare_models(models, opts, pool, progress);
  if (tty) std::fprintf(stderr, "\r%-72s\r", "");
  if (!r.ok()) return fail(r.status());
  if (json)
    std::printf("%s\n", eval::report_json(*r).dump(2).c_str());
  else
    std::printf("%s", eval::report_markdown(*r).c_str());
  if (!report_prefix.empty()) {
    if (Status st = eval::write_report(report_prefix, *r); !st.is_ok()) return fail(st);
    std::fprintf(stderr, "wrote %s.md and %s.json\n", report_prefix.c_str(), report_prefix.c_str());
  }
  return 0;
}

}  // namespace edgeglm::cli
