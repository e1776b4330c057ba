// The serving core (house rule 12: no HTTP types here). One engine thread owns the model context
// and its KV slots; requests enter bounded per-priority queues through submit() and come back as
// events through their own Channel.
//
// Each engine step runs one batched forward pass over every active sequence (continuous batching:
// the weights are read once per step however many sequences decode) plus chunks of pending
// prompts, at most `ubatch` tokens in all, so a long prompt never stalls the decodes beside it.
// Admission is strict by priority class; an interactive request that finds every slot busy may
// preempt a batch sequence, which goes back to the head of its queue with its tokens and sampler
// state and is recomputed when it resumes: its output continues exactly as if never interrupted.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::serve {

using Clock = std::chrono::steady_clock;

enum class Priority : int { kInteractive = 0, kNormal = 1, kBatch = 2 };
inline constexpr int kNumPriorities = 3;
const char* priority_name(Priority p);  // "interactive" | "normal" | "batch"
bool parse_priority(std::string_view name, Priority* out);

// How a request ended. The names are OpenAI's finish_reason values where one exists.
enum class Finish { kStop, kLength, kContextFull, kDeadline, kCancelled, kShutdown, kError };
// "stop", "length", "length" (context full), "timeout", "cancelled", "shutdown", "error"
const char* finish_name(Finish f);

struct Request {
  std::vector<int32_t> prompt;           // tokens, template and BOS already applied
  int32_t max_tokens = 128;              // < 0: until the context is full
  runtime::SamplerParams sampling;
  std::vector<std::string> stop;         // stop strings (never part of the text)
  bool ignore_eos = false;
  Priority priority = Priority::kNormal;
  Clock::time_point deadline = Clock::time_point::max();
};

struct Event {
  enum class Kind { kText, kDone };
  Kind kind = Kind::kText;
  std::string text;                      // kText: the next piece of output
  // kDone:
  Finish finish = Finish::kStop;
  std::string error;                     // Finish::kError: what failed
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int32_t preemptions = 0;               // times the sequence was preempted and resumed
  double queue_ms = 0;                   // submit -> first admitted to a slot
  double ttft_ms = -1;                   // submit -> first token sampled (-1: none)
  double total_ms = 0;                   // submit -> done
};

// One request's way back: the engine pushes events, the caller pops them.
class Channel {
 public:
  // Waits up to `timeout` for the next event; false if none came.
  bool next(Event* ev, std::chrono::milliseconds timeout);
  // The client is gone: the engine drops the request at its next step and frees its slot.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  // A consumer that only wants the whole answer (a non-streamed response) is woken by the final
  // event alone, not once per token: on a 2-core board the wake-ups compete with the engine.
  void wake_on_done_only(bool on) { done_only_.store(on); }

 private:
  friend class Scheduler;
  void push(Event ev);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> done_only_{false};
};

enum class Rejection { kNone, kQueueFull, kPromptTooLong, kTooLarge, kInvalid, kDraining };
const char* rejection_name(Rejection r);  // metric label: "queue_full", "prompt_too_long", ...

struct Admission {
  std::shared_ptr<Channel> channel;      // null when rejected
  Rejection rejection = Rejection::kNone;
  std::string message;
  int retry_after_s = 0;                 // kQueueFull / kDraining: when to try again
};

struct SchedulerOptions {
  int32_t n_parallel = 4;                // sequences decoding at once (KV slots)
  int64_t n_ctx = 2048;                  // positions per slot
  int64_t ubatch = 64;                   // tokens per engine step (decodes + prompt chunks)
  DType kv_type = DType::F16;
  size_t kv_budget_bytes = 0;            // KV reserved by admitted requests at most (0: slots only)
  std::array<int32_t, kNumPriorities> queue_limit = {16, 64, 256};
  bool preempt = true;                   // interactive may preempt batch
  double stall_limit_s = 30;             // busy without a step for longer: unhealthy
};

// Callbacks for metrics; called on the engine thread except on_rejected (the submitting thread).
class SchedulerObserver {
 public:
  virtual ~SchedulerObserver() = default;
  virtual void on_rejected(Priority, Rejection) {}
  virtual void on_first_token(Priority, double ttft_s) {}
  virtual void on_finished(Priority, const Event& done) {}
  virtual void on_preempted(Priority) {}
  virtual void on_step(int64_t n_seq, int64_t n_tokens, double seconds) {}
};

struct SchedulerStats {
  std::array<int64_t, kNumPriorities> queued{};
  std::array<int64_t, kNumPriorities> active{};
  int32_t n_parallel = 0;
  size_t kv_bytes_in_use = 0;            // positions held by active sequences
  size_t kv_bytes_reserved = 0;          // what admission has promised them
  size_t kv_budget_bytes = 0;
  int64_t prompt_tokens = 0;             // evaluated (recomputation after preemption included)
  int64_t generated_tokens = 0;
  int64_t steps = 0;
  int64_t preemptions = 0;
  double decode_tok_per_s = 0;           // generated tokens per second over the last few seconds
  double seconds_since_progress = 0;     // since the last step (0 when idle)
  bool draining = false;
};

struct Health {
  bool ok = true;
  std::string status;                    // "ok" | "stalled" | "draining"
  std::string reason;
  int64_t active = 0, queued = 0;
  double seconds_since_progress = 0;
};

class Scheduler {
 public:
  // Starts the engine thread. The model, tokenizer, pool and observer must outlive it.
  static Result<std::unique_ptr<Scheduler>> create(const model::Model& model,
                                                   const tokenizer::Tokenizer& tok,
                                                   ThreadPool& pool, const SchedulerOptions& opts,
                                                   SchedulerObserver* observer = nullptr);
  ~Scheduler();  // cancels everything still running (Finish::kShutdown) and joins the engine

  Admission submit(Request req);

  const tokenizer::Tokenizer& tokenizer() const { return tok_; }
  const SchedulerOptions& options() const { return opts_; }
  int64_t max_prompt_tokens() const { return opts_.n_ctx - 1; }
  SchedulerStats stats() const;
  // Healthy when idle, or when the engine finished a step within the stall limit.
  Health health() const;
  void set_queue_limits(const std::array<int32_t, kNumPriorities>& limits);

  // Graceful shutdown: refuse new requests, wait for the running and queued ones until
  // `deadline`, then end the rest with Finish::kShutdown. Returns how many were cut short.
  int drain(Clock::time_point deadline);
  // Test hook: the engine thread stops stepping for `d` (a wedged decode, for the health check).
  void stall_for(std::chrono::milliseconds d);

 private:
  struct Sequence;
  Scheduler(const model::Model& m, const tokenizer::Tokenizer& t, ThreadPool& p,
            const SchedulerOptions& o, SchedulerObserver* obs);
  void run();
  bool admit_locked(Clock::time_point now);
  bool preempt_for_locked();  // frees the slot of the batch sequence admitted last
  void expire_locked(Clock::time_point now);
  void step();
  void sample_and_emit(Sequence& s, const float* logits, Clock::time_point now);
  void finish_active(size_t i, Finish f, const std::string& error = "");
  void finish(Sequence& s, Finish f, const std::string& error);
  size_t kv_need(const Sequence& s) const;

  const model::Model& model_;
  const tokenizer::Tokenizer& tok_;
  ThreadPool& pool_;
  SchedulerOptions opts_;
  SchedulerObserver* observer_;
  std::unique_ptr<model::Context> ctx_;  // engine thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;           // wakes the engine: new work, drain, stop
  std::condition_variable idle_cv_;      // wakes drain(): work finished
  std::array<std::deque<std::unique_ptr<Sequence>>, kNumPriorities> queue_;  // under mu_
  std::vector<std::unique_ptr<Sequence>> active_;  // under mu_ (the engine also reads it unlocked)
  std::vector<int32_t> free_slots_;      // under mu_
  size_t kv_reserved_ = 0;               // under mu_
  bool draining_ = false, shutdown_ = false, stop_ = false;  // under mu_
  std::array<int32_t, kNumPriorities> queue_limit_;          // under mu_

  std::atomic<int64_t> prompt_tokens_{0}, generated_tokens_{0}, steps_{0}, preemptions_{0};
  std::atomic<int64_t> last_progress_ns_{0};  // steady clock of the last step (or of going idle)
  std::atomic<int64_t> stall_until_ns_{0};
  std::atomic<double> tok_per_s_{0};
  double rate_window_start_ = 0;         // engine thread: tokens/s over a sliding window
  int64_t rate_window_tokens_ = 0;
  std::atomic<size_t> kv_in_use_{0};
  uint64_t admit_counter_ = 0;           // under mu_
  struct Part {                          // one sequence's share of a step
    Sequence* s;
    int64_t n;                           // tokens fed
    int64_t row;                         // logits row, -1 if none
  };
  std::vector<Part> parts_;              // engine thread: the step being built
  std::vector<model::BatchToken> batch_;
  std::thread engine_;
};

}  // namespace edgeglm::serve
