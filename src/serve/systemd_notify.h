// The systemd notification protocol (sd_notify(3)) for `edgeglm serve` under Type=notify.
//
// Built without libsystemd (no EDGEGLM_HAVE_SYSTEMD) every call is a no-op, enabled() is false and
// watchdog_interval() is 0, so the service runs the same outside systemd and on boards whose
// sysroot has no libsystemd. With libsystemd but without $NOTIFY_SOCKET (started by hand) the
// calls are no-ops too. The environment is read when the notifier is constructed and left set
// (unset_environment = 0): we spawn no children that could inherit it by mistake.
//
// Every send returns true when a datagram went out; a failed send is not an error the caller can
// act on (systemd gone or socket full), so it is reported as false, never as a Status.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace edgeglm::serve {

class SystemdNotifier {
 public:
  SystemdNotifier();

  // Whether this binary was built with libsystemd (EDGEGLM_HAVE_SYSTEMD); for --version and tests.
  static bool compiled_in();
  // Built with libsystemd and $NOTIFY_SOCKET set.
  bool enabled() const { return enabled_; }
  // $WATCHDOG_USEC when the watchdog is on for this process (sd_watchdog_enabled: also checks
  // $WATCHDOG_PID), else 0. Ping at half of it.
  std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

  bool ready();                          // READY=1 (start-up done, or a reload finished)
  bool stopping();                       // STOPPING=1 (drain started)
  // RELOADING=1 with MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>, which Type=notify-reload (systemd
  // 253+) uses to match the reload to the `systemctl reload` job; older systemd ignores the
  // field. The caller must send ready() when the reload is done.
  bool reloading();
  bool watchdog();                       // WATCHDOG=1
  bool status(std::string_view text);    // STATUS=<text>; newlines become spaces
  // Several assignments in one datagram, e.g. "READY=1\nSTATUS=serving". Sent as given.
  bool notify(const std::string& state);

 private:
  bool enabled_ = false;
  std::chrono::microseconds watchdog_interval_{0};
};

// A thread that keeps the systemd watchdog fed while the service is healthy. Every interval/2 it
// asks `healthy(why)`: true -> WATCHDOG=1; false -> no ping, and STATUS=<why> when the reason
// changes, so a wedged engine (stalled decode, stuck queue) stops the pings, systemd kills and
// restarts the service, and `systemctl status` shows why. Pings resume if health comes back
// before the timeout; the STATUS text is then the owner's to reset (the pinger does not know it).
class WatchdogPinger {
 public:
  using HealthCheck = std::function<bool(std::string& why)>;

  // `interval` is the watchdog timeout (usually notifier.watchdog_interval()); 0 disables.
  // `healthy` runs on the pinger thread.
  WatchdogPinger(SystemdNotifier& notifier, std::chrono::microseconds interval,
                 HealthCheck healthy);
  ~WatchdogPinger();  // stops the thread
  WatchdogPinger(const WatchdogPinger&) = delete;
  WatchdogPinger& operator=(const WatchdogPinger&) = delete;

  // Starts the thread; false (and no thread) when the interval is 0 or the notifier is disabled.
  // The first check runs immediately.
  bool start();
  // Wakes the thread and joins it without waiting for the next tick. Idempotent; call it from one
  // thread at a time (the owner's).
  void stop();
  bool running() const;
  uint64_t pings_sent() const;

 private:
  void run();

  SystemdNotifier& notifier_;
  std::chrono::microseconds interval_;
  HealthCheck healthy_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool running_ = false;
  uint64_t pings_sent_ = 0;
  std::thread thread_;
};

}  // namespace edgeglm::serve
