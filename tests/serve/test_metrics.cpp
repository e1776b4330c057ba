#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "serve/metrics.h"

namespace edgeglm::serve {
namespace {

TEST(Metrics, ExactExpositionText) {
  MetricsRegistry reg;
  auto& requests = reg.counter("edgeglm_requests_total", "Requests by status.", {"status", "priority"});
  requests.labels({"503", "batch"}).inc();
  requests.labels({"200", "interactive"}).inc(3);
  // Observations on bucket bounds are exactly representable, so _sum is exact too.
  auto& ttft = reg.histogram("edgeglm_ttft_seconds", "Time to first token.", {0.25, 0.5, 1});
  for (double v : {0.125, 0.25, 0.375, 2.0}) ttft.get().observe(v);
  reg.gauge("edgeglm_queue_depth", "Queued requests.\nPer \"class\".", {"class"})
      .labels({"a\"b\\c\nd"})
      .set(2.5);

  const std::string want =
      "# HELP edgeglm_queue_depth Queued requests.\\nPer \"class\".\n"
      "# TYPE edgeglm_queue_depth gauge\n"
      "edgeglm_queue_depth{class=\"a\\\"b\\\\c\\nd\"} 2.5\n"
      "# HELP edgeglm_requests_total Requests by status.\n"
      "# TYPE edgeglm_requests_total counter\n"
      "edgeglm_requests_total{status=\"200\",priority=\"interactive\"} 3\n"
      "edgeglm_requests_total{status=\"503\",priority=\"batch\"} 1\n"
      "# HELP edgeglm_ttft_seconds Time to first token.\n"
      "# TYPE edgeglm_ttft_seconds histogram\n"
      "edgeglm_ttft_seconds_bucket{le=\"0.25\"} 2\n"
      "edgeglm_ttft_seconds_bucket{le=\"0.5\"} 3\n"
      "edgeglm_ttft_seconds_bucket{le=\"1\"} 3\n"
      "edgeglm_ttft_seconds_bucket{le=\"+Inf\"} 4\n"
      "edgeglm_ttft_seconds_sum 2.75\n"
      "edgeglm_ttft_seconds_count 4\n";
  EXPECT_EQ(reg.render(), want);
}

TEST(Metrics, LabelledHistogramPutsLeLast) {
  MetricsRegistry reg;
  auto& h = reg.histogram("tok_seconds", "h", {1, 2, std::numeric_limits<double>::infinity()},
                          {"model"});
  EXPECT_EQ(h.bounds().size(), 2u) << "a trailing +Inf bound is implicit";
  h.labels({"m"}).observe(1.5);
  h.labels({"m"}).observe(std::nan(""));  // counts only in +Inf
  EXPECT_EQ(reg.render(),
            "# HELP tok_seconds h\n# TYPE tok_seconds histogram\n"
            "tok_seconds_bucket{model=\"m\",le=\"1\"} 0\n"
            "tok_seconds_bucket{model=\"m\",le=\"2\"} 1\n"
            "tok_seconds_bucket{model=\"m\",le=\"+Inf\"} 2\n"
            "tok_seconds_sum{model=\"m\"} NaN\n"
            "tok_seconds_count{model=\"m\"} 2\n");
}

TEST(Metrics, ChildrenAreStableAndFamiliesShared) {
  MetricsRegistry reg;
  auto& f = reg.counter("c_total", "h", {"k"});
  Counter* a = &f.labels({"x"});
  for (int i = 0; i < 100; ++i) f.labels({std::to_string(1000 + i)});  // grow the map
  EXPECT_EQ(a, &f.labels({"x"}));
  EXPECT_EQ(&f, &reg.counter("c_total", "other help", {"k"}));
}

TEST(Metrics, CounterKeepsIntegersExactAndAddsFractions) {
  MetricsRegistry reg;
  auto& c = reg.counter("big_total", "h").get();
  c.inc(uint64_t(1) << 60);
  c.inc();
  EXPECT_NE(reg.render().find("big_total 1152921504606846977\n"), std::string::npos);
  auto& s = reg.counter("seconds_total", "h").get();
  s.inc(0.5);
  s.inc(0.25);
  s.inc(2);
  EXPECT_DOUBLE_EQ(s.value(), 2.75);
  EXPECT_NE(reg.render().find("seconds_total 2.75\n"), std::string::npos);
}

TEST(Metrics, GaugeSetAddAndCallbacks) {
  MetricsRegistry reg;
  auto& g = reg.gauge("depth", "h", {"class"});
  g.labels({"batch"}).set(5);
  g.labels({"batch"}).add(-2);
  g.labels({"batch"}).dec();
  g.labels({"normal"}).set(9);
  int calls = 0;
  g.set_callback({"normal"}, [&] { return double(++calls * 10); });  // replaces the set value
  reg.callback_gauge("process_resident_memory_bytes", "RSS.", [] { return process_rss_bytes(); });
  std::string text = reg.render();
  EXPECT_NE(text.find("depth{class=\"batch\"} 2\ndepth{class=\"normal\"} 10\n"), std::string::npos)
      << text;
  EXPECT_EQ(calls, 1);
  EXPECT_NE(reg.render().find("depth{class=\"normal\"} 20\n"), std::string::npos);
  EXPECT_GT(process_rss_bytes(), 1e5);  // a running gtest binary uses more than 100 kB
  EXPECT_NE(text.find("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes "),
            std::string::npos);
}

TEST(Metrics, ValueFormatting) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(-3), "-3");
  EXPECT_EQ(format_metric_value(1e6), "1000000");
  EXPECT_EQ(format_metric_value(0.1), "0.1");
  EXPECT_EQ(format_metric_value(1e-7), "1e-07");
  EXPECT_EQ(format_metric_value(1e20), "1e+20");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(Metrics, NameValidation) {
  EXPECT_TRUE(is_valid_metric_name("edgeglm:requests_total2"));
  EXPECT_TRUE(is_valid_metric_name("_x"));
  EXPECT_FALSE(is_valid_metric_name(""));
  EXPECT_FALSE(is_valid_metric_name("1abc"));
  EXPECT_FALSE(is_valid_metric_name("a-b"));
  EXPECT_FALSE(is_valid_metric_name("a b"));
  EXPECT_TRUE(is_valid_label_name("priority"));
  EXPECT_FALSE(is_valid_label_name("__name"));
  EXPECT_FALSE(is_valid_label_name("a:b"));
  EXPECT_FALSE(is_valid_label_name("9a"));
}

TEST(Metrics, WrongLabelCount) {
  MetricsRegistry reg;
  auto& f = reg.counter("c_total", "h", {"a", "b"});
#ifdef NDEBUG
  // Release builds: a detached child absorbs the update and is never rendered.
  f.labels({"only-one"}).inc();
  EXPECT_EQ(reg.render(), "# HELP c_total h\n# TYPE c_total counter\n");
#else
  EXPECT_DEATH(f.labels({"only-one"}), "wrong number of label values");
#endif
}

TEST(Metrics, ConcurrentUpdatesAreExact) {
  MetricsRegistry reg;
  auto& fam = reg.counter("hits_total", "h", {"t"});
  auto& shared = reg.counter("shared_total", "h").get();
  auto& hist = reg.histogram("lat", "h", {1, 2, 3});
  auto& gauge = reg.gauge("g", "h").get();
  constexpr int kThreads = 8, kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& mine = fam.labels({std::to_string(t % 4)});  // children created concurrently
      for (int i = 0; i < kIters; ++i) {
        mine.inc();
        shared.inc();
        hist.get().observe(double(i % 4) + 0.5);  // one of 0.5 1.5 2.5 3.5
        gauge.add(1.0);
        if (i % 5000 == 0) (void)reg.render();  // rendering while updating is safe
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(shared.integer_part(), uint64_t(kThreads) * kIters);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(fam.labels({std::to_string(k)}).integer_part(), 2u * kIters);
  const Histogram& h = hist.get();
  EXPECT_EQ(h.count(), uint64_t(kThreads) * kIters);
  for (size_t b = 0; b < 4; ++b) EXPECT_EQ(h.bucket_count(b), uint64_t(kThreads) * kIters / 4);
  EXPECT_DOUBLE_EQ(h.sum(), double(kThreads) * kIters / 4 * (0.5 + 1.5 + 2.5 + 3.5));
  EXPECT_DOUBLE_EQ(gauge.value(), double(kThreads) * kIters);
  std::string text = reg.render();
  EXPECT_NE(text.find("lat_bucket{le=\"+Inf\"} 160000\nlat_sum 320000\nlat_count 160000\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace edgeglm::serve
