#include "serve/systemd_notify.h"

#include <time.h>

#include <cstdlib>
#include <utility>

#if defined(EDGEGLM_HAVE_SYSTEMD)
#include <systemd/sd-daemon.h>
#endif

namespace edgeglm::serve {

SystemdNotifier::SystemdNotifier() {
#if defined(EDGEGLM_HAVE_SYSTEMD)
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && socket[0] != '\0';
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_interval_ = std::chrono::microseconds(usec);
#endif
}

bool SystemdNotifier::compiled_in() {
#if defined(EDGEGLM_HAVE_SYSTEMD)
  return true;
#else
  return false;
#endif
}

bool SystemdNotifier::notify(const std::string& state) {
#if defined(EDGEGLM_HAVE_SYSTEMD)
  if (!enabled_) return false;
  return sd_notify(0, state.c_str()) > 0;
#else
  (void)state;
  return false;
#endif
}

bool SystemdNotifier::ready() { return notify("READY=1"); }

bool SystemdNotifier::stopping() { return notify("STOPPING=1"); }

bool SystemdNotifier::reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t usec = uint64_t(ts.tv_sec) * 1000000u + uint64_t(ts.tv_nsec) / 1000u;
  return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool SystemdNotifier::watchdog() { return notify("WATCHDOG=1"); }

bool SystemdNotifier::status(std::string_view text) {
  // A newline would end the STATUS= assignment and start a new (bogus) one.
  std::string state = "STATUS=";
  for (char c : text) state += (c == '\n' || c == '\r') ? ' ' : c;
  return notify(state);
}

WatchdogPinger::WatchdogPinger(SystemdNotifier& notifier, std::chrono::microseconds interval,
                               HealthCheck healthy)
    : notifier_(notifier), interval_(interval), healthy_(std::move(healthy)) {}

WatchdogPinger::~WatchdogPinger() { stop(); }

bool WatchdogPinger::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_ || interval_.count() <= 0 || !notifier_.enabled() || !healthy_) return false;
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] { run(); });
  return true;
}

void WatchdogPinger::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  running_ = false;
}

bool WatchdogPinger::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_;
}

uint64_t WatchdogPinger::pings_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pings_sent_;
}

void WatchdogPinger::run() {
  // Half the timeout, as sd_watchdog_enabled(3) recommends: one late tick still lands in time.
  const auto period = interval_ / 2;
  auto next = std::chrono::steady_clock::now();
  std::string last_reason;
  bool was_healthy = true;
  for (;;) {
    // The check runs without the lock: it may be slow (it looks at the engine), and stop() must
    // be able to set stop_ meanwhile.
    std::string why;
    bool ok = healthy_(why);
    if (ok) {
      if (notifier_.watchdog()) {
        std::lock_guard<std::mutex> lock(mu_);
        ++pings_sent_;
      }
    } else if (was_healthy || why != last_reason) {
      notifier_.status(why.empty() ? "unhealthy: watchdog pings withheld" : why);
      last_reason = why;
    }
    was_healthy = ok;
    next += period;
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, next, [this] { return stop_; })) return;
    // After a long stall of this thread (suspend, overload) do not fire a burst of catch-up ticks.
    auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;
  }
}

}  // namespace edgeglm::serve
