#include "core/log.h"

#include <atomic>
#include <cstdio>

namespace edgeglm {
namespace {
std::atomic<int> g_level{int(LogLevel::kWarn)};
}

void set_log_level(LogLevel level) { g_level.store(int(level)); }
LogLevel log_level() { return LogLevel(g_level.load()); }

void log_message(LogLevel level, const std::string& message) {
  if (int(level) < g_level.load()) return;
  static const char* kNames[] = {"debug", "info", "warning", "error"};
  std::fprintf(stderr, "edgeglm %s: %s\n", kNames[int(level)], message.c_str());
}

}  // namespace edgeglm
