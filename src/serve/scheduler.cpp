#include "serve/scheduler.h"

#include <algorithm>

#include "runtime/text_stream.h"

namespace edgeglm::serve {

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
Event text_event(std::string text) {
  Event ev;
  ev.text = std::move(text);
  return ev;
}
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
// The tokens/s gauge averages over at least this long, so it does not jump per step.
constexpr double kRateWindowS = 2.0;
}  // namespace

const char* priority_name(Priority p) {
  switch (p) {
    case Priority::kInteractive: return "interactive";
    case Priority::kNormal: return "normal";
    case Priority::kBatch: return "batch";
  }
  return "?";
}

bool parse_priority(std::string_view name, Priority* out) {
  for (int p = 0; p < kNumPriorities; ++p)
    if (name == priority_name(Priority(p))) return *out = Priority(p), true;
  return false;
}

const char* finish_name(Finish f) {
  switch (f) {
    case Finish::kStop: return "stop";
    case Finish::kLength:
    case Finish::kContextFull: return "length";
    case Finish::kDeadline: return "timeout";
    case Finish::kCancelled: return "cancelled";
    case Finish::kShutdown: return "shutdown";
    case Finish::kError: return "error";
  }
  return "?";
}

const char* rejection_name(Rejection r) {
  switch (r) {
    case Rejection::kNone: return "none";
    case Rejection::kQueueFull: return "queue_full";
    case Rejection::kPromptTooLong: return "prompt_too_long";
    case Rejection::kTooLarge: return "kv_budget";
    case Rejection::kInvalid: return "invalid";
    case Rejection::kDraining: return "draining";
  }
  return "?";
}

bool Channel::next(Event* ev, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
  *ev = std::move(events_.front());
  events_.pop_front();
  return true;
}

void Channel::push(Event ev) {
  const bool wake = ev.kind == Event::Kind::kDone || !done_only_.load();
  {
    std::lock_guard lk(mu_);
    events_.push_back(std::move(ev));
  }
  if (wake) cv_.notify_one();
}

// A request from submit() to its last event. `tokens` is what the slot's KV cache should hold:
// the prompt and every token generated so far; the first n_cached of them are in the cache, the
// rest are fed by the next steps (all of them after admission or preemption, one when decoding).
struct Scheduler::Sequence {
  Sequence(int64_t n_vocab, Request r)
      : req(std::move(r)), sampler(n_vocab, req.sampling), stream(req.stop) {}
  std::shared_ptr<Channel> ch = std::make_shared<Channel>();
  Request req;
  runtime::Sampler sampler;  // kept across preemption: the draw sequence continues unchanged
  runtime::TextStream stream;
  std::vector<int32_t> tokens;
  int64_t n_prompt = 0;
  int64_t n_cached = 0;
  int32_t n_generated = 0;
  int32_t slot = -1;
  size_t kv_reserved = 0;
  int32_t preemptions = 0;
  uint64_t admit_order = 0;
  bool admitted_once = false, has_first = false;
  Clock::time_point submitted, admitted;
  double ttft_ms = -1;
};

Scheduler::Scheduler(const model::Model& m, const tokenizer::Tokenizer& t, ThreadPool& p,
                     const SchedulerOptions& o, SchedulerObserver* obs)
    : model_(m), tok_(t), pool_(p), opts_(o), observer_(obs) {}

Result<std::unique_ptr<Scheduler>> Scheduler::create(const model::Model& model,
                                                     const tokenizer::Tokenizer& tok,
                                                     ThreadPool& pool, const SchedulerOptions& opts,
                                                     SchedulerObserver* observer) {
  if (opts.n_parallel < 1 || opts.n_parallel > 256)
    return Status::error("parallel sequences " + std::to_string(opts.n_parallel) +
                         " out of range (1..256)");
  if (opts.ubatch < 1) return Status::error("ubatch must be at least 1");
  for (int32_t q : opts.queue_limit)
    if (q < 0) return Status::error("queue limits must be >= 0");
  if (tok.n_vocab() > model.config().n_vocab)
    return Status::error("tokenizer has " + std::to_string(tok.n_vocab()) +
                         " tokens but the model's vocabulary is " +
                         std::to_string(model.config().n_vocab));
  std::unique_ptr<Scheduler> s(new Scheduler(model, tok, pool, opts, observer));
  model::ContextOptions co;
  co.n_ctx = opts.n_ctx;
  co.n_ubatch = std::max<int64_t>(opts.ubatch, opts.n_parallel);
  co.n_seq = opts.n_parallel;
  co.kv_type = opts.kv_type;
  EG_ASSIGN_OR_RETURN(s->ctx_, model::Context::create(model, co, pool));
  if (opts.kv_budget_bytes && opts.kv_budget_bytes < s->ctx_->kv_bytes_per_position() * 2)
    return Status::error("KV budget of " + std::to_string(opts.kv_budget_bytes) +
                         " bytes holds less than two positions of this model");
  s->opts_.ubatch = co.n_ubatch;
  s->queue_limit_ = opts.queue_limit;
  for (int32_t i = opts.n_parallel - 1; i >= 0; --i) s->free_slots_.push_back(i);
  s->batch_.reserve(size_t(co.n_ubatch));
  s->last_progress_ns_ = now_ns();
  s->engine_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    shutdown_ = true;
  }
  cv_.notify_all();
  if (engine_.joinable()) engine_.join();
}

size_t Scheduler::kv_need(const Sequence& s) const {
  const int64_t gen = s.req.max_tokens < 0 ? opts_.n_ctx : s.req.max_tokens;
  const int64_t pos = std::min<int64_t>(opts_.n_ctx, s.n_prompt + gen);
  return size_t(pos) * ctx_->kv_bytes_per_position();
}

Admission Scheduler::submit(Request req) {
  Admission a;
  const Priority prio = req.priority;
  auto reject = [&](Rejection r, std::string msg, int retry = 0) {
    a.rejection = r;
    a.message = std::move(msg);
    a.retry_after_s = retry;
    if (observer_) observer_->on_rejected(prio, r);
    return a;
  };
  if (req.prompt.empty()) return reject(Rejection::kInvalid, "empty prompt");
  if (int64_t(req.prompt.size()) > max_prompt_tokens())
    return reject(Rejection::kPromptTooLong,
                  "prompt of " + std::to_string(req.prompt.size()) +
                      " tokens does not fit the context of " + std::to_string(opts_.n_ctx) +
                      " positions (at most " + std::to_string(max_prompt_tokens()) + ")");
  for (int32_t t : req.prompt)
    if (t < 0 || t >= model_.config().n_vocab)
      return reject(Rejection::kInvalid, "token id " + std::to_string(t) + " is outside the vocabulary");
  if (Status st = req.sampling.validate(); !st.is_ok()) return reject(Rejection::kInvalid, st.message());
  auto seq = std::make_unique<Sequence>(model_.config().n_vocab, std::move(req));
  seq->tokens = seq->req.prompt;
  seq->n_prompt = int64_t(seq->tokens.size());
  seq->submitted = Clock::now();
  if (opts_.kv_budget_bytes && kv_need(*seq) > opts_.kv_budget_bytes)
    return reject(Rejection::kTooLarge,
                  "prompt + max_tokens need " + std::to_string(kv_need(*seq) >> 10) +
                      " KiB of KV cache; the budget is " +
                      std::to_string(opts_.kv_budget_bytes >> 10) + " KiB (lower max_tokens)");
  std::unique_lock lk(mu_);
  if (draining_) {
    lk.unlock();
    return reject(Rejection::kDraining, "the server is shutting down", 5);
  }
  auto& q = queue_[size_t(prio)];
  if (int64_t(q.size()) >= queue_limit_[size_t(prio)]) {
    // A rough wait: the work ahead of this request divided among the slots, at the recent pace.
    const double tps = std::max(1.0, tok_per_s_.load());
    double ahead = 0;
    for (const auto& s : q) ahead += s->req.max_tokens < 0 ? 256 : s->req.max_tokens;
    const int retry = int(std::clamp(ahead / tps, 1.0, 60.0));
    lk.unlock();
    return reject(Rejection::kQueueFull,
                  std::string("the ") + priority_name(prio) + " queue is full (" +
                      std::to_string(queue_limit_[size_t(prio)]) + " requests)",
                  retry);
  }
  a.channel = seq->ch;
  q.push_back(std::move(seq));
  lk.unlock();
  cv_.notify_all();
  return a;
}

void Scheduler::set_queue_limits(const std::array<int32_t, kNumPriorities>& limits) {
  std::lock_guard lk(mu_);
  queue_limit_ = limits;
}

void Scheduler::finish(Sequence& s, Finish f, const std::string& error) {
  std::string tail = s.stream.flush();
  if (!tail.empty()) s.ch->push(text_event(std::move(tail)));
  const Clock::time_point now = Clock::now();
  Event done;
  done.kind = Event::Kind::kDone;
  done.finish = f;
  done.error = error;
  done.prompt_tokens = s.n_prompt;
  done.completion_tokens = s.n_generated;
  done.preemptions = s.preemptions;
  done.queue_ms = s.admitted_once ? ms_between(s.submitted, s.admitted) : ms_between(s.submitted, now);
  done.ttft_ms = s.ttft_ms;
  done.total_ms = ms_between(s.submitted, now);
  if (observer_) observer_->on_finished(s.req.priority, done);
  s.ch->push(std::move(done));
  if (s.slot >= 0) {
    ctx_->release(s.slot);
    free_slots_.push_back(s.slot);
    kv_reserved_ -= s.kv_reserved;
    s.slot = -1;
    s.kv_reserved = 0;
  }
}

void Scheduler::finish_active(size_t i, Finish f, const std::string& error) {
  finish(*active_[i], f, error);
  active_.erase(active_.begin() + int64_t(i));
}

void Scheduler::expire_locked(Clock::time_point now) {
  for (auto& q : queue_)
    for (size_t i = 0; i < q.size();) {
      Sequence& s = *q[i];
      const bool cancelled = s.ch->cancelled();
      if (cancelled || now >= s.req.deadline) {
        finish(s, cancelled ? Finish::kCancelled : Finish::kDeadline, "");
        q.erase(q.begin() + int64_t(i));
      } else {
        ++i;
      }
    }
  for (size_t i = 0; i < active_.size();) {
    Sequence& s = *active_[i];
    if (s.ch->cancelled()) finish_active(i, Finish::kCancelled);
    else if (now >= s.req.deadline) finish_active(i, Finish::kDeadline);
    else ++i;
  }
}

bool Scheduler::preempt_for_locked() {
  // The batch sequence admitted last has the least work to recompute.
  size_t victim = active_.size();
  for (size_t i = 0; i < active_.size(); ++i)
    if (active_[i]->req.priority == Priority::kBatch &&
        (victim == active_.size() || active_[i]->admit_order > active_[victim]->admit_order))
      victim = i;
  if (victim == active_.size()) return false;
  std::unique_ptr<Sequence> s = std::move(active_[victim]);
  active_.erase(active_.begin() + int64_t(victim));
  ctx_->release(s->slot);
  free_slots_.push_back(s->slot);
  kv_reserved_ -= s->kv_reserved;
  s->slot = -1;
  s->kv_reserved = 0;
  s->n_cached = 0;  // recomputed from its tokens when it resumes
  ++s->preemptions;
  ++preemptions_;
  if (observer_) observer_->on_preempted(s->req.priority);
  queue_[size_t(Priority::kBatch)].push_front(std::move(s));
  return true;
}

bool Scheduler::admit_locked(Clock::time_point now) {
  bool any = false;
  for (int p = 0; p < kNumPriorities; ++p) {
    auto& q = queue_[size_t(p)];
    while (!q.empty()) {
      Sequence& s = *q.front();
      const size_t need = kv_need(s);
      const bool fits = opts_.kv_budget_bytes == 0 || kv_reserved_ + need <= opts_.kv_budget_bytes;
      if (!free_slots_.empty() && fits) {
        if (active_.empty()) last_progress_ns_ = now_ns();  // busy from now: the stall clock starts
        s.slot = free_slots_.back();
        free_slots_.pop_back();
        s.kv_reserved = need;
        kv_reserved_ += need;
        s.admit_order = ++admit_counter_;
        if (!s.admitted_once) s.admitted_once = true, s.admitted = now;
        active_.push_back(std::move(q.front()));
        q.pop_front();
        any = true;
        continue;
      }
      // Strict priority: nothing of a lower class is admitted past a waiting higher one.
      if (Priority(p) == Priority::kInteractive && opts_.preempt && preempt_for_locked()) continue;
      return any;
    }
  }
  return any;
}

void Scheduler::sample_and_emit(Sequence& s, const float* logits, Clock::time_point now) {
  const int32_t id = s.sampler.sample(logits, s.tokens);
  if (!s.has_first) {
    s.has_first = true;
    s.ttft_ms = ms_between(s.submitted, now);
    if (observer_) observer_->on_first_token(s.req.priority, s.ttft_ms / 1000.0);
  }
  if (!s.req.ignore_eos && tok_.is_eog(id)) return finish(s, Finish::kStop, "");
  const int32_t prev = s.tokens.back();
  s.tokens.push_back(id);
  ++s.n_generated;
  ++generated_tokens_;
  ++rate_window_tokens_;
  std::string text = s.stream.push(tok_.piece_after(prev, id));
  if (!text.empty()) s.ch->push(text_event(std::move(text)));
  if (s.stream.stopped()) return finish(s, Finish::kStop, "");
  if (s.req.max_tokens >= 0 && s.n_generated >= s.req.max_tokens) return finish(s, Finish::kLength, "");
  // The new token would be fed at position tokens.size() - 1.
  if (int64_t(s.tokens.size()) > opts_.n_ctx) return finish(s, Finish::kContextFull, "");
}

void Scheduler::step() {
  // Build the batch: one token for every decoding sequence first, then prompt chunks, each in
  // priority order, up to `ubatch` tokens. Sequences are only added or removed under mu_ by this
  // thread, so reading active_ here unlocked is safe.
  std::vector<Part>& parts = parts_;
  parts.clear();
  batch_.clear();
  int64_t budget = opts_.ubatch, rows = 0, n_prefill = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (int p = 0; p < kNumPriorities; ++p)
      for (auto& sp : active_) {
        Sequence& s = *sp;
        const int64_t pending = int64_t(s.tokens.size()) - s.n_cached;
        if (s.req.priority != Priority(p) || (pass == 0) != (pending == 1) || budget == 0) continue;
        const int64_t n = std::min(pending, budget);
        const bool last = n == pending;
        for (int64_t j = 0; j < n; ++j)
          batch_.push_back({s.tokens[size_t(s.n_cached + j)], s.slot, last && j + 1 == n});
        parts.push_back({&s, n, last ? rows++ : -1});
        budget -= n;
        if (pass == 1) n_prefill += n;
      }
  if (batch_.empty()) return;
  const Clock::time_point t0 = Clock::now();
  Status st = ctx_->decode_batch(batch_.data(), int64_t(batch_.size()));
  const Clock::time_point now = Clock::now();
  std::lock_guard lk(mu_);
  if (!st.is_ok()) {
    for (const Part& part : parts)
      for (size_t i = 0; i < active_.size(); ++i)
        if (active_[i].get() == part.s) {
          finish_active(i, Finish::kError, st.message());
          break;
        }
    return;
  }
  for (const Part& part : parts) part.s->n_cached += part.n;
  for (const Part& part : parts)
    if (part.row >= 0) sample_and_emit(*part.s, ctx_->logits(part.row), now);
  // Sequences finished by sampling no longer hold a slot: drop them from active_.
  for (size_t i = 0; i < active_.size();)
    if (active_[i]->slot < 0) active_.erase(active_.begin() + int64_t(i));
    else ++i;
  prompt_tokens_ += n_prefill;
  ++steps_;
  last_progress_ns_ = now_ns();
  kv_in_use_ = ctx_->kv_bytes_in_use();
  const double t = std::chrono::duration<double>(now.time_since_epoch()).count();
  if (rate_window_start_ == 0) rate_window_start_ = t;
  if (t - rate_window_start_ >= kRateWindowS) {
    tok_per_s_ = double(rate_window_tokens_) / (t - rate_window_start_);
    rate_window_start_ = t;
    rate_window_tokens_ = 0;
  }
  if (observer_)
    observer_->on_step(int64_t(parts.size()), int64_t(batch_.size()),
                       std::chrono::duration<double>(now - t0).count());
}

void Scheduler::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] {
      if (stop_ || shutdown_ || !active_.empty()) return true;
      for (const auto& q : queue_)
        if (!q.empty()) return true;
      return false;
    });
    if (shutdown_) {
      while (!active_.empty()) finish_active(active_.size() - 1, Finish::kShutdown);
      for (auto& q : queue_) {
        for (auto& s : q) finish(*s, Finish::kShutdown, "");
        q.clear();
      }
      kv_in_use_ = 0;
      idle_cv_.notify_all();
      if (stop_) return;
      shutdown_ = false;
      continue;
    }
    const Clock::time_point now = Clock::now();
    expire_locked(now);
    admit_locked(now);
    if (active_.empty()) {
      last_progress_ns_ = now_ns();
      tok_per_s_ = 0;
      rate_window_start_ = 0;
      rate_window_tokens_ = 0;
      kv_in_use_ = 0;
      idle_cv_.notify_all();
      // Queued work that cannot be admitted with nothing running would wait forever; the
      // budget check in submit() rules that out, so an empty active set here means empty queues.
      continue;
    }
    const int64_t stall = stall_until_ns_.load();
    if (stall > now_ns()) {  // test hook: a wedged engine, woken early only to stop
      cv_.wait_until(lk, Clock::time_point(std::chrono::nanoseconds(stall)), [&] { return stop_ || shutdown_; });
      continue;
    }
    lk.unlock();
    step();
    lk.lock();
    idle_cv_.notify_all();
  }
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats st;
  {
    std::lock_guard lk(mu_);
    for (int p = 0; p < kNumPriorities; ++p) st.queued[size_t(p)] = int64_t(queue_[size_t(p)].size());
    for (const auto& s : active_) ++st.active[size_t(s->req.priority)];
    st.kv_bytes_reserved = kv_reserved_;
    st.draining = draining_;
  }
  st.n_parallel = opts_.n_parallel;
  st.kv_bytes_in_use = kv_in_use_.load();
  st.kv_budget_bytes = opts_.kv_budget_bytes;
  st.prompt_tokens = prompt_tokens_.load();
  st.generated_tokens = generated_tokens_.load();
  st.steps = steps_.load();
  st.preemptions = preemptions_.load();
  st.decode_tok_per_s = tok_per_s_.load();
  bool busy = false;
  for (int p = 0; p < kNumPriorities; ++p) busy |= st.queued[size_t(p)] + st.active[size_t(p)] > 0;
  st.seconds_since_progress = busy ? double(now_ns() - last_progress_ns_.load()) / 1e9 : 0;
  return st;
}

Health Scheduler::health() const {
  Health h;
  const SchedulerStats st = stats();
  for (int p = 0; p < kNumPriorities; ++p) h.active += st.active[size_t(p)], h.queued += st.queued[size_t(p)];
  const bool busy = h.active + h.queued > 0;
  h.seconds_since_progress = busy ? st.seconds_since_progress : 0;
  if (st.draining) {
    h.ok = false;
    h.status = "draining";
    h.reason = "shutting down: finishing running requests, accepting none";
  } else if (busy && st.seconds_since_progress > opts_.stall_limit_s) {
    h.ok = false;
    h.status = "stalled";
    h.reason = "busy, but no engine step for " + std::to_string(int(st.seconds_since_progress)) +
               " s (limit " + std::to_string(int(opts_.stall_limit_s)) + " s)";
  } else {
    h.status = "ok";
    h.reason = busy ? "generating" : "idle";
  }
  return h;
}

int Scheduler::drain(Clock::time_point deadline) {
  std::unique_lock lk(mu_);
  draining_ = true;
  auto idle = [&] {
    if (!active_.empty()) return false;
    for (const auto& q : queue_)
      if (!q.empty()) return false;
    return true;
  };
  idle_cv_.wait_until(lk, deadline, idle);
  if (idle()) return 0;
  int left = int(active_.size());
  for (const auto& q : queue_) left += int(q.size());
  shutdown_ = true;
  cv_.notify_all();
  idle_cv_.wait(lk, [&] { return idle() || stop_; });
  return left;
}

void Scheduler::stall_for(std::chrono::milliseconds d) {
  stall_until_ns_ = now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace edgeglm::serve
