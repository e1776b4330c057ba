// The HTTP adapter of `edgeglm serve`: OpenAI-compatible routes over cpp-httplib, translating
// requests into scheduler Requests and channel events into JSON or server-sent events. It owns no
// engine state; the Scheduler (attached once the model is loaded) does. Until then /health says
// "loading" (503) and the API answers 503.
//
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
// GET /metrics, and with allow_debug_hooks POST /debug/stall?ms=N (the engine stops stepping for
// N ms: how tests wedge it). docs/openapi.yaml is the contract.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "serve/config.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "tokenizer/chat_template.h"

namespace httplib {
class Server;
}

namespace edgeglm::serve::http {

struct ServedModel {
  std::string id;                        // what /v1/models reports and requests must name
  int64_t created = 0;                   // unix seconds (the model file's mtime)
  bool has_chat_template = false;
  tokenizer::ChatTemplate chat_template = tokenizer::ChatTemplate::kChatML;
  std::string default_system;            // the template's own system prompt, if any
};

class Server : public SchedulerObserver {
 public:
  explicit Server(const ServeConfig& config);
  ~Server() override;

  // Binds host:port (port 0: any free port); returns the port bound.
  Result<int> bind(const std::string& host, int port);
  // Serves until stop(); returns after every in-flight handler has finished.
  void listen();
  // Stops accepting connections; in-flight handlers run on (the scheduler's drain ends them).
  void stop();

  // The model is loaded: requests go to `scheduler` from now on.
  void attach(Scheduler* scheduler, ServedModel model);
  // SIGHUP: new API keys, request limits and queue sizes (not the body limit, nor anything the
  // engine was built with); running requests are not touched.
  void reload(const ServeConfig& config);

  MetricsRegistry& metrics() { return metrics_; }

  // SchedulerObserver (metrics)
  void on_rejected(Priority p, Rejection r) override;
  void on_first_token(Priority p, double ttft_s) override;
  void on_finished(Priority p, const Event& done) override;
  void on_preempted(Priority p) override;
  void on_step(int64_t n_seq, int64_t n_tokens, double seconds) override;

 private:
  struct Metrics;
  void routes();
  std::shared_ptr<const ServeConfig> config() const;

  std::unique_ptr<httplib::Server> http_;
  mutable std::mutex config_mu_;
  std::shared_ptr<const ServeConfig> config_;
  std::atomic<Scheduler*> scheduler_{nullptr};
  ServedModel model_;                    // written once by attach, before scheduler_ is set
  MetricsRegistry metrics_;
  std::unique_ptr<Metrics> m_;
  std::atomic<uint64_t> next_id_{0};
};

}  // namespace edgeglm::serve::http
