// End-to-end tests of `edgeglm serve` as a process: the real binary is spawned (own process group,
// killed in teardown whatever happens) on a free port, and driven over HTTP, signals and a fake
// systemd notify socket. Waits poll with deadlines; the engine is wedged with /debug/stall where a
// test needs requests to be in flight at a given moment, because stories260K decodes too fast for
// timing to be trusted.
#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "serve/systemd_notify.h"
#include "test_util.h"

extern char** environ;

namespace edgeglm::serve {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr const char* kModelRel = "models/stories260K/stories260K.gguf";

// Polls `pred` every `step` until it holds or `timeout` passes; true if it held.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = 10ms) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

double ms_since(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
  // Written aside and renamed, as an operator's tooling would: the server never reads half a file.
  const std::string tmp = path + ".new";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::filesystem::rename(tmp, path);
}

// A fresh directory under /tmp (short: a socket path must fit sun_path), removed at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/eg_srv_XXXXXX";
    if (mkdtemp(tmpl)) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  bool ok() const { return !path_.empty(); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// An HTTP answer; status -1 when no response came (connection refused or reset).
struct Reply {
  int status = -1;
  std::string body;
  Json json;  // the parsed body, null if it was not JSON
};

Reply to_reply(const httplib::Result& r) {
  Reply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.json = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (out.json.is_discarded()) out.json = nullptr;
  return out;
}

httplib::Headers auth(const std::string& key) {
  if (key.empty()) return {};
  return {{"Authorization", "Bearer " + key}};
}

Reply http_get(int port, const std::string& path, const std::string& key = "") {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(10, 0);
  return to_reply(cli.Get(path.c_str(), auth(key)));
}

Reply http_post(int port, const std::string& path, const std::string& body,
                const std::string& key = "") {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(60, 0);  // the server writes a probe byte every 250 ms while it works
  return to_reply(cli.Post(path.c_str(), auth(key), body, "application/json"));
}

std::string completion_body(int max_tokens) {
  return Json{{"model", "stories260K"}, {"prompt", "Once upon a time"}, {"max_tokens", max_tokens},
              {"temperature", 0},       {"ignore_eos", true}}
      .dump();
}

Reply completion(int port, int max_tokens, const std::string& key = "") {
  return http_post(port, "/v1/completions", completion_body(max_tokens), key);
}

// A completion read by a background thread.
std::future<Reply> completion_async(int port, int max_tokens, const std::string& key = "") {
  return std::async(std::launch::async, [=] { return completion(port, max_tokens, key); });
}

std::string finish_reason(const Reply& r) {
  if (!r.json.is_object() || !r.json.contains("choices") || r.json["choices"].empty()) return "?";
  const Json& f = r.json["choices"][0]["finish_reason"];
  return f.is_string() ? f.get<std::string>() : "?";
}

int64_t completion_tokens(const Reply& r) {
  if (!r.json.is_object() || !r.json.contains("usage")) return -1;
  return r.json["usage"].value("completion_tokens", int64_t(-1));
}

// Waits for a background request, failing (not hanging) if it does not end in time.
Reply get_within(std::future<Reply>& f, std::chrono::milliseconds timeout) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "request still running after " << timeout.count() << " ms";
    return {};
  }
  return f.get();
}

// One `edgeglm serve` process. stdout and stderr go to a log file; the destructor kills the
// whole process group and reaps the child, whatever state the test left it in.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() { kill_now(); }

  // `extra_env`: NAME=value entries added to this process's environment, from which any
  // NOTIFY_SOCKET / WATCHDOG_* is removed first.
  ::testing::AssertionResult spawn(const std::vector<std::string>& args, const std::string& log_path,
                                   const std::vector<std::string>& extra_env = {}) {
    log_path_ = log_path;
    std::vector<std::string> argv_s = {std::string(EDGEGLM_BIN_DIR) + "/edgeglm"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
      const std::string_view v(*e);
      if (v.starts_with("NOTIFY_SOCKET=") || v.starts_with("WATCHDOG_")) continue;
      env_s.emplace_back(v);
    }
    env_s.insert(env_s.end(), extra_env.begin(), extra_env.end());
    // Everything the child touches is prepared before fork: between fork and exec only
    // async-signal-safe calls are allowed (this process has threads).
    std::vector<char*> argv, envp;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env_s) envp.push_back(s.data());
    envp.push_back(nullptr);
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) return ::testing::AssertionFailure() << "cannot open " << log_path;
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test binary
      if (getppid() != parent) _exit(127);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      dup2(null_fd, 0);
      dup2(log_fd, 1);
      dup2(log_fd, 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    if (pid < 0) return ::testing::AssertionFailure() << "fork: " << std::strerror(errno);
    setpgid(pid, pid);  // also here, so killpg works even before the child ran
    pid_ = pid;
    return ::testing::AssertionSuccess();
  }

  // Parses "listening on http://HOST:PORT" from the log.
  ::testing::AssertionResult wait_port(std::chrono::milliseconds timeout = 10s) {
    static const std::regex kListening(R"(listening on http://[^\s:]+:(\d+))");
    std::smatch m;
    const bool ok = wait_until(
        [&] {
          const std::string text = log();
          if (std::regex_search(text, m, kListening)) return port_ = std::stoi(m[1].str()), true;
          return exited();
        },
        timeout);
    if (ok && port_ > 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "no 'listening on' line within " << timeout.count()
                                         << " ms" << (exited() ? " (server exited)" : "")
                                         << "; log:\n" << log();
  }

  ::testing::AssertionResult wait_healthy(std::chrono::milliseconds timeout = 15s) {
    if (auto r = wait_port(); !r) return r;
    if (wait_until([&] { return http_get(port_, "/health").status == 200 || exited(); }, timeout, 20ms) &&
        !exited())
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "/health not 200 within " << timeout.count()
                                         << " ms; log:\n" << log();
  }

  // The wait status once the child exited within `timeout`, else nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    wait_until([&] { return exited(); }, timeout, 10ms);
    if (!status_) return std::nullopt;
    return status_;
  }

  bool exited() {
    if (status_ || pid_ <= 0) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
    return status_.has_value();
  }

  void signal(int sig) {
    if (pid_ > 0 && !status_) ::kill(pid_, sig);
  }

  void kill_now() {
    if (pid_ <= 0 || exited()) return;
    ::killpg(pid_, SIGKILL);
    int st = 0;
    if (waitpid(pid_, &st, 0) == pid_) status_ = st;
  }

  std::string log() const { return read_text(log_path_); }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::optional<int> status_;
  std::string log_path_;
};

std::string describe_status(std::optional<int> st) {
  if (!st) return "still running";
  if (WIFEXITED(*st)) return "exit " + std::to_string(WEXITSTATUS(*st));
  if (WIFSIGNALED(*st)) return std::string("killed by ") + strsignal(WTERMSIG(*st));
  return "status " + std::to_string(*st);
}

// /health as JSON (whatever its status code); null when the server did not answer.
Json health(int port, int* status = nullptr) {
  Reply r = http_get(port, "/health");
  if (status) *status = r.status;
  return r.json;
}

int64_t health_active(int port) {
  const Json h = health(port);
  return h.is_object() ? h.value("active", int64_t(-1)) : -1;
}

// Plays systemd's side of sd_notify: a datagram socket; a thread stamps and keeps every message.
class NotifySocket {
 public:
  struct Datagram {
    SteadyClock::time_point at;
    std::string text;
  };

  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (fd_ < 0 || path.size() >= sizeof(addr.sun_path)) return;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
    bound_ = true;
    thread_ = std::thread([this] { run(); });
  }
  ~NotifySocket() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return bound_; }

  std::vector<Datagram> all() const {
    std::lock_guard lk(mu_);
    return got_;
  }
  // The first datagram at or after `since` whose text contains `needle`, waiting up to `timeout`.
  std::optional<Datagram> wait_for(const std::string& needle, SteadyClock::time_point since,
                                   std::chrono::milliseconds timeout) const {
    std::optional<Datagram> hit;
    wait_until(
        [&] {
          for (const Datagram& d : all())
            if (d.at >= since && d.text.find(needle) != std::string::npos) return hit = d, true;
          return false;
        },
        timeout);
    return hit;
  }
  int count(const std::string& needle, SteadyClock::time_point from, SteadyClock::time_point to) const {
    int n = 0;
    for (const Datagram& d : all())
      if (d.at >= from && d.at <= to && d.text.find(needle) != std::string::npos) ++n;
    return n;
  }
  // For failure messages: every datagram, ms relative to `t0`.
  std::string dump(SteadyClock::time_point t0) const {
    std::string out;
    for (const Datagram& d : all()) {
      std::string text = d.text;
      for (char& c : text)
        if (c == '\n') c = '|';
      out += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d.at - t0).count()) +
             " ms: " + text + "\n";
    }
    return out;
  }

 private:
  void run() {
    char buf[4096];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) continue;
      std::lock_guard lk(mu_);
      got_.push_back({SteadyClock::now(), std::string(buf, size_t(n))});
    }
  }

  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Datagram> got_;
  std::thread thread_;
};

std::vector<std::string> serve_args(std::vector<std::string> extra) {
  std::vector<std::string> a = {"serve", "-m", test::shared_path(kModelRel), "--port", "0", "-t", "1"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// 1. READY=1, watchdog pings while healthy, none while the engine is wedged (with a STATUS= saying
//    why, and /health 503 "stalled"), pings again once it recovers; RELOADING/READY on SIGHUP,
//    STOPPING on SIGTERM.
TEST(ServeProcess, SystemdWatchdogFollowsEngineHealth) {
  EDGEGLM_REQUIRE_SHARED(kModelRel);
  if (!SystemdNotifier::compiled_in())
    GTEST_SKIP() << "edgeglm built without libsystemd: sd_notify calls are no-ops";
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  NotifySocket notify(dir.file("notify"));
  ASSERT_TRUE(notify.ok()) << "cannot bind " << dir.file("notify");
  std::future<Reply> long_req;  // declared first: destroyed after the server is killed
  ServerProcess srv;
  // WATCHDOG_PID stays unset: sd_watchdog_enabled() then applies WATCHDOG_USEC to any process.
  ASSERT_TRUE(srv.spawn(serve_args({"-c", "4096", "--parallel", "1", "--allow-debug-hooks",
                                    "--stall-limit-s", "1", "--max-tokens-limit", "100000",
                                    "--drain-s", "5"}),
                        dir.file("log"),
                        {"NOTIFY_SOCKET=" + dir.file("notify"), "WATCHDOG_USEC=400000"}));
  const auto t_start = SteadyClock::now();
  ASSERT_TRUE(srv.wait_healthy());
  const int port = srv.port();
  ASSERT_TRUE(notify.wait_for("READY=1", t_start, 3s)) << notify.dump(t_start);

  // Pings every WATCHDOG_USEC/2 = 200 ms while healthy.
  const auto t_pings = SteadyClock::now();
  EXPECT_TRUE(wait_until([&] { return notify.count("WATCHDOG=1", t_pings, SteadyClock::now()) >= 3; }, 1500ms))
      << notify.dump(t_start);

  // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
  const auto t_hup = SteadyClock::now();
  srv.signal(SIGHUP);
  auto reloading = notify.wait_for("RELOADING=1", t_hup, 3s);
  ASSERT_TRUE(reloading) << notify.dump(t_start);
  EXPECT_NE(reloading->text.find("MONOTONIC_USEC="), std::string::npos) << reloading->text;
  EXPECT_TRUE(notify.wait_for("READY=1", reloading->at, 3s)) << notify.dump(t_start);

  // A request that decodes until the context is full, wedged mid-decode.
  long_req = completion_async(port, 100000);
  ASSERT_TRUE(wait_until([&] { return health_active(port) == 1; }, 3s)) << srv.log();
  const auto t_stall = SteadyClock::now();
  const Reply stall = http_post(port, "/debug/stall?ms=4000", "");
  ASSERT_EQ(stall.status, 200) << stall.body;
  ASSERT_EQ(health_active(port), 1) << "the request finished before the stall landed";

  Json h;
  int hs = 0;
  ASSERT_TRUE(wait_until([&] { return (h = health(port, &hs)), hs == 503; }, 2500ms))
      << "/health still " << hs << " " << h.dump();
  const auto t_503 = SteadyClock::now();
  EXPECT_EQ(h.value("status", ""), "stalled") << h.dump();
  const double to_503_ms = std::chrono::duration<double, std::milli>(t_503 - t_stall).count();
  EXPECT_LT(to_503_ms, 2100.0);
  auto status_msg = notify.wait_for("STATUS=stalled", t_stall, 1500ms);
  EXPECT_TRUE(status_msg) << notify.dump(t_start);

  // No ping while wedged. A ping decided just before the health check flipped may still be in
  // flight when the 503 is seen, so the window starts one period (+ margin) later.
  const auto quiet_from = t_503 + 300ms, quiet_to = t_stall + 3800ms;
  while (SteadyClock::now() < quiet_to) {
    int s = 0;
    health(port, &s);
    EXPECT_EQ(s, 503) << "health recovered during the stall after " << ms_since(t_stall) << " ms";
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(notify.count("WATCHDOG=1", quiet_from, quiet_to), 0) << notify.dump(t_start);
  std::printf("[   INFO   ] /health 503 %.0f ms after the stall; %d pings before it, 0 expected in "
              "the next %.0f ms\n",
              to_503_ms, notify.count("WATCHDOG=1", t_start, t_stall),
              std::chrono::duration<double, std::milli>(quiet_to - quiet_from).count());

  // The stall ends: healthy again, pings resume.
  ASSERT_TRUE(wait_until([&] { return http_get(port, "/health").status == 200; }, 3s)) << srv.log();
  const auto t_ok = SteadyClock::now();
  EXPECT_GE(ms_since(t_stall), 3900.0);
  EXPECT_TRUE(notify.wait_for("WATCHDOG=1", t_ok, 1000ms)) << notify.dump(t_start);
  // systemctl status no longer says "stalled", and said it once (the reason carries no timing).
  EXPECT_TRUE(notify.wait_for("STATUS=serving", t_stall, 1000ms)) << notify.dump(t_start);
  EXPECT_EQ(notify.count("STATUS=stalled", t_stall, SteadyClock::now()), 1) << notify.dump(t_start);

  // The wedged request was not harmed: it runs on to the end of the context.
  const Reply r = get_within(long_req, 20s);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(finish_reason(r), "length") << r.body.substr(0, 300);
  EXPECT_GT(completion_tokens(r), 4000);

  const auto t_term = SteadyClock::now();
  srv.signal(SIGTERM);
  EXPECT_TRUE(notify.wait_for("STOPPING=1", t_term, 3s)) << notify.dump(t_start);
  const auto st = srv.wait_exit(5s);
  ASSERT_TRUE(st) << srv.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(st) << "\n" << srv.log();
}

// 2a. SIGTERM lets running requests finish, refuses new ones, exits 0.
TEST(ServeProcess, SigtermDrainsRunningRequests) {
  EDGEGLM_REQUIRE_SHARED(kModelRel);
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::future<Reply> a, b;  // declared first: destroyed after the server is killed
  ServerProcess srv;
  ASSERT_TRUE(srv.spawn(serve_args({"-c", "1024", "--parallel", "2", "--allow-debug-hooks",
                                    "--drain-s", "20"}),
                        dir.file("log")));
  ASSERT_TRUE(srv.wait_healthy());
  const int port = srv.port();

  // Wedge the engine briefly so both requests are surely admitted and unfinished at SIGTERM.
  ASSERT_EQ(http_post(port, "/debug/stall?ms=1000", "").status, 200);
  a = completion_async(port, 200);
  b = completion_async(port, 200);
  ASSERT_TRUE(wait_until([&] { return health_active(port) == 2; }, 3s)) << health(port).dump();
  const auto t_term = SteadyClock::now();
  srv.signal(SIGTERM);

  // Draining: /health says so, and a new request is refused (503), or, once the drain is over,
  // the port is closed.
  Json h;
  int hs = 0;
  EXPECT_TRUE(wait_until([&] { return (h = health(port, &hs)), hs != 200; }, 2s));
  if (hs == 503) {
    EXPECT_EQ(h.value("status", ""), "draining") << h.dump();
  }
  const Reply late = completion(port, 5);
  EXPECT_TRUE(late.status == 503 || late.status == -1) << late.status << " " << late.body;
  std::printf("[   INFO   ] request after SIGTERM: %s\n",
              late.status == 503 ? "503 (draining)" : "connection refused");
  if (late.status == 503) {
    EXPECT_NE(late.body.find("shutting down"), std::string::npos) << late.body;
  }

  for (auto* f : {&a, &b}) {
    const Reply r = get_within(*f, 10s);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(finish_reason(r), "length") << r.body.substr(0, 300);
    EXPECT_EQ(completion_tokens(r), 200) << r.body.substr(0, 300);
  }
  const auto st = srv.wait_exit(5s);
  ASSERT_TRUE(st) << "still running " << ms_since(t_term) << " ms after SIGTERM\n" << srv.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(st) << "\n" << srv.log();
  EXPECT_NE(srv.log().find("0 request(s) cut short"), std::string::npos) << srv.log();
}

// 2b. A request that cannot finish before the drain deadline ends with "shutdown"; exit is still 0.
TEST(ServeProcess, SigtermCutsRequestsAtTheDrainDeadline) {
  EDGEGLM_REQUIRE_SHARED(kModelRel);
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::future<Reply> endless;  // declared first: destroyed after the server is killed
  ServerProcess srv;
  ASSERT_TRUE(srv.spawn(serve_args({"-c", "4096", "--parallel", "1", "--allow-debug-hooks",
                                    "--drain-s", "0", "--max-tokens-limit", "100000"}),
                        dir.file("log")));
  ASSERT_TRUE(srv.wait_healthy());
  const int port = srv.port();

  ASSERT_EQ(http_post(port, "/debug/stall?ms=20000", "").status, 200);
  endless = completion_async(port, 100000);
  ASSERT_TRUE(wait_until([&] { return health_active(port) == 1; }, 3s)) << health(port).dump();
  const auto t_term = SteadyClock::now();
  srv.signal(SIGTERM);

  const Reply r = get_within(endless, 5s);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(finish_reason(r), "shutdown") << r.body.substr(0, 300);
  const auto st = srv.wait_exit(5s);
  ASSERT_TRUE(st) << "still running " << ms_since(t_term) << " ms after SIGTERM\n" << srv.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(st) << "\n" << srv.log();
  EXPECT_LT(ms_since(t_term), 5000.0);
  EXPECT_NE(srv.log().find("1 request(s) cut short"), std::string::npos) << srv.log();
}

// 3. SIGHUP re-reads the key file: the new key works, the old one is refused, a request running
//    during the reload completes; a broken key file on reload keeps the keys in force.
TEST(ServeProcess, SighupReloadsApiKeys) {
  EDGEGLM_REQUIRE_SHARED(kModelRel);
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string key_a = "edgeglm-test-key-AAAAAAAA";
  const std::string key_b = "edgeglm-test-key-BBBBBBBB";
  const std::string keys = dir.file("keys");
  write_text(keys, "# test keys\n" + key_a + " normal\n");
  std::future<Reply> running;  // declared first: destroyed after the server is killed
  ServerProcess srv;
  ASSERT_TRUE(srv.spawn(serve_args({"-c", "1024", "--parallel", "2", "--allow-debug-hooks",
                                    "--api-key-file", keys, "--drain-s", "5"}),
                        dir.file("log")));
  ASSERT_TRUE(srv.wait_healthy());
  const int port = srv.port();

  Reply r = completion(port, 4, key_a);
  EXPECT_EQ(r.status, 200) << r.body;
  r = completion(port, 4);
  EXPECT_EQ(r.status, 401) << r.body;
  r = completion(port, 4, key_b);
  EXPECT_EQ(r.status, 401) << r.body;

  // A request under key A in flight across the reload (held by a stall).
  ASSERT_EQ(http_post(port, "/debug/stall?ms=1500", "").status, 200);
  running = completion_async(port, 50, key_a);
  ASSERT_TRUE(wait_until([&] { return health_active(port) == 1; }, 3s)) << health(port).dump();

  write_text(keys, key_b + " normal\n");
  const auto t_hup = SteadyClock::now();
  srv.signal(SIGHUP);
  // /v1/models checks the key without needing the (wedged) engine.
  EXPECT_TRUE(wait_until([&] { return http_get(port, "/v1/models", key_b).status == 200; }, 3s, 20ms))
      << srv.log();
  const double reload_ms = ms_since(t_hup);
  EXPECT_EQ(http_get(port, "/v1/models", key_a).status, 401);
  r = completion(port, 4, key_a);
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_NE(r.body.find("invalid API key"), std::string::npos) << r.body;

  r = get_within(running, 10s);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(finish_reason(r), "length") << r.body.substr(0, 300);
  EXPECT_EQ(completion_tokens(r), 50);
  r = completion(port, 4, key_b);
  EXPECT_EQ(r.status, 200) << r.body;

  // A broken key file: the reload fails loudly and the keys in force stay.
  write_text(keys, "short\n");
  srv.signal(SIGHUP);
  EXPECT_TRUE(wait_until([&] { return srv.log().find("reload failed") != std::string::npos; }, 3s))
      << srv.log();
  EXPECT_EQ(http_get(port, "/v1/models", key_b).status, 200);
  EXPECT_EQ(srv.log().find("short\n"), std::string::npos) << "a key was logged";
  EXPECT_EQ(srv.log().find(key_b), std::string::npos) << "a key was logged";
  std::printf("[   INFO   ] key reload visible %.0f ms after SIGHUP\n", reload_ms);

  srv.signal(SIGTERM);
  const auto st = srv.wait_exit(5s);
  ASSERT_TRUE(st) << srv.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(st) << "\n" << srv.log();
}

// 4. A config file with an unknown key: non-zero exit naming the key, before binding a port.
TEST(ServeProcess, MalformedConfigFailsBeforeBinding) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string cfg = dir.file("bad.json");
  write_text(cfg, R"({"model": "whatever.gguf", "port": 0, "max_token_limit": 64})");
  ServerProcess srv;
  ASSERT_TRUE(srv.spawn({"serve", "--config", cfg}, dir.file("log")));
  const auto st = srv.wait_exit(10s);
  ASSERT_TRUE(st) << "edgeglm serve with a bad config is still running\n" << srv.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) != 0) << describe_status(st) << "\n" << srv.log();
  const std::string log = srv.log();
  EXPECT_NE(log.find("max_token_limit"), std::string::npos) << log;
  EXPECT_NE(log.find("unknown key"), std::string::npos) << log;
  EXPECT_EQ(log.find("listening on"), std::string::npos) << log;
}

}  // namespace
}  // namespace edgeglm::serve
