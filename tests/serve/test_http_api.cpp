// The HTTP service in-process on loopback, on stories260K: greedy output equals `edgeglm run`,
// streamed equals whole, 16 concurrent clients all get their exact text, queue overflow is a 503
// with Retry-After, a client that hangs up frees its slot (seen in /metrics), deadlines, auth and
// key reload, the body limit, the stalled-engine health check, and priorities under load.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "../model/model_test_util.h"
#include "runtime/session.h"
#include "serve/http/server.h"
#include "test_util.h"

using namespace edgeglm;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kModel = "models/stories260K/stories260K.gguf";
const char* kPrompts[] = {"Once upon a time", "The little dog", "Lily and Tom went to the park",
                          "One day, a cat", "The sun was", "Tim had a red ball",
                          "There was a big tree", "Sue liked to"};

// A loaded model, a scheduler and the HTTP server on a free loopback port.
class Harness {
 public:
  Harness(const test::Loaded& l, serve::ServeConfig cfg, serve::SchedulerOptions so = {}) {
    cfg.allow_debug_hooks = true;
    server_ = std::make_unique<serve::http::Server>(cfg);
    auto p = server_->bind("127.0.0.1", 0);
    EXPECT_TRUE(p.ok()) << p.status().message();
    port_ = p.ok() ? *p : 0;
    listener_ = std::thread([this] { server_->listen(); });
    so.n_ctx = cfg.ctx;
    so.n_parallel = cfg.parallel;
    so.queue_limit = {cfg.queue_interactive, cfg.queue_normal, cfg.queue_batch};
    auto s = serve::Scheduler::create(*l.model, *l.tok, pool_, so, server_.get());
    EXPECT_TRUE(s.ok()) << s.status().message();
    sched_ = std::move(s).value();
    serve::http::ServedModel sm;
    sm.id = "stories260K";
    sm.has_chat_template = true;  // the vocabulary has no chat tokens; ChatML as plain text works
    server_->attach(sched_.get(), sm);
  }
  ~Harness() {
    sched_.reset();  // ends whatever runs (finish "shutdown"), so every handler can return
    server_->stop();
    listener_.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }
  int port() const { return port_; }
  serve::Scheduler& sched() { return *sched_; }
  serve::http::Server& server() { return *server_; }

 private:
  ThreadPool pool_{2};
  std::unique_ptr<serve::http::Server> server_;
  std::unique_ptr<serve::Scheduler> sched_;
  std::thread listener_;
  int port_ = 0;
};

json completion(const std::string& prompt, int max_tokens, bool stream = false) {
  return {{"model", "stories260K"}, {"prompt", prompt}, {"max_tokens", max_tokens},
          {"temperature", 0}, {"stream", stream}};
}

// The text of a streamed completion (concatenated deltas), its finish_reason, and whether the
// stream ended with [DONE].
struct Streamed {
  std::string text, finish;
  bool done = false;
};
Streamed parse_sse(const std::string& body) {
  Streamed s;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") {
      s.done = true;
      break;
    }
    json j = json::parse(data);
    if (j["choices"].empty()) continue;
    const json& c = j["choices"][0];
    if (c.contains("text")) s.text += c["text"].get<std::string>();
    if (c.contains("delta") && c["delta"].contains("content"))
      s.text += c["delta"]["content"].get<std::string>();
    if (!c["finish_reason"].is_null()) s.finish = c["finish_reason"];
  }
  return s;
}

double metric(const std::string& text, const std::string& sample) {
  const size_t p = text.find("\n" + sample + " ");
  return p == std::string::npos ? -1 : std::stod(text.substr(p + sample.size() + 2));
}

class HttpApi : public ::testing::Test {
 protected:
  void SetUp() override {
    EDGEGLM_REQUIRE_SHARED(kModel);
    loaded_ = test::load(test::shared_path(kModel));
    ASSERT_TRUE(loaded_.model && loaded_.tok);
    cfg_.ctx = 256;
    cfg_.parallel = 4;
  }
  std::string alone(const std::string& prompt, int n) {
    ThreadPool pool(1);
    model::ContextOptions co;
    co.n_ctx = 256;
    auto s = runtime::Session::create(*loaded_.model, *loaded_.tok, co, pool);
    runtime::GenerateOptions g;
    g.max_tokens = n;
    g.sampling.temperature = 0;
    std::vector<int32_t> ids = loaded_.tok->encode(prompt, false, true);
    if (loaded_.tok->add_bos()) ids.insert(ids.begin(), loaded_.tok->bos_id());
    auto r = (*s)->generate(ids, g);
    return r.ok() ? r->text : "<error>";
  }
  test::Loaded loaded_;
  serve::ServeConfig cfg_;
};

}  // namespace

TEST_F(HttpApi, GreedyEqualsEdgeglmRunStreamedOrNot) {
  const std::string cmd = std::string(EDGEGLM_BIN_DIR) + "/edgeglm run -m " +
                          test::shared_path(kModel) + " -p 'Once upon a time' -n 40 --temp 0 2>/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_TRUE(f);
  std::string run_out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) run_out.append(buf, n);
  ASSERT_EQ(pclose(f), 0);
  ASSERT_EQ(run_out.rfind("Once upon a time", 0), 0u);
  const std::string run_text = run_out.substr(16, run_out.size() - 17);  // minus prompt and '\n'
  ASSERT_GT(run_text.size(), 20u);

  Harness h(loaded_, cfg_);
  auto c = h.client();
  auto r = c.Post("/v1/completions", completion("Once upon a time", 40).dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["text"], run_text);
  EXPECT_EQ(j["usage"]["completion_tokens"], 40);
  auto rs = c.Post("/v1/completions", completion("Once upon a time", 40, true).dump(), "application/json");
  ASSERT_TRUE(rs);
  ASSERT_EQ(rs->status, 200);
  EXPECT_EQ(rs->get_header_value("Content-Type"), "text/event-stream");
  Streamed s = parse_sse(rs->body);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, run_text);
  EXPECT_EQ(s.finish, "length");
  // Chat, streamed and whole, agree too.
  json chat = {{"model", "stories260K"}, {"messages", {{{"role", "user"}, {"content", "Tell a story"}}}},
               {"max_tokens", 24}, {"temperature", 0}};
  auto rc = c.Post("/v1/chat/completions", chat.dump(), "application/json");
  chat["stream"] = true;
  auto rcs = c.Post("/v1/chat/completions", chat.dump(), "application/json");
  ASSERT_TRUE(rc && rcs);
  ASSERT_EQ(rc->status, 200) << rc->body;
  EXPECT_EQ(json::parse(rc->body)["choices"][0]["message"]["content"], parse_sse(rcs->body).text);
}

TEST_F(HttpApi, SixteenConcurrentClientsAllComplete) {
  std::vector<std::string> want;
  for (int i = 0; i < 16; ++i) want.push_back(alone(kPrompts[i % 8], 32 + i));
  Harness h(loaded_, cfg_);
  std::vector<std::string> got(16);
  std::vector<int> status(16);
  std::vector<std::thread> ts;
  for (int i = 0; i < 16; ++i)
    ts.emplace_back([&, i] {
      auto c = h.client();
      auto r = c.Post("/v1/completions", completion(kPrompts[i % 8], 32 + i, i % 2).dump(), "application/json");
      if (!r) {
        got[size_t(i)] = "client error " + httplib::to_string(r.error()) + " stream=" + std::to_string(i % 2);
        return;
      }
      status[size_t(i)] = r->status;
      got[size_t(i)] = i % 2 ? parse_sse(r->body).text : json::parse(r->body)["choices"][0]["text"].get<std::string>();
    });
  for (auto& t : ts) t.join();
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(status[size_t(i)], 200) << i;
    EXPECT_EQ(got[size_t(i)], want[size_t(i)]) << "client " << i;
  }
  const serve::SchedulerStats st = h.sched().stats();
  EXPECT_LT(st.steps, st.generated_tokens);  // sequences shared steps
}

TEST_F(HttpApi, FullQueueIs503WithRetryAfter) {
  cfg_.parallel = 1;
  cfg_.queue_normal = 1;
  Harness h(loaded_, cfg_);
  auto c = h.client();
  ASSERT_EQ(c.Post("/debug/stall?ms=1500", "", "text/plain")->status, 200);
  std::vector<int> status(4);
  std::vector<std::string> retry(4), body(4);
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&, i] {
      auto cl = h.client();
      auto r = cl.Post("/v1/completions", completion("Once", 4).dump(), "application/json");
      if (!r) return;
      status[size_t(i)] = r->status, retry[size_t(i)] = r->get_header_value("Retry-After"), body[size_t(i)] = r->body;
    });
  for (auto& t : ts) t.join();
  int ok = 0, busy = 0;
  for (int i = 0; i < 4; ++i) {
    if (status[size_t(i)] == 200) ++ok;
    if (status[size_t(i)] == 503) {
      ++busy;
      EXPECT_GE(std::stoi(retry[size_t(i)]), 1);
      EXPECT_EQ(json::parse(body[size_t(i)])["error"]["type"], "overloaded_error");
      EXPECT_EQ(json::parse(body[size_t(i)])["error"]["code"], "queue_full");
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 2);  // one may run, one may queue: the rest are refused
  EXPECT_EQ(ok + busy, 4);
  auto m = c.Get("/metrics");
  EXPECT_GE(metric(m->body, "edgeglm_rejections_total{reason=\"queue_full\"}"), 2);
}

TEST_F(HttpApi, ClientThatHangsUpFreesItsSlot) {
  cfg_.ctx = 4096;
  cfg_.max_tokens_limit = 4096;
  Harness h(loaded_, cfg_);
  json req = completion("Once upon a time", 4000, true);
  req["ignore_eos"] = true;
  const std::string body = req.dump();
  const std::string msg = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(h.port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(write(fd, msg.data(), msg.size()), ssize_t(msg.size()));
  char buf[512];
  ASSERT_GT(read(fd, buf, sizeof buf), 0);  // the stream has started
  close(fd);
  const auto t0 = serve::Clock::now();
  auto c = h.client();
  std::string m;
  while (serve::Clock::now() - t0 < 3s) {
    m = c.Get("/metrics")->body;
    if (metric(m, "edgeglm_requests_finished_total{priority=\"normal\",finish_reason=\"cancelled\"}") == 1) break;
    std::this_thread::sleep_for(20ms);
  }
  const double ms = std::chrono::duration<double, std::milli>(serve::Clock::now() - t0).count();
  EXPECT_EQ(metric(m, "edgeglm_requests_finished_total{priority=\"normal\",finish_reason=\"cancelled\"}"), 1) << m;
  EXPECT_EQ(metric(m, "edgeglm_active_sequences{priority=\"normal\"}"), 0);
  EXPECT_EQ(metric(m, "edgeglm_kv_cache_bytes_reserved"), 0);
  EXPECT_LT(ms, 2000) << "slot freed " << ms << " ms after the hang-up";
  std::printf("slot freed %.0f ms after the client hung up\n", ms);
}

TEST_F(HttpApi, DeadlineEndsWithTimeout) {
  Harness h(loaded_, cfg_);
  auto c = h.client();
  json req = completion("Once upon a time", 200);
  req["timeout"] = 0.3;
  ASSERT_EQ(c.Post("/debug/stall?ms=1000", "", "text/plain")->status, 200);
  auto r = c.Post("/v1/completions", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["choices"][0]["finish_reason"], "timeout");
}

TEST_F(HttpApi, KeysAreRequiredAndReloaded) {
  cfg_.api_keys = {{"key-one-0123456789", "interactive"}};
  Harness h(loaded_, cfg_);
  auto c = h.client();
  const std::string body = completion("Once", 3).dump();
  auto r = c.Post("/v1/completions", body, "application/json");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "authentication_error");
  EXPECT_EQ(c.Post("/v1/completions", {{"Authorization", "Bearer key-one-0123456789"}}, body, "application/json")->status, 200);
  EXPECT_EQ(c.Post("/v1/completions", {{"Authorization", "Bearer key-one-012345678X"}}, body, "application/json")->status, 401);
  EXPECT_EQ(c.Get("/health")->status, 200);  // health and metrics need no key
  serve::ServeConfig next = cfg_;
  next.api_keys = {{"key-two-0123456789", "batch"}};
  h.server().reload(next);
  EXPECT_EQ(c.Post("/v1/completions", {{"Authorization", "Bearer key-one-0123456789"}}, body, "application/json")->status, 401);
  EXPECT_EQ(c.Post("/v1/completions", {{"Authorization", "Bearer key-two-0123456789"}}, body, "application/json")->status, 200);
  // The key's class is the default priority.
  auto m = c.Get("/metrics")->body;
  EXPECT_EQ(metric(m, "edgeglm_requests_total{status=\"200\",priority=\"batch\"}"), 1) << m;
  EXPECT_EQ(metric(m, "edgeglm_requests_total{status=\"200\",priority=\"interactive\"}"), 1);
}

TEST_F(HttpApi, BadRequestsAreOpenAiErrors) {
  cfg_.body_limit_bytes = 2048;
  Harness h(loaded_, cfg_);
  auto c = h.client();
  auto big = c.Post("/v1/completions", completion(std::string(4000, 'a'), 4).dump(), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(json::parse(big->body)["error"]["type"], "invalid_request_error");
  json wrong = completion("Once", 4);
  wrong["model"] = "gpt-4";
  auto r = c.Post("/v1/completions", wrong.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "model_not_found");
  auto wm = c.Delete("/v1/completions");
  EXPECT_EQ(wm->status, 405);
  EXPECT_EQ(wm->get_header_value("Allow"), "POST");
  json both = completion("Once", 4);
  both["priority"] = "batch";
  auto bad_header = c.Post("/v1/completions", {{"X-Priority", "urgent"}}, both.dump(), "application/json");
  EXPECT_EQ(bad_header->status, 400);  // a bad header is refused even when the body names a class
  json tiny = completion("Once", 4);
  tiny["top_p"] = 1e-46;  // below float's range, still > 0: keeps the single most likely token
  EXPECT_EQ(c.Post("/v1/completions", tiny.dump(), "application/json")->status, 200);
  auto nf = c.Get("/v1/nothing");
  EXPECT_EQ(nf->status, 404);
  EXPECT_EQ(json::parse(nf->body)["error"]["type"], "not_found_error");
  // A prompt longer than the context: 400 naming the limit; the server keeps serving.
  std::string longp;
  for (int i = 0; i < 150; ++i) longp += "cat dog ";
  r = c.Post("/v1/completions", completion(longp, 4).dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "prompt_too_long");
  EXPECT_EQ(c.Post("/v1/completions", completion("Once", 4).dump(), "application/json")->status, 200);
}

TEST_F(HttpApi, StalledEngineFailsHealthUntilItMovesAgain) {
  serve::SchedulerOptions so;
  so.stall_limit_s = 0.3;
  Harness h(loaded_, cfg_, so);
  auto c = h.client();
  EXPECT_EQ(c.Get("/health")->status, 200);
  ASSERT_EQ(c.Post("/debug/stall?ms=1500", "", "text/plain")->status, 200);
  std::thread req([&] { h.client().Post("/v1/completions", completion("Once", 8).dump(), "application/json"); });
  bool saw_503 = false;
  for (auto t0 = serve::Clock::now(); serve::Clock::now() - t0 < 1400ms && !saw_503;) {
    auto r = c.Get("/health");
    if (r->status == 503) {
      saw_503 = true;
      EXPECT_EQ(json::parse(r->body)["status"], "stalled");
    }
    std::this_thread::sleep_for(50ms);
  }
  req.join();
  EXPECT_TRUE(saw_503);
  EXPECT_EQ(c.Get("/health")->status, 200);
}

TEST_F(HttpApi, InteractiveFirstTokenStaysFastUnderBatchLoad) {
  cfg_.parallel = 2;
  cfg_.ctx = 2048;
  Harness h(loaded_, cfg_);
  std::atomic<int> batch_ok{0};
  std::vector<std::thread> load;
  for (int i = 0; i < 6; ++i)
    load.emplace_back([&, i] {
      json req = completion(kPrompts[i], 1500);
      req["ignore_eos"] = true;
      req["priority"] = "batch";
      auto r = h.client().Post("/v1/completions", req.dump(), "application/json");
      if (r && r->status == 200) ++batch_ok;
    });
  std::this_thread::sleep_for(300ms);  // both slots busy with batch work, four queued
  std::vector<double> ttft;
  for (int k = 0; k < 5; ++k) {
    json req = completion("The little dog", 8, true);
    const auto t0 = serve::Clock::now();
    double first = -1;
    std::string acc;
    auto c = h.client();
    auto r = c.Post("/v1/completions", {{"X-Priority", "interactive"}}, req.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    first = std::chrono::duration<double>(serve::Clock::now() - t0).count();  // whole answer, an upper bound
    ttft.push_back(first);
  }
  for (auto& t : load) t.join();
  EXPECT_EQ(batch_ok.load(), 6);  // batch requests still complete
  std::sort(ttft.begin(), ttft.end());
  std::printf("interactive (8-token answer) under batch load: median %.3f s, max %.3f s\n", ttft[2], ttft[4]);
  EXPECT_LT(ttft[4], 1.0);
  auto m = h.client().Get("/metrics")->body;
  EXPECT_GE(metric(m, "edgeglm_preemptions_total{priority=\"batch\"}"), 1);
}
