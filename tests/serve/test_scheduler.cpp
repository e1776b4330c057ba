// The serving core on a real model (stories260K): continuous batching gives each request exactly
// what it gets alone; priorities, preemption, queue limits, cancellation, deadlines, the stall
// health check and draining behave as documented in serve/scheduler.h.
#include <gtest/gtest.h>

#include <thread>

#include "../model/model_test_util.h"
#include "runtime/session.h"
#include "serve/scheduler.h"
#include "test_util.h"

using namespace edgeglm;
using namespace std::chrono_literals;
using serve::Finish;
using serve::Priority;

namespace {

constexpr const char* kModel = "models/stories260K/stories260K.gguf";

struct Output {
  std::string text;
  serve::Event done;
  bool finished = false;
};

Output collect(serve::Channel& ch, std::chrono::milliseconds limit = 60s) {
  Output o;
  const auto end = serve::Clock::now() + limit;
  serve::Event ev;
  while (serve::Clock::now() < end) {
    if (!ch.next(&ev, 100ms)) continue;
    if (ev.kind == serve::Event::Kind::kText) {
      o.text += ev.text;
    } else {
      o.done = ev;
      o.finished = true;
      break;
    }
  }
  return o;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EDGEGLM_REQUIRE_SHARED(kModel);
    loaded_ = test::load(test::shared_path(kModel));
    ASSERT_TRUE(loaded_.model && loaded_.tok);
  }
  std::unique_ptr<serve::Scheduler> make(serve::SchedulerOptions o) {
    o.n_ctx = o.n_ctx == 2048 ? 256 : o.n_ctx;
    auto s = serve::Scheduler::create(*loaded_.model, *loaded_.tok, pool_, o);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  serve::Request request(const std::string& text, int32_t max_tokens, float temperature = 0) {
    serve::Request r;
    r.prompt = loaded_.tok->encode(text, /*add_special=*/true, /*parse_special=*/false);
    r.max_tokens = max_tokens;
    r.sampling.temperature = temperature;
    r.sampling.seed = 1234;
    return r;
  }
  // What edgeglm run produces: a Session alone.
  std::string alone(const serve::Request& r) {
    model::ContextOptions co;
    co.n_ctx = 256;
    auto s = runtime::Session::create(*loaded_.model, *loaded_.tok, co, alone_pool_);
    EXPECT_TRUE(s.ok());
    runtime::GenerateOptions g;
    g.max_tokens = r.max_tokens;
    g.sampling = r.sampling;
    g.stop = r.stop;
    auto res = (*s)->generate(r.prompt, g);
    EXPECT_TRUE(res.ok());
    return res.ok() ? res->text : "";
  }
  test::Loaded loaded_;
  ThreadPool pool_{2};
  // A pool has one dispatching thread: the scheduler's engine owns pool_ while it runs.
  ThreadPool alone_pool_{1};
};

const char* kPrompts[] = {"Once upon a time", "The little dog", "Lily and Tom went to the park",
                          "One day, a cat", "The sun was", "Tim had a red ball",
                          "There was a big tree", "Sue liked to"};

}  // namespace

TEST_F(SchedulerTest, ConcurrentRequestsEachGetTheirAloneOutput) {
  serve::SchedulerOptions o;
  o.n_parallel = 4;
  o.ubatch = 16;  // small steps: prompts are chunked beside running decodes
  auto s = make(o);
  ASSERT_TRUE(s);
  std::vector<serve::Request> reqs;
  for (int i = 0; i < 8; ++i) reqs.push_back(request(kPrompts[i], 40, i % 2 ? 0.8f : 0.0f));
  std::vector<std::shared_ptr<serve::Channel>> chans;
  for (const auto& r : reqs) {
    serve::Admission a = s->submit(r);
    ASSERT_TRUE(a.channel) << a.message;
    chans.push_back(a.channel);
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    Output out = collect(*chans[i]);
    ASSERT_TRUE(out.finished);
    EXPECT_EQ(out.text, alone(reqs[i])) << "request " << i;
    EXPECT_EQ(out.done.prompt_tokens, int64_t(reqs[i].prompt.size()));
    EXPECT_GT(out.done.completion_tokens, 0);
    EXPECT_GE(out.done.ttft_ms, 0);
  }
  EXPECT_EQ(s->stats().generated_tokens > 8 * 10, true);
  // Steps batched several sequences: fewer steps than tokens generated.
  EXPECT_LT(s->stats().steps, s->stats().generated_tokens);
}

TEST_F(SchedulerTest, InteractivePreemptsBatchWhichResumesUnchanged) {
  serve::SchedulerOptions o;
  o.n_parallel = 1;
  auto s = make(o);
  ASSERT_TRUE(s);
  serve::Request batch = request("Once upon a time", 150, 0.9f);
  batch.priority = Priority::kBatch;
  batch.sampling.seed = 77;
  serve::Admission b = s->submit(batch);
  ASSERT_TRUE(b.channel);
  serve::Event ev;
  std::string batch_text;
  ASSERT_TRUE(b.channel->next(&ev, 10s));  // the batch request is decoding
  batch_text += ev.text;
  serve::Request inter = request("The little dog", 10);
  inter.priority = Priority::kInteractive;
  serve::Admission i = s->submit(inter);
  ASSERT_TRUE(i.channel);
  Output io = collect(*i.channel);
  ASSERT_TRUE(io.finished);
  EXPECT_EQ(io.text, alone(inter));
  Output bo = collect(*b.channel);
  ASSERT_TRUE(bo.finished);
  EXPECT_EQ(bo.done.preemptions, 1);
  // Interactive finished first, and the batch request's text continued as if never interrupted.
  EXPECT_GT(bo.done.total_ms, io.done.total_ms);
  EXPECT_EQ(batch_text + bo.text, alone(batch));
  EXPECT_EQ(s->stats().preemptions, 1);
}

TEST_F(SchedulerTest, HigherClassAdmittedFirst) {
  serve::SchedulerOptions o;
  o.n_parallel = 1;
  o.preempt = false;
  auto s = make(o);
  ASSERT_TRUE(s);
  serve::Admission first = s->submit(request("Once upon a time", 30));
  serve::Request nb = request("The sun was", 5);
  nb.priority = Priority::kBatch;
  serve::Request ni = request("Tim had", 5);
  ni.priority = Priority::kInteractive;
  serve::Admission b = s->submit(nb), i = s->submit(ni);  // batch queued before interactive
  ASSERT_TRUE(first.channel && b.channel && i.channel);
  Output bo = collect(*b.channel), io = collect(*i.channel);
  ASSERT_TRUE(bo.finished && io.finished);
  EXPECT_LT(io.done.queue_ms, bo.done.queue_ms);
  EXPECT_EQ(bo.done.preemptions + io.done.preemptions, 0);
}

TEST_F(SchedulerTest, FullQueueRejectsWithRetryAfter) {
  serve::SchedulerOptions o;
  o.n_parallel = 1;
  o.queue_limit = {1, 1, 1};
  auto s = make(o);
  ASSERT_TRUE(s);
  s->stall_for(2s);  // nothing leaves the queue meanwhile
  std::vector<serve::Admission> as;
  for (int k = 0; k < 3; ++k) as.push_back(s->submit(request("Once upon a time", 5)));
  int rejected = 0;
  for (auto& a : as)
    if (!a.channel) {
      ++rejected;
      EXPECT_EQ(a.rejection, serve::Rejection::kQueueFull);
      EXPECT_GE(a.retry_after_s, 1);
      EXPECT_NE(a.message.find("queue is full"), std::string::npos);
    }
  EXPECT_GE(rejected, 1);  // one running (or queued), one queued, the third refused
  s->set_queue_limits({1, 5, 1});
  EXPECT_TRUE(s->submit(request("Once upon a time", 5)).channel);
}

TEST_F(SchedulerTest, CancelFreesTheSlotAtOnce) {
  serve::SchedulerOptions o;
  o.n_parallel = 2;
  auto s = make(o);
  ASSERT_TRUE(s);
  serve::Request r = request("Once upon a time", -1);
  r.ignore_eos = true;
  serve::Admission a = s->submit(r);
  ASSERT_TRUE(a.channel);
  serve::Event ev;
  ASSERT_TRUE(a.channel->next(&ev, 10s));
  EXPECT_GT(s->stats().kv_bytes_in_use, 0u);
  a.channel->cancel();
  Output out = collect(*a.channel, 5s);
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.done.finish, Finish::kCancelled);
  const auto st = s->stats();
  EXPECT_EQ(st.active[0] + st.active[1] + st.active[2], 0);
  EXPECT_EQ(st.kv_bytes_reserved, 0u);
}

TEST_F(SchedulerTest, DeadlineEndsRequest) {
  serve::SchedulerOptions o;
  auto s = make(o);
  ASSERT_TRUE(s);
  serve::Request r = request("Once upon a time", -1);
  r.ignore_eos = true;
  r.deadline = serve::Clock::now() + 50ms;
  s->stall_for(100ms);
  serve::Admission a = s->submit(r);
  ASSERT_TRUE(a.channel);
  Output out = collect(*a.channel, 10s);
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.done.finish, Finish::kDeadline);
  EXPECT_STREQ(serve::finish_name(out.done.finish), "timeout");
}

TEST_F(SchedulerTest, StalledEngineIsUnhealthyThenRecovers) {
  serve::SchedulerOptions o;
  o.stall_limit_s = 0.3;
  auto s = make(o);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->health().ok);
  EXPECT_EQ(s->health().reason, "idle");
  s->stall_for(1500ms);
  serve::Admission a = s->submit(request("Once upon a time", 20));
  ASSERT_TRUE(a.channel);
  std::this_thread::sleep_for(700ms);
  serve::Health h = s->health();
  EXPECT_FALSE(h.ok);
  EXPECT_EQ(h.status, "stalled");
  EXPECT_GT(h.seconds_since_progress, 0.3);
  Output out = collect(*a.channel);
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(s->health().ok);
}

TEST_F(SchedulerTest, DrainFinishesRunningThenRefuses) {
  serve::SchedulerOptions o;
  o.n_parallel = 2;
  auto s = make(o);
  ASSERT_TRUE(s);
  std::vector<std::shared_ptr<serve::Channel>> ch;
  for (int i = 0; i < 3; ++i) ch.push_back(s->submit(request(kPrompts[i], 20)).channel);
  EXPECT_EQ(s->drain(serve::Clock::now() + 30s), 0);
  for (auto& c : ch) {
    Output out = collect(*c, 1s);
    ASSERT_TRUE(out.finished);
    EXPECT_NE(out.done.finish, Finish::kShutdown);
  }
  serve::Admission late = s->submit(request("Once", 5));
  EXPECT_FALSE(late.channel);
  EXPECT_EQ(late.rejection, serve::Rejection::kDraining);
  EXPECT_EQ(s->health().status, "draining");
}

TEST_F(SchedulerTest, DrainDeadlineCutsTheRestShort) {
  serve::SchedulerOptions o;
  o.n_parallel = 1;
  auto s = make(o);
  ASSERT_TRUE(s);
  serve::Request r = request("Once upon a time", -1);
  r.ignore_eos = true;
  s->stall_for(10s);  // a wedged engine: nothing can finish before the drain deadline
  auto a = s->submit(r).channel, b = s->submit(r).channel;
  ASSERT_TRUE(a && b);
  EXPECT_EQ(s->drain(serve::Clock::now() + 200ms), 2);
  for (auto* c : {a.get(), b.get()}) {
    Output out = collect(*c, 2s);
    ASSERT_TRUE(out.finished);
    EXPECT_EQ(out.done.finish, Finish::kShutdown);
  }
}

TEST_F(SchedulerTest, RejectsWhatCannotFit) {
  serve::SchedulerOptions o;
  o.n_ctx = 32;
  o.kv_budget_bytes = 0;
  auto s = make(o);
  ASSERT_TRUE(s);
  serve::Request r = request("Once upon a time", 5);
  r.prompt.resize(40, r.prompt.back());
  serve::Admission a = s->submit(r);
  EXPECT_EQ(a.rejection, serve::Rejection::kPromptTooLong);
  EXPECT_NE(a.message.find("does not fit the context of 32"), std::string::npos) << a.message;
  r.prompt = {};
  EXPECT_EQ(s->submit(r).rejection, serve::Rejection::kInvalid);
  r = request("Once", 5);
  r.sampling.top_p = 2;
  EXPECT_EQ(s->submit(r).rejection, serve::Rejection::kInvalid);

  o.n_ctx = 256;
  o.kv_budget_bytes = 4096;  // a few positions of stories260K's KV cache
  auto small = make(o);
  ASSERT_TRUE(small);
  serve::Admission big = small->submit(request("Once upon a time", 200));
  EXPECT_EQ(big.rejection, serve::Rejection::kTooLarge);
  EXPECT_NE(big.message.find("budget"), std::string::npos);
}
