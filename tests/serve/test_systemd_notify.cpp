#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "serve/systemd_notify.h"

namespace edgeglm::serve {
namespace {

using namespace std::chrono_literals;

// Plays the service manager: a datagram socket bound in a fresh temp dir, named by NOTIFY_SOCKET.
class FakeSystemd : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edgeglm_notify_XXXXXX";  // short: sun_path holds 108 bytes
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
  }
  void TearDown() override {
    // Other tests in this binary must not notify a socket that is gone.
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (fd_ >= 0) close(fd_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // The next datagram, or "" after `timeout`.
  std::string receive(std::chrono::milliseconds timeout = 2000ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, int(timeout.count())) <= 0) return "";
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, size_t(n)) : std::string();
  }
  // Everything that arrives within `window`.
  std::vector<std::string> drain(std::chrono::milliseconds window) {
    std::vector<std::string> out;
    auto end = std::chrono::steady_clock::now() + window;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      std::string m = receive(left);
      if (!m.empty()) out.push_back(m);
    }
    return out;
  }

  std::string dir_, path_;
  int fd_ = -1;
};

#define REQUIRE_LIBSYSTEMD()                                                               \
  do {                                                                                      \
    if (!SystemdNotifier::compiled_in())                                                    \
      GTEST_SKIP() << "built without libsystemd: sd_notify is a no-op (install libsystemd-dev)"; \
  } while (0)

TEST_F(FakeSystemd, WithoutLibsystemdEverythingIsANoOp) {
  if (SystemdNotifier::compiled_in()) GTEST_SKIP() << "built with libsystemd";
  setenv("WATCHDOG_USEC", "1000000", 1);
  SystemdNotifier n;
  EXPECT_FALSE(n.enabled());
  EXPECT_EQ(n.watchdog_interval().count(), 0);
  EXPECT_FALSE(n.ready());
  EXPECT_FALSE(n.watchdog());
  EXPECT_EQ(receive(100ms), "");
  WatchdogPinger pinger(n, 1s, [](std::string&) { return true; });
  EXPECT_FALSE(pinger.start());
}

TEST_F(FakeSystemd, DisabledWithoutNotifySocket) {
  unsetenv("NOTIFY_SOCKET");
  SystemdNotifier n;
  EXPECT_FALSE(n.enabled());
  EXPECT_FALSE(n.ready());
  EXPECT_EQ(receive(100ms), "");
}

TEST_F(FakeSystemd, SendsStateDatagrams) {
  REQUIRE_LIBSYSTEMD();
  SystemdNotifier n;
  ASSERT_TRUE(n.enabled());
  EXPECT_TRUE(n.ready());
  EXPECT_EQ(receive(), "READY=1");
  EXPECT_TRUE(n.status("loading\nmodel"));
  EXPECT_EQ(receive(), "STATUS=loading model");
  EXPECT_TRUE(n.watchdog());
  EXPECT_EQ(receive(), "WATCHDOG=1");
  EXPECT_TRUE(n.stopping());
  EXPECT_EQ(receive(), "STOPPING=1");

  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t before = uint64_t(ts.tv_sec) * 1000000u + uint64_t(ts.tv_nsec) / 1000u;
  EXPECT_TRUE(n.reloading());
  std::string m = receive();
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(m.substr(0, prefix.size()), prefix) << m;
  uint64_t usec = std::stoull(m.substr(prefix.size()));
  EXPECT_GE(usec, before);
  EXPECT_LT(usec, before + 10'000'000u);
}

TEST_F(FakeSystemd, WatchdogIntervalFollowsEnvironment) {
  REQUIRE_LIBSYSTEMD();
  EXPECT_EQ(SystemdNotifier().watchdog_interval().count(), 0);
  setenv("WATCHDOG_USEC", "200000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  EXPECT_EQ(SystemdNotifier().watchdog_interval(), std::chrono::microseconds(200000));
  // The watchdog is meant for another process (e.g. we are a child of the service).
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  EXPECT_EQ(SystemdNotifier().watchdog_interval().count(), 0);
}

TEST_F(FakeSystemd, PingerPingsOnlyWhileHealthy) {
  REQUIRE_LIBSYSTEMD();
  SystemdNotifier n;
  std::atomic<bool> healthy{true};
  WatchdogPinger pinger(n, 40ms, [&](std::string& why) {
    if (healthy) return true;
    why = "engine stalled for 31 s";
    return false;
  });
  ASSERT_TRUE(pinger.start());
  EXPECT_TRUE(pinger.running());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(receive(), "WATCHDOG=1");

  healthy = false;
  // A ping whose check ran before the flip may still arrive; then the reason, then silence.
  std::string m = receive();
  for (int late = 0; m == "WATCHDOG=1" && late < 2; ++late) m = receive();
  EXPECT_EQ(m, "STATUS=engine stalled for 31 s");
  uint64_t pings = pinger.pings_sent();
  EXPECT_GE(pings, 3u);
  auto quiet = drain(150ms);  // ~7 ticks
  EXPECT_TRUE(quiet.empty()) << "first unexpected datagram: " << quiet.front();
  EXPECT_EQ(pinger.pings_sent(), pings);

  healthy = true;  // recovered before systemd acted: pings resume
  EXPECT_EQ(receive(), "WATCHDOG=1");
  pinger.stop();
  EXPECT_FALSE(pinger.running());
  drain(50ms);
  EXPECT_TRUE(drain(100ms).empty()) << "pings after stop()";
}

TEST_F(FakeSystemd, PingerStopsWithoutWaitingForTheNextTick) {
  REQUIRE_LIBSYSTEMD();
  SystemdNotifier n;
  WatchdogPinger pinger(n, 60s, [](std::string&) { return true; });
  ASSERT_TRUE(pinger.start());
  EXPECT_EQ(receive(), "WATCHDOG=1");  // the first check is immediate
  auto t0 = std::chrono::steady_clock::now();
  pinger.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(pinger.pings_sent(), 1u);
  pinger.stop();  // idempotent
}

TEST_F(FakeSystemd, PingerNeedsAnInterval) {
  SystemdNotifier n;
  WatchdogPinger pinger(n, 0us, [](std::string&) { return true; });
  EXPECT_FALSE(pinger.start());
  EXPECT_FALSE(pinger.running());
}

}  // namespace
}  // namespace edgeglm::serve
